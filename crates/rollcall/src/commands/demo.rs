//! `rollcall demo`: everything in one process, no configuration. Both vendor
//! simulators with realistic seeded data, the API on an embedded SQLite
//! store in a data directory, a tenant and an API key, one Mode and one
//! Metabase account linked through the API, and commands to try.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use rollcall_client::Client;
use rollcall_core::SystemClock;
use rollcall_core::id::TenantName;
use rollcall_server::vault_setup::open_vault;
use rollcall_server::{AppState, Application, Settings, keys};
use rollcall_sim_metabase::{MetabaseSim, MetabaseSimConfig};
use rollcall_sim_mode::{ModeSim, ModeSimConfig};
use secrecy::ExposeSecret;
use serde_json::json;

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

    // The simulators get new ports each run, so accounts from an earlier run
    // would point nowhere: the demo database starts afresh.
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    for stale in ["rollcall.db", "rollcall.db-wal", "rollcall.db-shm"] {
        let _ = std::fs::remove_file(args.data_dir.join(stale));
    }
    let settings = Settings {
        listen: args.listen,
        database_url: format!("sqlite://{}", args.data_dir.join("rollcall.db").display()),
        ..Settings::default()
    };
    let store = open_store(&settings.database_url).await?;
    let vault = open_vault(&settings).context("cannot load the master key")?;
    let clock = Arc::new(SystemClock);
    let key = keys::issue(
        store.as_ref(),
        clock.as_ref(),
        &TenantName::parse("demo")?,
        "demo",
    )
    .await?;
    let state = AppState::new(store, clock, settings.clone(), vault)?;
    let app = Application::bind(settings.listen, state)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (is something else using it? try --listen 127.0.0.1:0)",
                settings.listen
            )
        })?;
    let api = format!("http://{}", app.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    let m = mode.fixtures().clone();
    let mb = metabase.fixtures().clone();
    let client = Client::new(&api).with_api_key(key.key.expose_secret());
    let mode_account = client
        .create_account(&json!({
            "provider": "mode",
            "label": "Acme analytics (Mode)",
            "tenant_ref": "customer-acme",
            "config": { "base_url": mode.base_url(), "workspace": m.workspace },
            "credentials": { "token": m.admin.token, "secret": m.admin.secret, "discovery_token": m.discovery_token },
        }))
        .await
        .context("linking the simulated Mode account")?;
    let metabase_account = client
        .create_account(&json!({
            "provider": "metabase",
            "label": "Acme BI (Metabase)",
            "tenant_ref": "customer-acme",
            "config": { "base_url": metabase.base_url() },
            "credentials": { "username": mb.admin_email, "password": mb.admin_password },
        }))
        .await
        .context("linking the simulated Metabase account")?;

    // A few people use both tools, as in any company: the people report
    // joins them by email.
    let shared = share_people(&client, &mode_account.id, &metabase_account.id).await?;
    let desired =
        write_desired_file(&args.data_dir, &client, &metabase_account.id, &shared).await?;
    // The first syncs run in the background; reports read their snapshots.
    for account in [&mode_account.id, &metabase_account.id] {
        client
            .start_sync(account)
            .await
            .context("queueing the first sync")?;
    }

    let auth = format!("Authorization: Bearer {}", key.key.expose_secret());
    // The binary that is running now, so the printed commands work as they are.
    let me = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "rollcall".into());
    let mode_id = &mode_account.id;
    let mb_id = &metabase_account.id;
    let ws = &m.workspace;
    println!(
        "\nRollcall demo is serving at {api}  (data in {dir})\n\
         \n\
         API key for tenant `demo` (shown once):\n  {key}\n\
         \n\
         Linked accounts ({users} simulated users each):\n  \
           {mode_id}  Mode workspace `{ws}`\n  \
           {mb_id}  Metabase (session login, renewed automatically)\n\
         \n\
         Try the CLI:\n  \
           export ROLLCALL_URL={api} ROLLCALL_API_KEY={key}\n  \
           {me} users list --account {mode_id}\n  \
           {me} users list --account {mb_id} --limit 10\n  \
           {me} groups list --account {mode_id}\n  \
           {me} groups list --account {mb_id}\n  \
           {me} sync --account {mb_id}\n  \
           {me} users list --account {mb_id} --cache --admin true\n  \
           {me} events\n\
         \n\
         Governance (once the first syncs are done; `{me} sync --account ID` waits for one):\n  \
           {me} reports people\n  \
           {me} reports admins\n  \
           {me} reports inactive --days 30\n  \
           {me} grants create --account {mb_id} --user <user id> --group <group id> --duration 1h --reason 'on call'\n  \
           {me} plan --account {mb_id} -f {desired}\n  \
           {me} apply <plan id>\n\
         \n\
         Or the HTTP API:\n  \
           curl -H '{auth}' '{api}/unified/user-directory/users?integrated_account_id={mb_id}&limit=3'\n  \
           curl -H '{auth}' '{api}/unified/user-directory/groups?integrated_account_id={mode_id}'\n  \
           curl -H '{auth}' {api}/integrated-accounts\n  \
           curl -H '{auth}' -X POST {api}/integrated-accounts/{mode_id}/sync\n  \
           curl -H '{auth}' '{api}/events?limit=10'\n  \
           curl -H '{auth}' '{api}/proxy/{mb_id}/api/user?limit=3'\n  \
           curl -H '{auth}' -H 'content-type: application/json' -d '{{\"tenant_ref\":\"customer-42\"}}' {api}/link-tokens\n  \
           open {api}/docs for the API reference\n\
         \n\
         Ctrl-C stops everything.",
        dir = args.data_dir.display(),
        key = key.key.expose_secret(),
        users = args.users,
        desired = desired.display(),
    );
    shutdown_signal().await;
    let _ = stop.send(());
    server.await??;
    mode.stop().await?;
    metabase.stop().await;
    eprintln!("demo stopped");
    Ok(ExitCode::SUCCESS)
}

/// Gives the first few Mode members a Metabase account with the same email
/// (through Rollcall, so it is audited like any change); their emails.
async fn share_people(
    client: &Client,
    mode_account: &str,
    metabase_account: &str,
) -> anyhow::Result<Vec<String>> {
    let members = client
        .users(mode_account, "status=active&limit=4")
        .await
        .context("listing the Mode members")?;
    let mut emails = Vec::new();
    for member in members.result {
        // Mode lists members without emails; the full user has one.
        let user = client.user(mode_account, &member.id).await?;
        let Some(email) = user.email else { continue };
        let body = json!({
            "email": email, "first_name": user.first_name, "last_name": user.last_name,
        });
        client
            .create_user(metabase_account, &body)
            .await
            .with_context(|| format!("giving {email} a Metabase account"))?;
        emails.push(email);
    }
    Ok(emails)
}

/// An example group-sync file for `rollcall plan -f`: the shared people as
/// the members of Metabase's first custom group.
async fn write_desired_file(
    dir: &std::path::Path,
    client: &Client,
    metabase_account: &str,
    people: &[String],
) -> anyhow::Result<std::path::PathBuf> {
    let groups = client.groups(metabase_account, "limit=100").await?;
    let group = groups
        .result
        .iter()
        .find(|g| !g.is_builtin)
        .map_or("Analysts".to_owned(), |g| g.name.clone());
    let mut text = format!(
        "# Who should be in Metabase's `{group}` group. `rollcall plan -f` shows the\n\
         # changes; prune: true also removes members not listed here.\nprune: false\ngroups:\n  \"{group}\":\n"
    );
    for email in people {
        text.push_str(&format!("    - {email}\n"));
    }
    let path = dir.join("desired.yaml");
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
