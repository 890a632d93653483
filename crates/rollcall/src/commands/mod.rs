//! One module per subcommand.

mod demo;
mod directory;
mod governance;
mod healthcheck;
mod keys;
mod serve;
mod sim;
mod sync;
mod webhooks;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use rollcall_server::{Settings, telemetry};
use rollcall_store::Store;

use crate::cli::{Cli, Command, GlobalArgs};

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = load_settings(&cli.global)?;
    match cli.command {
        Command::Serve { listen } => {
            let mut settings = settings;
            if let Some(listen) = listen {
                settings.listen = listen;
            }
            init_logs(&settings);
            serve::run(settings).await
        }
        Command::Migrate => {
            init_logs(&settings);
            let store = open_store(&settings.database_url).await?;
            eprintln!(
                "store at {} is up to date",
                rollcall_store::redact_url(&settings.database_url)
            );
            drop(store);
            Ok(ExitCode::SUCCESS)
        }
        Command::CopyStore { from, to } => {
            init_logs(&settings);
            copy_store(&from, &to).await
        }
        Command::Healthcheck { url } => healthcheck::run(&settings, url).await,
        Command::Keys(command) => {
            init_logs(&settings);
            keys::run(&settings, command).await
        }
        Command::Sim(command) => {
            init_logs(&settings);
            sim::run(command).await
        }
        Command::Demo(args) => {
            init_logs(&settings);
            demo::run(args).await
        }
        Command::Users(command) => directory::users(command).await,
        Command::Groups(command) => directory::groups(command).await,
        Command::Members(command) => directory::members(command).await,
        Command::Sync(args) => sync::run(args).await,
        Command::Events(args) => sync::events(args).await,
        Command::Webhooks(command) => webhooks::run(command).await,
        Command::Reports(args) => governance::reports(args).await,
        Command::Grants(command) => governance::grants(command).await,
        Command::Plan(args) => governance::plan(args).await,
        Command::Apply(args) => governance::apply(args).await,
        Command::ExportOpenapi => {
            println!("{}", rollcall_server::openapi().to_pretty_json()?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Defaults < file < environment < global flags.
fn load_settings(global: &GlobalArgs) -> anyhow::Result<Settings> {
    let mut settings = Settings::load(global.config.as_deref(), std::env::vars())?;
    if let Some(format) = global.log_format {
        settings.log_format = format;
    }
    if let Some(url) = &global.database_url {
        settings.database_url = url.clone();
    }
    Ok(settings)
}

fn init_logs(settings: &Settings) {
    telemetry::init(settings.log_format, &settings.log);
}

/// Opens the store and brings its schema up to date.
pub(crate) async fn open_store(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let store = rollcall_store::open(url).await.with_context(|| {
        format!(
            "cannot open the store at {}",
            rollcall_store::redact_url(url)
        )
    })?;
    store.migrate().await.context("cannot migrate the store")?;
    Ok(store)
}

/// Resolves on Ctrl-C (or SIGTERM on Unix), for graceful shutdown.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

async fn copy_store(from: &str, to: &str) -> anyhow::Result<ExitCode> {
    use rollcall_store::{PgStore, SqliteStore, redact_url};
    anyhow::ensure!(
        from.starts_with("sqlite:"),
        "--from must be a sqlite:// URL, not {}",
        redact_url(from)
    );
    anyhow::ensure!(
        to.starts_with("postgres:") || to.starts_with("postgresql:"),
        "--to must be a postgres:// URL, not {}",
        redact_url(to)
    );
    let source = SqliteStore::open(from)
        .await
        .with_context(|| format!("cannot open {}", redact_url(from)))?;
    let destination = PgStore::open(to)
        .await
        .with_context(|| format!("cannot connect to {}", redact_url(to)))?;
    let report = rollcall_store::copy::sqlite_to_postgres(&source, &destination)
        .await
        .context("the copy failed; nothing was written")?;
    for (table, rows) in &report.tables {
        println!("{table:<22} {rows:>10}");
    }
    eprintln!(
        "copied into {}. Start the PostgreSQL nodes with the SQLite deployment's master key \
         (its key file's contents as ROLLCALL_MASTER_KEY): the credentials are sealed with it.",
        redact_url(to)
    );
    Ok(ExitCode::SUCCESS)
}
