use std::process::ExitCode;

use anyhow::Context as _;
use rollcall_core::SystemClock;
use rollcall_core::id::TenantName;
use rollcall_server::{Settings, keys};
use secrecy::ExposeSecret;

use super::open_store;
use crate::cli::KeysCommand;

pub async fn run(settings: &Settings, command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Create { tenant, label } => {
            let tenant = TenantName::parse(&tenant)?;
            let store = open_store(&settings.database_url).await?;
            let issued = keys::issue(store.as_ref(), &SystemClock, &tenant, &label)
                .await
                .context("cannot create the key")?;
            eprintln!(
                "Created key {} for tenant {} ({}). It is shown only this once:",
                issued.id, issued.tenant.name, issued.tenant.id
            );
            // The key alone on stdout, so `KEY=$(rollcall keys create ...)` works.
            println!("{}", issued.key.expose_secret());
            Ok(ExitCode::SUCCESS)
        }
    }
}
