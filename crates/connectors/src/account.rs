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
use crate::guard::{Breaker, Limiter, RateSnapshot, RetryPolicy, VendorGuards};
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
    pub fn json<'a, T: serde::Deserialize<'a>>(&'a self) -> Result<T, ConnectorError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            // The raw answer helps whoever debugs the vendor; capped, and
            // only at debug level.
            let raw: String = String::from_utf8_lossy(&self.body).chars().take(2_048).collect();
            tracing::debug!(status = self.status, body = %raw, error = %e, "unreadable vendor answer");
            ConnectorError::BadResponse(format!("HTTP {} answer is not the expected JSON: {e}", self.status))
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
    pub(crate) fn cell(&self, key: &str) -> Arc<SessionCell> {
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
    limiter: Arc<Limiter>,
    breaker: Arc<Breaker>,
    policy: RetryPolicy,
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
        guards: &VendorGuards,
        clock: SharedClock,
    ) -> Self {
        let session = matches!(
            credentials,
            Credentials::Metabase(MetabaseCredentials::Password { .. })
        )
        .then(|| guards.sessions.cell(session_key));
        let limiter = guards.limiter(&credential_key(&config, &credentials), config.rate_limit());
        let account = session_key.split('#').next().unwrap_or(session_key);
        Self {
            limiter,
            breaker: guards.breaker(account),
            policy: guards.policy.clone(),
            config,
            credentials,
            http,
            session,
            clock,
        }
    }

    /// Our view of this credential's rate allowance, for `ratelimit-*` headers.
    pub fn rate_snapshot(&self) -> Option<RateSnapshot> {
        self.limiter.snapshot(self.clock.now_millis())
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

    /// Sends `request` with the stored credentials, within this process's
    /// limits for the credential and the account: it waits for room under
    /// the vendor's rate limit, fails fast while the account's circuit is
    /// open, and retries answers worth retrying (429, 502, 503, 504, and
    /// connections that never opened) with jittered backoff, honouring
    /// `Retry-After`, until the deadline. Only requests that are safe to
    /// repeat are retried: reads, and writes that provably never reached the
    /// vendor. The last answer is returned as it is.
    pub async fn send(&self, request: VendorRequest) -> Result<reqwest::Response, ConnectorError> {
        let VendorRequest {
            method,
            path_and_query,
            headers,
            body,
        } = request;
        let clock = self.clock.as_ref();
        let deadline = clock.now_millis() + millis(self.policy.deadline);
        let safe = matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
        // Bytes are kept to send again; a stream can be sent once.
        let (held, mut streamed) = match body {
            VendorBody::Bytes(bytes) => (Some(bytes), None),
            VendorBody::Stream(stream) => (None, Some(stream)),
            VendorBody::Empty => (None, None),
        };
        let mut last_remote: Option<Remote> = None;
        for attempt in 0.. {
            let now = clock.now_millis();
            if let Err(open) = self.breaker.admit(now, &self.policy) {
                return Err(ConnectorError::CircuitOpen {
                    retry_in_secs: open.retry_in_secs,
                    remote: last_remote,
                });
            }
            if let Err(full) = self.limiter.acquire(clock, deadline).await {
                return Err(ConnectorError::RateLimited {
                    retry_after_secs: full.retry_after_secs,
                    remote: last_remote,
                });
            }
            let body = match (&held, streamed.take()) {
                (Some(bytes), _) => VendorBody::Bytes(bytes.clone()),
                (None, Some(stream)) => VendorBody::Stream(stream),
                (None, None) => VendorBody::Empty,
            };
            let replayable = streamed.is_none() && !matches!(body, VendorBody::Stream(_));
            // Each attempt gets the vendor timeout, or what is left of the deadline.
            let remaining = std::time::Duration::from_millis(
                u64::try_from(deadline - clock.now_millis())
                    .unwrap_or(0)
                    .max(1),
            )
            .min(self.http.timeout());
            let outcome = self
                .send_once(&method, &path_and_query, &headers, body, remaining)
                .await;
            let now = clock.now_millis();
            let wait = |retry_after_secs: Option<u64>| -> Option<i64> {
                if attempt >= self.policy.max_retries {
                    return None;
                }
                let backoff = millis(self.policy.backoff(attempt));
                let delay = backoff.max(
                    i64::try_from(retry_after_secs.unwrap_or(0).min(3_600) * 1000).unwrap_or(0),
                );
                (now.saturating_add(delay) < deadline).then_some(delay)
            };
            match outcome {
                Ok(response) => {
                    let status = response.status().as_u16();
                    self.limiter.observe(response.headers(), status, now);
                    if status >= 500 {
                        self.breaker.failed(now, &self.policy);
                    } else {
                        self.breaker.succeeded();
                    }
                    let transient = matches!(status, 429 | 502 | 503 | 504);
                    let retry_after = response
                        .headers()
                        .get(http::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    if let (true, true, true, Some(delay)) =
                        (transient, safe, replayable, wait(retry_after))
                    {
                        let body = response.bytes().await.unwrap_or_default();
                        tracing::debug!(
                            status,
                            attempt,
                            delay_ms = delay,
                            "vendor answer worth retrying"
                        );
                        last_remote = Some(Remote::from_bytes(status, &body));
                        tokio::time::sleep(std::time::Duration::from_millis(
                            u64::try_from(delay).unwrap_or(0),
                        ))
                        .await;
                        continue;
                    }
                    return Ok(response);
                }
                Err(Attempt::NotConnected(message)) => {
                    self.breaker.failed(now, &self.policy);
                    // The vendor never saw it, so even a write may go again.
                    if let (true, Some(delay)) = (replayable, wait(None)) {
                        tracing::debug!(attempt, delay_ms = delay, %message, "vendor unreachable; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(
                            u64::try_from(delay).unwrap_or(0),
                        ))
                        .await;
                        continue;
                    }
                    return Err(ConnectorError::Unreachable(message));
                }
                Err(Attempt::Failed(e)) => {
                    if matches!(e, ConnectorError::Unreachable(_)) {
                        self.breaker.failed(now, &self.policy);
                    }
                    return Err(e);
                }
            }
        }
        Err(ConnectorError::Unreachable("no attempt was made".into()))
    }

    /// One attempt with the stored credentials. For Metabase sessions it
    /// logs in when needed and, if the vendor answers 401, logs in again once
    /// and replays (bodies held in memory only).
    async fn send_once(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: VendorBody,
        timeout: std::time::Duration,
    ) -> Result<reqwest::Response, Attempt> {
        let url = self.config.base_url().join(path_and_query);
        let base = || {
            self.http
                .client()
                .request(method.clone(), &url)
                .headers(headers.clone())
                .timeout(timeout)
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
            (Credentials::Metabase(MetabaseCredentials::Password { .. }), None) => {
                Err(Attempt::Failed(ConnectorError::Request(
                    "session credentials without a session cell".into(),
                )))
            }
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

/// How one attempt ended when it produced no answer.
#[derive(Debug)]
enum Attempt {
    /// The connection never opened: the vendor saw nothing.
    NotConnected(String),
    Failed(ConnectorError),
}

impl From<reqwest::Error> for Attempt {
    fn from(e: reqwest::Error) -> Self {
        if e.is_connect() {
            Self::NotConnected(e.to_string())
        } else {
            Self::Failed(ConnectorError::from(e))
        }
    }
}

impl From<ConnectorError> for Attempt {
    fn from(e: ConnectorError) -> Self {
        Self::Failed(e)
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Which credential a request spends the vendor's allowance of. Secrets
/// are hashed, never kept as map keys.
fn credential_key(config: &AccountConfig, credentials: &Credentials) -> String {
    use sha2::{Digest, Sha256};
    let identity = match credentials {
        Credentials::Mode(c) => format!("mode:{}", c.token),
        Credentials::Metabase(MetabaseCredentials::ApiKey { api_key }) => {
            let digest = Sha256::digest(api_key.expose_secret().as_bytes());
            format!(
                "metabase-key:{:x}",
                u64::from_be_bytes(digest[..8].try_into().unwrap_or([0; 8]))
            )
        }
        Credentials::Metabase(MetabaseCredentials::Password { username, .. }) => {
            format!("metabase-user:{username}")
        }
    };
    format!("{}|{identity}", config.base_url().as_str())
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
