use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use rollcall_core::SystemClock;
use rollcall_server::vault_setup::open_vault;
use rollcall_server::{AppState, Application, Settings};

use super::{open_store, shutdown_signal};

pub async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let store = open_store(&settings.database_url).await?;
    let vault = open_vault(&settings).context("cannot load the master key")?;
    let state = AppState::new(store, Arc::new(SystemClock), settings.clone(), vault)?;
    let app = Application::bind(settings.listen, state)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    tracing::info!(addr = %app.local_addr()?, "rollcall is serving");
    app.run_until(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
