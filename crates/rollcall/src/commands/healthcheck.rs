use std::process::ExitCode;

use rollcall_client::Client;
use rollcall_server::Settings;

/// Exits 0 when `/readyz` says ready, 1 otherwise; made for container
/// health checks and scripts.
pub async fn run(settings: &Settings, url: Option<String>) -> anyhow::Result<ExitCode> {
    let url = url.unwrap_or_else(|| {
        // A wildcard listen address is reachable on loopback.
        let mut addr = settings.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    });
    match Client::new(&url).readyz().await {
        Ok(health) => {
            println!("{url}: {}", health.status);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{url}: not ready: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
