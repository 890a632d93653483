use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::{Keyring, MasterKeyId, VaultError};

/// Where the master keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A value from configuration (`ROLLCALL_MASTER_KEY`).
    Inline(SecretString),
    /// A key file, re-read when a ciphertext names a key we have not loaded,
    /// so `rollcall keys rotate-master` never needs a restart.
    File(PathBuf),
}

/// The process's keyring plus where it came from.
#[derive(Debug)]
pub struct Vault {
    source: KeySource,
    ring: RwLock<Arc<Keyring>>,
    /// When the key file was last read (file sources only).
    file_modified: Mutex<Option<SystemTime>>,
}

impl Vault {
    pub fn load(source: KeySource) -> Result<Self, VaultError> {
        let ring = match &source {
            KeySource::Inline(text) => Keyring::parse(text)?,
            KeySource::File(path) => read_key_file(path)?,
        };
        let vault = Self {
            source,
            ring: RwLock::new(Arc::new(ring)),
            file_modified: Mutex::new(None),
        };
        vault.note_file_read();
        Ok(vault)
    }

    /// Opens the key file at `path`, first creating it (mode 0600) with a
    /// fresh random key if it does not exist. Says whether it was created.
    pub fn load_or_create_file(path: &Path) -> Result<(Self, bool), VaultError> {
        let created = if path.exists() {
            false
        } else {
            write_key_file(path, &Keyring::generate()?)?;
            true
        };
        Ok((Self::load(KeySource::File(path.to_path_buf()))?, created))
    }

    pub fn source(&self) -> &KeySource {
        &self.source
    }

    pub fn keyring(&self) -> Arc<Keyring> {
        match self.ring.read() {
            Ok(ring) => ring.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Seals under the active key. With a key file, a file changed since it
    /// was loaded (a rotation in another process) is re-read first, so new
    /// credentials are sealed under the newest key.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<(MasterKeyId, Vec<u8>), VaultError> {
        if let KeySource::File(path) = &self.source {
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            let seen = self.file_modified.lock().map(|m| *m).unwrap_or(None);
            if modified != seen {
                self.reload()?;
            }
        }
        self.keyring().seal(plaintext, aad)
    }

    pub fn open(
        &self,
        key_id: &str,
        sealed: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        match self.keyring().open(key_id, sealed, aad) {
            Err(VaultError::UnknownKey(_)) if matches!(self.source, KeySource::File(_)) => {
                self.reload()?;
                self.keyring().open(key_id, sealed, aad)
            }
            other => other,
        }
    }

    fn note_file_read(&self) {
        if let KeySource::File(path) = &self.source {
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            if let Ok(mut seen) = self.file_modified.lock() {
                *seen = modified;
            }
        }
    }

    /// Re-reads the key file (a no-op for inline keys).
    pub fn reload(&self) -> Result<(), VaultError> {
        if let KeySource::File(path) = &self.source {
            let fresh = Arc::new(read_key_file(path)?);
            self.note_file_read();
            tracing::info!(keys = ?fresh.ids(), "reloaded the master key file");
            match self.ring.write() {
                Ok(mut ring) => *ring = fresh,
                Err(poisoned) => *poisoned.into_inner() = fresh,
            }
        }
        Ok(())
    }

    /// Makes `ring` this process's keyring (and the key file's, if any).
    pub fn install(&self, ring: Keyring) -> Result<(), VaultError> {
        if let KeySource::File(path) = &self.source {
            write_key_file(path, &ring)?;
            self.note_file_read();
        }
        let ring = Arc::new(ring);
        match self.ring.write() {
            Ok(mut current) => *current = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
        Ok(())
    }
}

fn read_key_file(path: &Path) -> Result<Keyring, VaultError> {
    let text = std::fs::read_to_string(path).map_err(|source| VaultError::KeyFile {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    Keyring::parse(&SecretString::from(text))
}

/// Writes atomically (temp file, fsync, rename) with mode 0600, so a crash
/// never leaves a half-written key file and nobody else can read it.
fn write_key_file(path: &Path, ring: &Keyring) -> Result<(), VaultError> {
    let fail = |action, source| VaultError::KeyFile {
        action,
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("key.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(|e| fail("create", e))?;
    file.write_all(ring.to_text().expose_secret().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| fail("write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail("replace", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_private_key_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let (vault, created) = Vault::load_or_create_file(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, created) = Vault::load_or_create_file(&path).unwrap();
        assert!(!created);
        assert_eq!(vault.keyring().ids(), again.keyring().ids());
    }

    #[test]
    fn a_running_vault_picks_up_a_rotated_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let (running, _) = Vault::load_or_create_file(&path).unwrap();
        // Another process (the rotate command) installs a new key and seals with it.
        let (rotator, _) = Vault::load_or_create_file(&path).unwrap();
        rotator
            .install(rotator.keyring().with_new_active_key().unwrap())
            .unwrap();
        let (id, sealed) = rotator.seal(b"creds", b"row").unwrap();
        assert_eq!(
            running
                .open(id.as_str(), &sealed, b"row")
                .unwrap()
                .as_slice(),
            b"creds"
        );
    }
}
