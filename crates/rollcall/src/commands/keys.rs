use std::process::ExitCode;

use anyhow::Context as _;
use rollcall_core::SystemClock;
use rollcall_core::id::TenantName;
use rollcall_server::rotation::rotate_master;
use rollcall_server::vault_setup::open_vault;
use rollcall_server::{Settings, keys};
use rollcall_vault::Keyring;
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
        KeysCommand::RotateMaster => {
            let store = open_store(&settings.database_url).await?;
            let vault = open_vault(settings).context("cannot load the master key")?;
            let report = rotate_master(store.as_ref(), &vault).await?;
            eprintln!(
                "Active master key: {}. Re-sealed {} credential(s); {} changed concurrently and were left as written.",
                report.active, report.resealed, report.changed_concurrently
            );
            if !report.retired.is_empty() {
                let ids: Vec<String> = report.retired.iter().map(ToString::to_string).collect();
                eprintln!("No longer needed: {}", ids.join(", "));
            }
            if !report.still_in_use.is_empty() {
                eprintln!(
                    "Still sealing something: {} (run rotate-master again)",
                    report.still_in_use.join(", ")
                );
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::GenerateMaster => {
            let ring = Keyring::generate()?;
            print!("{}", ring.to_text().expose_secret());
            Ok(ExitCode::SUCCESS)
        }
    }
}
