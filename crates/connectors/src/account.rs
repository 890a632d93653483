//! A linked account ready to call: its configuration and credentials, and
//! the mechanics of injecting them (HTTP Basic for Mode, `X-API-KEY` or a
//! renewed session for Metabase).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use rollcall_core::SharedClock;
use secrecy::{ExposeSecret, SecretString};

use crate::config::{AccountConfig, MetabaseConfig};
use crate::credentials::{Credentials, MetabaseCredentials};
use crate::error::{ConnectorError, Remote};
use crate::http::VendorHttp;
use crate::metabase::SessionCell;

/// A request for the vendor, relative to the account's base URL.
#[derive(Debug)]
pub struct VendorRequest {
    pub method: Method,
    /// Starts with `/`, e.g. `/api/user?limit=5`.
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: VendorBody,
}

impl VendorRequest {
    pub fn get(path_and_query: impl Into<String>) -> Self {
        Self::without_body(Method::GET, path_and_query)
    }

    pub fn without_body(method: Method, path_and_query: impl Into<String>) -> Self {
        Self {
            method,
            path_and_query: path_and_query.into(),
            headers: HeaderMap::new(),
            body: VendorBody::Empty,
        }
    }

    /// A request with a JSON body (held in memory, so it can be replayed).
    pub fn json(
        method: Method,
        path_and_query: impl Into<String>,
        body: &serde_json::Value,
    ) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Self {
            method,
            path_and_query: path_and_query.into(),
            headers,
            body: VendorBody::Bytes(Bytes::from(serde_json::to_vec(body).unwrap_or_default())),
        }
    }
}

/// A whole vendor answer, read into memory.
#[derive(Debug, Clone)]
pub struct VendorAnswer {
    pub status: u16,
    pub body: Bytes,
}

impl VendorAnswer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn remote(&self) -> Remote {
        Remote::from_bytes(self.status, &self.body)
    }

    /// The body as `T`; a body that does not parse is a `BadResponse`
    /// naming the vendor status, never a panic.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConnectorError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ConnectorError::BadResponse(format!(
                "HTTP {} answer is not the expected JSON: {e}",
                self.status
            ))
        })
    }

    /// The body as text (Metabase's plain-text errors).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Debug)]
pub enum VendorBody {
    Empty,
    /// Held in memory, so the request can be replayed after a re-login.
    Bytes(Bytes),
    /// Streamed through; cannot be replayed.
    Stream(reqwest::Body),
}

/// Metabase sessions, one cell per account and credential version, shared by
/// every call in the process so concurrent calls log in once.
#[derive(Debug, Default)]
pub struct SessionRegistry {
    cells: Mutex<HashMap<String, Arc<SessionCell>>>,
}

impl SessionRegistry {
    fn cell(&self, key: &str) -> Arc<SessionCell> {
        match self.cells.lock() {
            Ok(mut cells) => cells.entry(key.to_owned()).or_default().clone(),
            // A poisoned map only costs a fresh login.
            Err(_) => Arc::default(),
        }
    }

    /// Drops the sessions of an account (all credential versions), e.g. when
    /// it is deleted or its credentials are replaced.
    pub fn forget(&self, account_id: &str) {
        if let Ok(mut cells) = self.cells.lock() {
            cells.retain(|key, _| !key.starts_with(&format!("{account_id}#")));
        }
    }
}

pub struct LinkedAccount {
    config: AccountConfig,
    credentials: Credentials,
    http: VendorHttp,
    session: Option<Arc<SessionCell>>,
    clock: SharedClock,
}

impl std::fmt::Debug for LinkedAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkedAccount")
            .field("config", &self.config)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl LinkedAccount {
    /// `session_key` identifies the account and its credential version
    /// (`<account id>#<version>`): new credentials never reuse old sessions.
    pub fn new(
        session_key: &str,
        config: AccountConfig,
        credentials: Credentials,
        http: VendorHttp,
        sessions: &SessionRegistry,
        clock: SharedClock,
    ) -> Self {
        let session = matches!(
            credentials,
            Credentials::Metabase(MetabaseCredentials::Password { .. })
        )
        .then(|| sessions.cell(session_key));
        Self {
            config,
            credentials,
            http,
            session,
            clock,
        }
    }

    pub fn config(&self) -> &AccountConfig {
        &self.config
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    pub(crate) fn http(&self) -> &VendorHttp {
        &self.http
    }

    pub(crate) fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Sends `request` with the stored credentials. For Metabase sessions it
    /// logs in when needed and, if the vendor answers 401, logs in again once
    /// and replays (bodies held in memory only).
    pub async fn send(&self, request: VendorRequest) -> Result<reqwest::Response, ConnectorError> {
        let VendorRequest {
            method,
            path_and_query,
            headers,
            body,
        } = request;
        let url = self.config.base_url().join(&path_and_query);
        let base = || {
            self.http
                .client()
                .request(method.clone(), &url)
                .headers(headers.clone())
        };
        let with_body = |builder: reqwest::RequestBuilder, body: VendorBody| match body {
            VendorBody::Empty => builder,
            VendorBody::Bytes(bytes) => builder.body(bytes),
            VendorBody::Stream(stream) => builder.body(stream),
        };

        match (&self.credentials, &self.session) {
            (Credentials::Mode(c), _) => {
                let builder = match (&c.discovery_token, path_and_query.starts_with("/batch/")) {
                    // The Discovery API is the one place Mode takes a bearer.
                    (Some(discovery), true) => base().bearer_auth(discovery.expose_secret()),
                    _ => base().basic_auth(&c.token, Some(c.secret.expose_secret())),
                };
                Ok(with_body(builder, body).send().await?)
            }
            (Credentials::Metabase(MetabaseCredentials::ApiKey { api_key }), _) => {
                let key = header_value(api_key)?;
                Ok(with_body(base().header("x-api-key", key), body)
                    .send()
                    .await?)
            }
            (Credentials::Metabase(MetabaseCredentials::Password { .. }), Some(cell)) => {
                let token = cell.token(self).await?;
                let replay = match &body {
                    VendorBody::Empty => Some(VendorBody::Empty),
                    VendorBody::Bytes(bytes) => Some(VendorBody::Bytes(bytes.clone())),
                    VendorBody::Stream(_) => None,
                };
                let first = with_body(
                    base().header("x-metabase-session", header_value(&token)?),
                    body,
                )
                .send()
                .await?;
                match (first.status().as_u16(), replay) {
                    (401, Some(replay)) => {
                        let fresh = cell.refresh_after_rejection(self, &token).await?;
                        Ok(with_body(
                            base().header("x-metabase-session", header_value(&fresh)?),
                            replay,
                        )
                        .send()
                        .await?)
                    }
                    _ => Ok(first),
                }
            }
            (Credentials::Metabase(MetabaseCredentials::Password { .. }), None) => Err(
                ConnectorError::Request("session credentials without a session cell".into()),
            ),
        }
    }

    /// Sends `request` and reads the whole answer. A 401 (after any
    /// re-login) means the vendor refused the stored credentials and is an
    /// `AuthRejected` error; every other status is the caller's to interpret.
    pub async fn exchange(&self, request: VendorRequest) -> Result<VendorAnswer, ConnectorError> {
        let response = self.send(request).await?;
        let status = response.status().as_u16();
        let body = response.bytes().await?;
        let answer = VendorAnswer { status, body };
        if status == 401 {
            return Err(ConnectorError::AuthRejected(answer.remote()));
        }
        Ok(answer)
    }

    /// Checks the credentials against the vendor with a call every credential
    /// kind may make (Mode: the workspace, not `/api/account`, which refuses
    /// workspace API tokens; Metabase: the current user).
    pub async fn verify(&self) -> Result<(), ConnectorError> {
        match &self.config {
            AccountConfig::Mode(mode) => {
                let workspace = &mode.workspace;
                let response = self
                    .send(VendorRequest::get(format!("/api/{workspace}")))
                    .await?;
                match expect_ok(response).await {
                    Err(ConnectorError::Vendor(remote)) if remote.status == 404 => {
                        return Err(ConnectorError::NotFound {
                            message: format!(
                                "Mode has no workspace `{workspace}` that these credentials belong to"
                            ),
                            remote,
                        });
                    }
                    other => other?,
                }
                if let Credentials::Mode(c) = &self.credentials
                    && c.discovery_token.is_some()
                {
                    let probe =
                        VendorRequest::get(format!("/batch/{workspace}/members?per_page=1"));
                    expect_ok(self.send(probe).await?).await?;
                }
                Ok(())
            }
            AccountConfig::Metabase(_) => {
                expect_ok(self.send(VendorRequest::get("/api/user/current")).await?).await
            }
        }
    }

    /// This account's vendor, behind the unified User Directory interface.
    pub fn directory(&self) -> Box<dyn crate::directory::Directory + '_> {
        match &self.config {
            AccountConfig::Mode(config) => Box::new(crate::mode::ModeDirectory::new(self, config)),
            AccountConfig::Metabase(_) => Box::new(crate::metabase::MetabaseDirectory::new(self)),
        }
    }

    pub(crate) fn metabase_config(&self) -> Option<&MetabaseConfig> {
        match &self.config {
            AccountConfig::Metabase(c) => Some(c),
            AccountConfig::Mode(_) => None,
        }
    }
}

fn header_value(secret: &SecretString) -> Result<HeaderValue, ConnectorError> {
    let mut value = HeaderValue::from_str(secret.expose_secret()).map_err(|_| {
        ConnectorError::Request("a stored credential is not a valid header value".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// 2xx is fine; 401 means the credentials were refused; anything else is
/// the vendor's error, carried with its answer.
async fn expect_ok(response: reqwest::Response) -> Result<(), ConnectorError> {
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let body = response.bytes().await.unwrap_or_default();
    let remote = Remote::from_bytes(status, &body);
    Err(if status == 401 {
        ConnectorError::AuthRejected(remote)
    } else {
        ConnectorError::Vendor(remote)
    })
}
