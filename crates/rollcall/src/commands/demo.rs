//! `rollcall demo`: everything in one process, no configuration. Both vendor
//! simulators with realistic seeded data, the API on an embedded SQLite
//! store in a data directory, a tenant and an API key, and commands to try.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use rollcall_core::SystemClock;
use rollcall_core::id::TenantName;
use rollcall_server::{AppState, Application, keys};
use rollcall_sim_metabase::{MetabaseSim, MetabaseSimConfig};
use rollcall_sim_mode::{ModeSim, ModeSimConfig};
use secrecy::ExposeSecret;

use super::{open_store, shutdown_signal};
use crate::cli::DemoArgs;

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let mode = ModeSim::new(ModeSimConfig {
        users: args.users,
        ..ModeSimConfig::default()
    })?
    .start(loopback)
    .await?;
    let metabase = MetabaseSim::new(MetabaseSimConfig {
        users: args.users,
        ..MetabaseSimConfig::default()
    })?
    .start(loopback)
    .await?;

    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let db_url = format!("sqlite://{}", args.data_dir.join("rollcall.db").display());
    let store = open_store(&db_url).await?;
    let clock = Arc::new(SystemClock);
    let tenant = TenantName::parse("demo")?;
    let key = keys::issue(store.as_ref(), clock.as_ref(), &tenant, "demo").await?;

    let app = Application::bind(args.listen, AppState { store, clock })
        .await
        .with_context(|| {
            format!("cannot listen on {} (is something else using it? try --listen 127.0.0.1:0)", args.listen)
        })?;
    let api = format!("http://{}", app.local_addr()?);

    let m = mode.fixtures();
    let mb = metabase.fixtures();
    let mode_url = mode.base_url();
    let metabase_url = metabase.base_url();
    println!(
        "\nRollcall demo is serving at {api}  (data in {dir})\n\
         \n\
         API key for tenant `demo` (shown once):\n  {key}\n\
         \n\
         Simulated vendors ({users} users each):\n  \
           Mode      {mode_url}/api  workspace `{ws}`, admin token {mt}:{ms}\n  \
           Metabase  {metabase_url}/api  API key {mbk}\n\
         \n\
         Try:\n  \
           curl -i {api}/healthz\n  \
           curl {api}/readyz\n  \
           curl -u {mt}:{ms} {mode_url}/api/{ws}/memberships\n  \
           curl -H 'X-API-KEY: {mbk}' '{metabase_url}/api/user?limit=3'\n  \
           curl {mode_url}/_sim/counters\n\
         \n\
         Ctrl-C stops everything.",
        dir = args.data_dir.display(),
        key = key.key.expose_secret(),
        users = args.users,
        ws = m.workspace,
        mt = m.admin.token,
        ms = m.admin.secret,
        mbk = mb.admin_api_key,
    );
    app.run_until(shutdown_signal()).await?;
    mode.stop().await;
    metabase.stop().await;
    eprintln!("demo stopped");
    Ok(ExitCode::SUCCESS)
}
