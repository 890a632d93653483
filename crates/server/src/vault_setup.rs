//! Where the master keys come from: `ROLLCALL_MASTER_KEY` (inline), a key
//! file (`master_key_file`), or, for an embedded SQLite store with neither,
//! a key file created next to the database (mode 0600), announced in the log.

use std::path::PathBuf;

use rollcall_vault::{KeySource, Keyring, Vault, VaultError};

use crate::config::Settings;

#[derive(Debug, thiserror::Error)]
pub enum VaultSetupError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("no master key: set ROLLCALL_MASTER_KEY or ROLLCALL_MASTER_KEY_FILE")]
    Missing,
}

/// The key file the embedded store uses when no key is configured.
pub fn default_key_file(database_url: &str) -> Option<PathBuf> {
    let path = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    let db = PathBuf::from(path);
    let dir = db.parent().map(PathBuf::from).unwrap_or_default();
    Some(dir.join("rollcall.master.key"))
}

pub fn open_vault(settings: &Settings) -> Result<Vault, VaultSetupError> {
    if let Some(inline) = &settings.master_key {
        return Ok(Vault::load(KeySource::Inline(inline.clone()))?);
    }
    if let Some(path) = &settings.master_key_file {
        return Ok(Vault::load(KeySource::File(path.clone()))?);
    }
    if settings.database_url.starts_with("sqlite:") {
        return match default_key_file(&settings.database_url) {
            Some(path) => {
                let (vault, created) = Vault::load_or_create_file(&path)?;
                if created {
                    tracing::warn!(
                        path = %path.display(),
                        "no master key was configured, so one was created in this file (mode 0600). \
                         Back it up: without it the stored vendor credentials cannot be read."
                    );
                }
                Ok(vault)
            }
            // An in-memory database forgets everything anyway; so may its key.
            None => Ok(Vault::load(KeySource::Inline(
                Keyring::generate()?.to_text(),
            ))?),
        };
    }
    Err(VaultSetupError::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_sits_next_to_the_database() {
        assert_eq!(
            default_key_file("sqlite://data/rollcall.db"),
            Some(PathBuf::from("data/rollcall.master.key"))
        );
        assert_eq!(
            default_key_file("sqlite:rollcall.db?mode=rwc"),
            Some(PathBuf::from("rollcall.master.key"))
        );
        assert_eq!(default_key_file("sqlite::memory:"), None);
        assert_eq!(default_key_file("postgres://x/y"), None);
    }
}
