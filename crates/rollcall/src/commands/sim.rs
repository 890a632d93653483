use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use rollcall_sim_metabase::MetabaseSim;
use rollcall_sim_mode::ModeSim;

use super::shutdown_signal;
use crate::cli::SimCommand;

pub async fn run(command: SimCommand) -> anyhow::Result<ExitCode> {
    match command {
        SimCommand::Mode { port, host, args } => {
            let sim =
                ModeSim::new(args.into_config()?).context("cannot build the Mode simulator")?;
            let running = sim.start(SocketAddr::new(host, port)).await?;
            let base = running.base_url();
            let f = running.fixtures();
            println!(
                "Mode simulator serving at {base}/api (workspace `{}`)",
                f.workspace
            );
            println!(
                "  admin (personal token):   {}:{}",
                f.admin.token, f.admin.secret
            );
            println!(
                "  workspace API token:      {}:{}",
                f.workspace_api.token, f.workspace_api.secret
            );
            println!(
                "  member (non-admin):       {}:{}",
                f.member.token, f.member.secret
            );
            println!("  Discovery API bearer:     {}", f.discovery_token);
            println!(
                "Try: curl -u {}:{} {base}/api/{}/memberships",
                f.admin.token, f.admin.secret, f.workspace
            );
            println!("Control: {base}/_sim/counters, {base}/_sim/faults. Ctrl-C stops.");
            shutdown_signal().await;
            running.stop().await?;
        }
        SimCommand::Metabase { port, host, args } => {
            let sim = MetabaseSim::new(args.into_config()?)
                .context("cannot build the Metabase simulator")?;
            let running = sim.start(SocketAddr::new(host, port)).await?;
            let base = running.base_url();
            let f = running.fixtures();
            println!("Metabase simulator serving at {base}/api");
            println!(
                "  admin login:     {} / {}",
                f.admin_email, f.admin_password
            );
            println!(
                "  member login:    {} / {}",
                f.member_email, f.member_password
            );
            println!("  admin API key:   {}", f.admin_api_key);
            println!("  member API key:  {}", f.member_api_key);
            println!(
                "Try: curl -H 'X-API-KEY: {}' '{base}/api/user?limit=5'",
                f.admin_api_key
            );
            println!("Control: {base}/_sim/counters, {base}/_sim/faults. Ctrl-C stops.");
            shutdown_signal().await;
            running.stop().await;
        }
    }
    Ok(ExitCode::SUCCESS)
}
