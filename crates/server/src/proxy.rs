//! The Proxy API: `ANY /proxy/{account}/{vendor path}` forwards to the
//! account's base URL with the stored credentials injected, and returns the
//! vendor's status, headers and body unchanged, streamed both ways.
//!
//! Safety: the vendor path cannot leave the base URL (no `..`, no encoded
//! slashes, the final URL is re-checked against the base), credentials the
//! caller sends for the vendor are dropped, bodies are size-limited, and
//! redirects to other origins are not followed. Rollcall's own failures
//! carry `x-rollcall-error: 1`.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use futures_util::TryStreamExt as _;
use rollcall_connectors::{VendorBody, VendorRequest};
use rollcall_core::ErrorCode;

use crate::accounts::{connector_error, load_linked, note_vendor_verdict};
use crate::app::AppState;
use crate::auth::ProxyCaller;
use crate::error::ApiError;

/// Bodies up to this size are held in memory, so a request can be replayed
/// after a Metabase re-login; larger ones stream through.
const REPLAYABLE_BODY_BYTES: usize = 1024 * 1024;

pub fn routes() -> Router<AppState> {
    // `any` takes every method, so these routes are plain axum ones and
    // their documentation comes from [`ProxyDoc`].
    Router::new()
        .route("/proxy/{account}", any(proxy_root))
        .route("/proxy/{account}/{*path}", any(proxy))
}

/// The proxy's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(proxy_root, proxy))]
pub struct ProxyDoc;

/// The vendor's API root for this account, as `/proxy/{account}/{path}`.
#[utoipa::path(method(get, post, put, patch, delete), path = "/proxy/{account}", tag = "proxy",
    params(("account" = String, Path, description = "integrated account id")),
    responses((status = 200, description = "the vendor's answer, unchanged")))]
async fn proxy_root(
    state: State<AppState>,
    caller: Result<ProxyCaller, ApiError>,
    params: Path<Vec<(String, String)>>,
    request: Request,
) -> Response {
    proxy(state, caller, params, request).await
}

/// The vendor's own API with the stored credentials injected: method,
/// query, body and content headers go through; status, headers (less
/// hop-by-hop ones and cookies) and body come back unchanged. Rollcall's own
/// failures carry `x-rollcall-error: 1`. The Rollcall key may also be sent
/// as Metabase's `X-API-KEY` or as Mode's Basic-auth user name.
#[utoipa::path(method(get, post, put, patch, delete), path = "/proxy/{account}/{path}", tag = "proxy",
    params(("account" = String, Path, description = "integrated account id"), ("path" = String, Path, description = "the vendor path, e.g. `api/user`")),
    responses((status = 200, description = "the vendor's answer, unchanged"),
        (status = 400, description = "a path that leaves the base URL", body = rollcall_core::error::ErrorEnvelope),
        (status = 404, description = "no such account", body = rollcall_core::error::ErrorEnvelope),
        (status = 503, description = "the vendor is unreachable", body = rollcall_core::error::ErrorEnvelope)))]
async fn proxy(
    State(state): State<AppState>,
    caller: Result<ProxyCaller, ApiError>,
    Path(params): Path<Vec<(String, String)>>,
    request: Request,
) -> Response {
    let account = params.first().map(|(_, v)| v.clone()).unwrap_or_default();
    match forward(&state, caller, &account, request).await {
        Ok(response) => response,
        Err(error) => {
            let mut response = error.into_response();
            response.headers_mut().insert(
                HeaderName::from_static("x-rollcall-error"),
                HeaderValue::from_static("1"),
            );
            response
        }
    }
}

async fn forward(
    state: &AppState,
    caller: Result<ProxyCaller, ApiError>,
    account_id: &str,
    request: Request,
) -> Result<Response, ApiError> {
    let ProxyCaller(caller) = caller?;
    let (parts, body) = request.into_parts();
    let path_and_query = vendor_path(parts.uri.path(), parts.uri.query(), account_id)?;
    let (row, account) = load_linked(state, &caller.tenant_id, account_id).await?;
    ensure_within_base(account.config().base_url().as_str(), &path_and_query)?;

    let body = request_body(state, &parts.headers, body).await?;
    let outbound = VendorRequest {
        method: parts.method.clone(),
        path_and_query,
        headers: forwardable(&parts.headers, RequestOrResponse::Request),
        body,
    };
    let response = match account.send(outbound).await {
        Ok(response) => response,
        Err(e) => {
            if matches!(e, rollcall_connectors::ConnectorError::AuthRejected(_)) {
                note_vendor_verdict(state, &row, false, Some(e.to_string())).await;
            }
            return Err(connector_error(e));
        }
    };

    crate::ratelimit::record(account.rate_snapshot());
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED {
        note_vendor_verdict(
            state,
            &row,
            false,
            Some("the vendor answered 401 to the stored credentials".into()),
        )
        .await;
    } else if status.is_success() {
        note_vendor_verdict(state, &row, true, None).await;
    }
    let headers = forwardable(response.headers(), RequestOrResponse::Response);
    let mut out = Response::new(Body::from_stream(response.bytes_stream()));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

/// The vendor path and query from the raw request URI, refusing anything
/// that could climb out of the base URL.
fn vendor_path(raw_path: &str, query: Option<&str>, account_id: &str) -> Result<String, ApiError> {
    let prefix = format!("/proxy/{account_id}");
    let rest = raw_path.strip_prefix(&prefix).unwrap_or("");
    let rest = if rest.is_empty() { "/" } else { rest };
    let lowered = rest.to_ascii_lowercase();
    let climbs = rest.split('/').any(|seg| seg == ".." || seg == ".")
        || ["%2f", "%5c", "%2e", "\\", "//"]
            .iter()
            .any(|bad| lowered.contains(bad))
        || lowered.contains("://");
    if climbs || !rest.starts_with('/') {
        return Err(ApiError::invalid_request(
            "the vendor path must be a plain path under the account's base URL",
        ));
    }
    Ok(match query {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    })
}

/// Belt and braces: the URL we are about to call is on the base URL's origin
/// and under its path.
fn ensure_within_base(base: &str, path_and_query: &str) -> Result<(), ApiError> {
    let escape = || ApiError::invalid_request("the vendor path leaves the account's base URL");
    let base_url = reqwest::Url::parse(base).map_err(ApiError::internal)?;
    let target = reqwest::Url::parse(&format!("{base}{path_and_query}")).map_err(|_| escape())?;
    let same_origin = base_url.scheme() == target.scheme()
        && base_url.host_str() == target.host_str()
        && base_url.port_or_known_default() == target.port_or_known_default();
    let base_path = base_url.path().trim_end_matches('/');
    if same_origin && target.path().starts_with(base_path) {
        Ok(())
    } else {
        Err(escape())
    }
}

async fn request_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<VendorBody, ApiError> {
    let limit = state.settings.proxy_max_body_bytes;
    let too_large = || {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the request body is larger than the proxy's limit of {limit} bytes"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    match declared {
        // No length and no chunking means no body (HTTP/1.1 message framing).
        None if !chunked => Ok(VendorBody::Empty),
        Some(0) => Ok(VendorBody::Empty),
        Some(n) if n > limit => Err(too_large()),
        Some(n) if n <= REPLAYABLE_BODY_BYTES => {
            let bytes = axum::body::to_bytes(body, limit)
                .await
                .map_err(|_| too_large())?;
            Ok(VendorBody::Bytes(bytes))
        }
        _ => {
            // Unknown or large length: stream, counting, and fail past the limit.
            let mut seen = 0usize;
            let stream = body
                .into_data_stream()
                .map_err(std::io::Error::other)
                .and_then(move |chunk: Bytes| {
                    seen += chunk.len();
                    let over = seen > limit;
                    async move {
                        if over {
                            Err(std::io::Error::other("request body over the proxy limit"))
                        } else {
                            Ok(chunk)
                        }
                    }
                });
            Ok(VendorBody::Stream(reqwest::Body::wrap_stream(stream)))
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RequestOrResponse {
    Request,
    Response,
}

/// Headers that pass through: everything end-to-end, less hop-by-hop ones,
/// cookies, and (towards the vendor) any credential the caller sent.
fn forwardable(headers: &HeaderMap, direction: RequestOrResponse) -> HeaderMap {
    const HOP_BY_HOP: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    ];
    const CALLER_CREDENTIALS: &[&str] =
        &["authorization", "x-api-key", "x-metabase-session", "cookie"];
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let n = name.as_str();
        let drop = HOP_BY_HOP.contains(&n)
            || match direction {
                RequestOrResponse::Request => {
                    CALLER_CREDENTIALS.contains(&n) || n.starts_with("x-rollcall-")
                }
                RequestOrResponse::Response => n == "set-cookie" || n == "x-request-id",
            };
        if !drop {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_pass_and_climbing_ones_do_not() {
        assert_eq!(
            vendor_path("/proxy/a/api/user", Some("limit=5"), "a").unwrap(),
            "/api/user?limit=5"
        );
        assert_eq!(vendor_path("/proxy/a", None, "a").unwrap(), "/");
        for bad in [
            "/proxy/a/../b",
            "/proxy/a/api/%2e%2e/x",
            "/proxy/a/api%2Fuser",
            "/proxy/a//evil.example/x",
            "/proxy/a/http://evil.example",
            "/proxy/a/api\\..\\x",
        ] {
            assert!(vendor_path(bad, None, "a").is_err(), "{bad}");
        }
    }

    #[test]
    fn the_final_url_must_stay_under_the_base() {
        assert!(ensure_within_base("https://m.example/metabase", "/api/user").is_ok());
        assert!(ensure_within_base("https://m.example/metabase", "/../x").is_err());
        assert!(ensure_within_base("https://m.example", "@evil.example/x").is_err());
    }

    #[test]
    fn credentials_and_hop_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer rk_x"));
        h.insert("x-api-key", HeaderValue::from_static("mb_caller"));
        h.insert("connection", HeaderValue::from_static("close"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("x-custom", HeaderValue::from_static("kept"));
        let out = forwardable(&h, RequestOrResponse::Request);
        assert_eq!(out.len(), 2);
        assert!(out.contains_key("content-type") && out.contains_key("x-custom"));

        let mut r = HeaderMap::new();
        r.insert("set-cookie", HeaderValue::from_static("metabase.SESSION=x"));
        r.insert("content-type", HeaderValue::from_static("text/plain"));
        let out = forwardable(&r, RequestOrResponse::Response);
        assert_eq!(out.len(), 1);
    }
}
