//! The credential vault: vendor credentials are sealed with
//! XChaCha20-Poly1305 under a master key before they reach the store.
//!
//! - Every ciphertext records the id of the key that sealed it, so keys can
//!   rotate: the first key of a [`Keyring`] seals, every key can open.
//! - Every ciphertext is bound to its row through associated data (AAD): a
//!   sealed blob copied onto another account's row does not open.
//! - Key material lives in `secrecy` boxes and is zeroed on drop; nothing
//!   here implements a `Debug` that shows it.
//!
//! Sealed layout: `0x01 ‖ nonce (24 bytes) ‖ ciphertext ‖ tag (16 bytes)`.

mod keyring;
mod keysource;

pub use keyring::{Keyring, MasterKeyId};
pub use keysource::{KeySource, Vault};

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("no master key with id `{0}` is configured")]
    UnknownKey(String),
    #[error("the sealed value is damaged, or was sealed for another record")]
    Tampered,
    #[error("the master key configuration is invalid: {0}")]
    BadKeyring(String),
    #[error("the system random source failed")]
    Random,
    #[error("cannot {action} the master key file {path}: {source}")]
    KeyFile {
        action: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}
