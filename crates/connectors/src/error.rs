use serde::Serialize;

/// What a vendor answered: its status and body (JSON if it parsed, else the
/// text, capped), attached to errors as the contract's `remote`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Remote {
    pub status: u16,
    pub body: serde_json::Value,
}

const MAX_REMOTE_TEXT: usize = 4096;

impl Remote {
    pub fn from_bytes(status: u16, bytes: &[u8]) -> Self {
        let body = serde_json::from_slice(bytes).unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(bytes);
            let capped: String = text.chars().take(MAX_REMOTE_TEXT).collect();
            serde_json::Value::String(capped)
        });
        Self { status, body }
    }

    /// A short human description of the vendor's complaint.
    pub fn summary(&self) -> String {
        fn first_string(v: &serde_json::Value) -> Option<String> {
            match v {
                serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
                serde_json::Value::Object(map) => {
                    for key in ["message", "errors", "detail", "error"] {
                        if let Some(found) = map.get(key).and_then(first_string) {
                            return Some(found);
                        }
                    }
                    map.values().find_map(first_string)
                }
                serde_json::Value::Array(items) => items.iter().find_map(first_string),
                _ => None,
            }
        }
        first_string(&self.body).unwrap_or_else(|| format!("HTTP {}", self.status))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The vendor refused the credentials.
    #[error("the vendor rejected the credentials: {}", .0.summary())]
    AuthRejected(Remote),
    /// A Metabase login failed recently; we do not retry until the pause ends
    /// (repeated attempts would extend the vendor's login throttle).
    #[error("logins are paused for {retry_in_secs}s after the vendor refused one: {}", .remote.summary())]
    LoginPaused { retry_in_secs: u64, remote: Remote },
    /// The account's configuration does not fit the vendor (no such workspace).
    #[error("{message}")]
    NotFound { message: String, remote: Remote },
    /// The vendor answered with an error we do not interpret here.
    #[error("the vendor answered {}: {}", .0.status, .0.summary())]
    Vendor(Remote),
    /// The vendor could not be reached or did not answer in time.
    #[error("the vendor is unreachable: {0}")]
    Unreachable(String),
    /// The vendor answered something we cannot read.
    #[error("the vendor's answer is malformed: {0}")]
    BadResponse(String),
    #[error("invalid request to the vendor: {0}")]
    Request(String),
    /// No room under the vendor's rate limit before the caller's deadline.
    #[error(
        "the vendor's rate limit leaves no room before the deadline; retry in {retry_after_secs}s"
    )]
    RateLimited {
        retry_after_secs: u64,
        remote: Option<Remote>,
    },
    /// The account's circuit is open after repeated vendor failures.
    #[error("the vendor has been failing; calls are paused for {retry_in_secs}s")]
    CircuitOpen {
        retry_in_secs: u64,
        remote: Option<Remote>,
    },
}

impl ConnectorError {
    pub fn remote(&self) -> Option<&Remote> {
        match self {
            Self::AuthRejected(r) | Self::Vendor(r) => Some(r),
            Self::LoginPaused { remote, .. } | Self::NotFound { remote, .. } => Some(remote),
            Self::RateLimited { remote, .. } | Self::CircuitOpen { remote, .. } => remote.as_ref(),
            _ => None,
        }
    }
}

impl ConnectorError {
    /// When the caller may usefully try again, if we know.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::CircuitOpen { retry_in_secs, .. } | Self::LoginPaused { retry_in_secs, .. } => {
                Some(*retry_in_secs)
            }
            _ => None,
        }
    }
}

impl From<reqwest::Error> for ConnectorError {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() || e.is_connect() || e.is_request() {
            Self::Unreachable(e.to_string())
        } else if e.is_decode() || e.is_body() {
            Self::BadResponse(e.to_string())
        } else {
            Self::Unreachable(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_find_the_vendors_words() {
        let mode = Remote::from_bytes(401, br#"{"id":"unauthorized","message":"Unauthorized"}"#);
        assert_eq!(mode.summary(), "Unauthorized");
        let mb = Remote::from_bytes(
            401,
            br#"{"errors":{"password":"did not match stored password"}}"#,
        );
        assert_eq!(mb.summary(), "did not match stored password");
        let text = Remote::from_bytes(401, b"Unauthenticated");
        assert_eq!(text.body, serde_json::json!("Unauthenticated"));
        assert_eq!(Remote::from_bytes(502, b"").summary(), "HTTP 502");
    }
}
