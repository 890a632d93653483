//! Who is calling: a tenant API key, checked on every request.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rollcall_core::id::{ApiKeyId, TenantId};
use secrecy::SecretString;

use crate::app::AppState;
use crate::error::ApiError;
use crate::keys;

/// A caller authenticated by `Authorization: Bearer <api key>`.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: TenantId,
    pub key_id: ApiKeyId,
}

impl Caller {
    /// How audit rows name this caller.
    pub fn actor(&self) -> String {
        format!("key:{}", self.key_id)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Already verified by a layer (idempotency) for this request.
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let presented = bearer(parts).ok_or_else(|| {
            ApiError::unauthenticated("missing API key: send `Authorization: Bearer <api key>`")
        })?;
        verify(state, presented).await
    }
}

/// A proxy caller: the Rollcall key may also sit in the vendor's own
/// credential slot (Metabase `X-API-KEY`, Mode Basic-auth user name), so an
/// unmodified vendor client pointed at `/proxy/<id>` works.
#[derive(Debug, Clone)]
pub struct ProxyCaller(pub Caller);

impl FromRequestParts<AppState> for ProxyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = bearer(parts)
            .or_else(|| rollcall_key_in_api_key_header(parts))
            .or_else(|| rollcall_key_as_basic_user(parts))
            .ok_or_else(|| {
                ApiError::unauthenticated(
                    "missing API key: send `Authorization: Bearer <api key>`, `X-API-KEY: <api key>` \
                     or HTTP Basic with the key as user name",
                )
            })?;
        Ok(Self(verify(state, presented).await?))
    }
}

async fn verify(state: &AppState, presented: SecretString) -> Result<Caller, ApiError> {
    let cache = Some((state.key_cache.as_ref(), state.clock.now_millis()));
    match keys::verify_cached(state.store.as_ref(), cache, &presented).await? {
        Some(key) => Ok(Caller {
            tenant_id: key.tenant_id,
            key_id: key.key_id,
        }),
        None => Err(ApiError::unauthenticated("the API key is not valid")),
    }
}

fn bearer(parts: &Parts) -> Option<SecretString> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| SecretString::from(token.trim().to_owned()))
}

fn rollcall_key_in_api_key_header(parts: &Parts) -> Option<SecretString> {
    let value = parts.headers.get("x-api-key")?.to_str().ok()?;
    value
        .starts_with(keys::KEY_PREFIX)
        .then(|| SecretString::from(value.to_owned()))
}

fn rollcall_key_as_basic_user(parts: &Parts) -> Option<SecretString> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let user = decoded
        .split_once(':')
        .map_or(decoded.as_str(), |(user, _)| user);
    user.starts_with(keys::KEY_PREFIX)
        .then(|| SecretString::from(user.to_owned()))
}
