//! The contract's stable error codes (section 1) and their HTTP statuses.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    Unauthenticated,
    NotFound,
    Conflict,
    UnsupportedByProvider,
    ProviderAuthFailed,
    ProviderRateLimited,
    ProviderUnavailable,
    ProviderError,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::Unauthenticated => "unauthenticated",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::UnsupportedByProvider => "unsupported_by_provider",
            Self::ProviderAuthFailed => "provider_auth_failed",
            Self::ProviderRateLimited => "provider_rate_limited",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::ProviderError => "provider_error",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status a response with this code carries.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::Unauthenticated => 401,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::UnsupportedByProvider => 501,
            Self::ProviderAuthFailed => 422,
            Self::ProviderRateLimited => 429,
            Self::ProviderUnavailable => 503,
            Self::ProviderError => 502,
            Self::Internal => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error body of every failed call:
/// `{"error":{"code","message","request_id","remote"?}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteAnswer>,
    /// Seconds after which a retry may succeed (also sent as `Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// What the vendor answered, attached when a vendor call caused the error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RemoteAnswer {
    pub status: u16,
    /// The vendor's body: its JSON, or its text as a string.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_contract_names() {
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::UnsupportedByProvider,
            ErrorCode::ProviderRateLimited,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().into()));
        }
    }
}
