use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::VaultError;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// A master key's public name, stored beside every ciphertext it seals.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MasterKeyId(String);

impl MasterKeyId {
    fn parse(s: &str) -> Result<Self, VaultError> {
        let ok = (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(VaultError::BadKeyring(format!(
                "key id `{s}` must be 1-32 of A-Z a-z 0-9 - _ ."
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MasterKeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

struct MasterKey {
    id: MasterKeyId,
    key: SecretBox<[u8; 32]>,
}

/// One or more master keys; the first one seals.
///
/// Text form (`ROLLCALL_MASTER_KEY`, or the key file): entries separated by
/// whitespace or commas, each `ID:BASE64` for 32 key bytes. A bare `BASE64`
/// entry gets an id derived from the key itself, so it stays stable.
pub struct Keyring {
    keys: Vec<MasterKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.ids())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    pub fn parse(text: &SecretString) -> Result<Self, VaultError> {
        let mut keys = Vec::new();
        for entry in text
            .expose_secret()
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|e| !e.is_empty())
        {
            let (id, encoded) = match entry.split_once(':') {
                Some((id, encoded)) => (Some(MasterKeyId::parse(id)?), encoded),
                None => (None, entry),
            };
            let bytes = Zeroizing::new(
                STANDARD
                    .decode(encoded)
                    .map_err(|_| VaultError::BadKeyring("a key is not valid base64".into()))?,
            );
            let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                VaultError::BadKeyring(format!("a key must be 32 bytes, got {}", bytes.len()))
            })?;
            let id = match id {
                Some(id) => id,
                None => derived_id(&key),
            };
            if keys.iter().any(|k: &MasterKey| k.id == id) {
                return Err(VaultError::BadKeyring(format!(
                    "key id `{id}` appears twice"
                )));
            }
            keys.push(MasterKey {
                id,
                key: SecretBox::new(Box::new(key)),
            });
        }
        if keys.is_empty() {
            return Err(VaultError::BadKeyring("no key given".into()));
        }
        Ok(Self { keys })
    }

    /// A keyring of one new random key.
    pub fn generate() -> Result<Self, VaultError> {
        Ok(Self {
            keys: vec![random_key()?],
        })
    }

    /// This keyring with a new random key in front (it seals from now on);
    /// the old keys still open what they sealed.
    pub fn with_new_active_key(&self) -> Result<Self, VaultError> {
        let mut keys = vec![random_key()?];
        keys.extend(self.keys.iter().map(clone_key));
        Ok(Self { keys })
    }

    /// This keyring with only the keys in `keep` (the active key always stays).
    pub fn retaining(&self, keep: &[MasterKeyId]) -> Self {
        let keys = self
            .keys
            .iter()
            .enumerate()
            .filter(|(i, k)| *i == 0 || keep.contains(&k.id))
            .map(|(_, k)| clone_key(k))
            .collect();
        Self { keys }
    }

    pub fn to_text(&self) -> SecretString {
        let text = self
            .keys
            .iter()
            .map(|k| format!("{}:{}", k.id, STANDARD.encode(k.key.expose_secret())))
            .collect::<Vec<_>>()
            .join("\n");
        SecretString::from(text + "\n")
    }

    pub fn active_id(&self) -> &MasterKeyId {
        // `parse`, `generate` and `retaining` never build an empty keyring.
        &self.keys[0].id
    }

    pub fn ids(&self) -> Vec<MasterKeyId> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    pub fn has(&self, id: &str) -> bool {
        self.keys.iter().any(|k| k.id.as_str() == id)
    }

    /// A 32-byte key for another purpose (signing cursors, say), derived
    /// from the active master key so every node sharing the keyring agrees.
    pub fn derive_subkey(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let mut hasher = Sha256::new();
        hasher.update(b"rollcall-subkey-v1\0");
        hasher.update(purpose.as_bytes());
        hasher.update(b"\0");
        hasher.update(self.keys[0].key.expose_secret());
        Zeroizing::new(hasher.finalize().into())
    }

    /// Seals `plaintext` under the active key, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<(MasterKeyId, Vec<u8>), VaultError> {
        let active = &self.keys[0];
        let cipher = cipher(active);
        let mut nonce_bytes = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce_bytes).map_err(|_| VaultError::Random)?;
        let nonce = XNonce::from(nonce_bytes);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| VaultError::Tampered)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        Ok((active.id.clone(), out))
    }

    /// Opens what `seal` made with the key `key_id` for the same `aad`.
    pub fn open(
        &self,
        key_id: &str,
        sealed: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id.as_str() == key_id)
            .ok_or_else(|| VaultError::UnknownKey(key_id.to_owned()))?;
        let (version, rest) = sealed.split_first().ok_or(VaultError::Tampered)?;
        if *version != VERSION || rest.len() < NONCE_LEN {
            return Err(VaultError::Tampered);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| VaultError::Tampered)?;
        cipher(key)
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Tampered)
    }
}

fn cipher(key: &MasterKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.key.expose_secret().into())
}

fn clone_key(k: &MasterKey) -> MasterKey {
    MasterKey {
        id: k.id.clone(),
        key: SecretBox::new(Box::new(*k.key.expose_secret())),
    }
}

fn random_key() -> Result<MasterKey, VaultError> {
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::fill(key.as_mut()).map_err(|_| VaultError::Random)?;
    let mut id = [0u8; 4];
    getrandom::fill(&mut id).map_err(|_| VaultError::Random)?;
    Ok(MasterKey {
        id: MasterKeyId(format!("k{}", hex4(&id))),
        key: SecretBox::new(Box::new(*key)),
    })
}

fn derived_id(key: &[u8; 32]) -> MasterKeyId {
    let digest = Sha256::digest(key);
    MasterKeyId(format!("k{}", hex4(&digest[..4])))
}

fn hex4(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(text: &str) -> Keyring {
        Keyring::parse(&SecretString::from(text.to_owned())).unwrap()
    }

    const K1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const K2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

    #[test]
    fn seals_and_opens_bound_to_the_row() {
        let keys = ring(K1);
        let (id, sealed) = keys.seal(b"token:secret", b"tenant/acct").unwrap();
        assert_eq!(
            keys.open(id.as_str(), &sealed, b"tenant/acct")
                .unwrap()
                .as_slice(),
            b"token:secret"
        );
        assert!(
            !sealed.windows(6).any(|w| w == b"secret"),
            "ciphertext leaks plaintext"
        );
        // Another row's AAD, a flipped bit, a truncation: all refused.
        assert!(matches!(
            keys.open(id.as_str(), &sealed, b"tenant/other"),
            Err(VaultError::Tampered)
        ));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            keys.open(id.as_str(), &flipped, b"tenant/acct"),
            Err(VaultError::Tampered)
        ));
        assert!(matches!(
            keys.open(id.as_str(), &sealed[..10], b"tenant/acct"),
            Err(VaultError::Tampered)
        ));
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let old = ring(&format!("old:{K1}"));
        let (old_id, sealed) = old.seal(b"x", b"a").unwrap();
        let both = ring(&format!("new:{K2},old:{K1}"));
        assert_eq!(both.active_id().as_str(), "new");
        assert_eq!(
            both.open(old_id.as_str(), &sealed, b"a")
                .unwrap()
                .as_slice(),
            b"x"
        );
        let (new_id, _) = both.seal(b"y", b"a").unwrap();
        assert_eq!(new_id.as_str(), "new");
        assert!(matches!(
            ring(K2).open("old", &sealed, b"a"),
            Err(VaultError::UnknownKey(_))
        ));
    }

    #[test]
    fn bare_keys_get_stable_ids_and_text_round_trips() {
        assert_eq!(ring(K1).active_id(), ring(K1).active_id());
        let rotated = ring(K1).with_new_active_key().unwrap();
        assert_eq!(rotated.ids().len(), 2);
        let again = Keyring::parse(&rotated.to_text()).unwrap();
        assert_eq!(again.ids(), rotated.ids());
        let trimmed = again.retaining(&[]);
        assert_eq!(trimmed.ids(), vec![rotated.active_id().clone()]);
    }

    #[test]
    fn bad_keyrings_are_explained_without_the_key() {
        for bad in [
            "",
            "not base64!",
            "AQID",
            &format!("a:{K1} a:{K2}"),
            &format!("bad id:{K1}"),
        ] {
            let err = Keyring::parse(&SecretString::from(bad.to_owned())).unwrap_err();
            assert!(matches!(err, VaultError::BadKeyring(_)), "{bad}");
        }
        assert!(!format!("{:?}", ring(K1)).contains(K1));
    }
}
