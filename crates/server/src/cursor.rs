//! Opaque list cursors. A cursor carries the last id of a page and a
//! fingerprint of the query (including the tenant) it belongs to, signed
//! with a key derived from the master key: a tampered cursor, or one reused
//! with other filters or by another tenant, is a 400, never a 500 and never
//! someone else's data.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::ApiError;

const MAC_LEN: usize = 16;

/// The contract's list envelope: `{result, next_cursor, result_count}`,
/// plus `is_partial_response: true` when objects lack fields that would
/// need one vendor call each.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListEnvelope<T> {
    pub result: Vec<T>,
    /// Pass back as `next_cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    pub result_count: usize,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_partial_response: bool,
}

impl<T> ListEnvelope<T> {
    pub fn new(result: Vec<T>, next_cursor: Option<String>, is_partial_response: bool) -> Self {
        Self {
            result_count: result.len(),
            result,
            next_cursor,
            is_partial_response,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Payload {
    /// The last id of the page this cursor follows.
    a: String,
    /// SHA-256 prefix of the query fingerprint.
    q: String,
}

pub struct CursorCodec {
    key: zeroize::Zeroizing<[u8; 32]>,
}

impl CursorCodec {
    pub fn new(vault: &rollcall_vault::Vault) -> Self {
        Self {
            key: vault.keyring().derive_subkey("list-cursor"),
        }
    }

    fn mac(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let mut out = [0u8; MAC_LEN];
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.as_slice()) {
            mac.update(data);
            let full = mac.finalize().into_bytes();
            out.copy_from_slice(&full[..MAC_LEN]);
        }
        out
    }

    /// `query` names everything the page depends on (route, tenant, filters).
    pub fn encode(&self, after: &str, query: &str) -> String {
        let payload = Payload {
            a: after.to_owned(),
            q: fingerprint(query),
        };
        let json = serde_json::to_vec(&payload).unwrap_or_default();
        let mac = self.mac(&json);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&json),
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    pub fn decode(&self, cursor: &str, query: &str) -> Result<String, ApiError> {
        let bad = || ApiError::invalid_request("next_cursor is not valid for this query");
        let (data, mac) = cursor.split_once('.').ok_or_else(bad)?;
        let data = URL_SAFE_NO_PAD.decode(data).map_err(|_| bad())?;
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| bad())?;
        if !bool::from(self.mac(&data).ct_eq(mac.as_slice())) {
            return Err(bad());
        }
        let payload: Payload = serde_json::from_slice(&data).map_err(|_| bad())?;
        if payload.q != fingerprint(query) {
            return Err(bad());
        }
        Ok(payload.a)
    }

    /// A page of at most `limit` rows from `rows` fetched with `limit + 1`
    /// (the extra row only says that another page exists), and the cursor
    /// after its last row, by `position`; `None` on the last page.
    pub fn page<T>(
        &self,
        mut rows: Vec<T>,
        limit: u32,
        query: &str,
        position: impl Fn(&T) -> String,
    ) -> (Vec<T>, Option<String>) {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = match rows.last() {
            Some(last) if more => Some(self.encode(&position(last), query)),
            _ => None,
        };
        (rows, next)
    }
}

fn fingerprint(query: &str) -> String {
    use sha2::Digest as _;
    let digest = Sha256::digest(query.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

/// `limit` as the contract defines it: default 100, 1 to 1000.
pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(100),
        Some(n @ 1..=1000) => Ok(n),
        Some(n) => Err(ApiError::invalid_request(format!(
            "limit must be between 1 and 1000, got {n}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> CursorCodec {
        CursorCodec {
            key: zeroize::Zeroizing::new([5; 32]),
        }
    }

    #[test]
    fn cursors_round_trip_only_for_their_own_query() {
        let c = codec();
        let cursor = c.encode("acct_1", "accounts|tn_a|provider=mode");
        assert_eq!(
            c.decode(&cursor, "accounts|tn_a|provider=mode").unwrap(),
            "acct_1"
        );
        assert!(
            c.decode(&cursor, "accounts|tn_b|provider=mode").is_err(),
            "another tenant"
        );
        assert!(
            c.decode(&cursor, "accounts|tn_a|provider=metabase")
                .is_err(),
            "other filters"
        );
    }

    #[test]
    fn tampered_or_garbage_cursors_are_refused() {
        let c = codec();
        let cursor = c.encode("acct_1", "q");
        let (data, mac) = cursor.split_once('.').unwrap();
        let forged_data = URL_SAFE_NO_PAD.encode(br#"{"a":"acct_0","q":"x"}"#);
        for bad in [
            format!("{forged_data}.{mac}"),
            format!("{data}.AAAA"),
            "x".into(),
            "".into(),
            "..".into(),
        ] {
            assert_eq!(
                c.decode(&bad, "q").unwrap_err().code,
                rollcall_core::ErrorCode::InvalidRequest
            );
        }
    }

    #[test]
    fn limits_follow_the_contract() {
        assert_eq!(page_limit(None).unwrap(), 100);
        assert_eq!(page_limit(Some(1000)).unwrap(), 1000);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(1001)).is_err());
    }
}
