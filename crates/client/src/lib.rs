//! A typed client for Rollcall's HTTP API, shared by the `rollcall` CLI and
//! the integration tests so both exercise the API exactly as users do.

use reqwest::Method;
use rollcall_core::error::ErrorEnvelope;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach Rollcall at {url}: {source}")]
    Transport { url: String, source: reqwest::Error },
    #[error("Rollcall answered {status}: {}", .envelope.error.message)]
    Api {
        status: u16,
        envelope: Box<ErrorEnvelope>,
    },
    #[error("Rollcall answered {status} with an unexpected body: {body}")]
    Unexpected { status: u16, body: String },
}

impl ClientError {
    /// The contract error code, when Rollcall answered with one.
    pub fn code(&self) -> Option<rollcall_core::ErrorCode> {
        match self {
            Self::Api { envelope, .. } => Some(envelope.error.code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Unexpected { status, .. } => Some(*status),
            Self::Transport { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Health {
    pub status: String,
}

/// An integrated account as the API returns it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Account {
    pub id: String,
    pub provider: String,
    pub label: String,
    pub tenant_ref: Option<String>,
    pub config: Value,
    pub status: String,
    pub status_detail: Option<String>,
    pub credential_type: String,
    pub created_at: String,
    pub updated_at: String,
    pub capabilities: Value,
}

/// The contract's list envelope.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Page<T> {
    pub result: Vec<T>,
    pub next_cursor: Option<String>,
    pub result_count: usize,
    #[serde(default)]
    pub is_partial_response: bool,
}

pub use rollcall_core::unified::{Group, GroupMembership, Me, Role, User};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LinkToken {
    pub token: String,
    pub url: String,
    pub expires_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SyncStarted {
    pub sync_run_id: String,
    pub queued: bool,
}

/// `GET /sync-runs/{id}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SyncRun {
    pub id: String,
    pub integrated_account_id: String,
    pub status: String,
    pub trigger: String,
    pub phase: Option<String>,
    pub progress: Option<Value>,
    pub counts: Option<Value>,
    pub error: Option<String>,
    pub attempts: i64,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
}

impl SyncRun {
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed")
    }
}

/// One change event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub integrated_account_id: Option<String>,
    pub occurred_at: String,
    pub data: Value,
}

/// `GET /events`: the cursor is always there, to ask again later.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EventPage {
    pub result: Vec<Event>,
    pub next_cursor: String,
    pub result_count: usize,
    pub has_more: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: String,
    /// Only when just created.
    pub secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub status: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

/// A time-bound access grant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Grant {
    pub id: String,
    pub integrated_account_id: String,
    pub user_id: String,
    pub group_id: String,
    pub reason: Option<String>,
    pub status: String,
    pub membership_preexisted: bool,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub ended_at: Option<String>,
    pub last_error: Option<String>,
}

/// One change of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct PlanChange {
    pub index: usize,
    pub action: String,
    pub user_id: String,
    pub email: Option<String>,
    pub group_id: Option<String>,
    pub group_name: Option<String>,
    pub reason: String,
}

/// What applying one change did.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct ChangeResult {
    pub index: usize,
    pub status: String,
    pub detail: Option<String>,
    pub error: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct Plan {
    pub id: String,
    pub integrated_account_id: String,
    pub kind: String,
    pub status: String,
    pub request: Value,
    pub changes: Vec<PlanChange>,
    pub warnings: Vec<String>,
    pub results: Option<Vec<ChangeResult>>,
    pub created_by: String,
    pub created_at: String,
    pub applied_at: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
}

impl Client {
    /// `base_url` like `http://127.0.0.1:8080` (a trailing slash is fine).
    pub fn new(base_url: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: None,
        }
    }

    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub async fn healthz(&self) -> Result<Health, ClientError> {
        self.call(Method::GET, "/healthz", None).await
    }

    /// Ready means the server and its store answer.
    pub async fn readyz(&self) -> Result<Health, ClientError> {
        self.call(Method::GET, "/readyz", None).await
    }

    /// Links an account: `body` as in the contract's `POST /integrated-accounts`.
    pub async fn create_account(&self, body: &Value) -> Result<Account, ClientError> {
        self.call(Method::POST, "/integrated-accounts", Some(body))
            .await
    }

    /// One page; `query` like `limit=10&provider=mode` (may be empty).
    pub async fn accounts(&self, query: &str) -> Result<Page<Account>, ClientError> {
        self.call(Method::GET, &format!("/integrated-accounts?{query}"), None)
            .await
    }

    pub async fn account(&self, id: &str) -> Result<Account, ClientError> {
        self.call(Method::GET, &format!("/integrated-accounts/{id}"), None)
            .await
    }

    pub async fn update_account(&self, id: &str, patch: &Value) -> Result<Account, ClientError> {
        self.call(
            Method::PATCH,
            &format!("/integrated-accounts/{id}"),
            Some(patch),
        )
        .await
    }

    pub async fn delete_account(&self, id: &str) -> Result<(), ClientError> {
        let _: Option<Value> = self
            .call(Method::DELETE, &format!("/integrated-accounts/{id}"), None)
            .await?;
        Ok(())
    }

    pub async fn create_link_token(
        &self,
        tenant_ref: Option<&str>,
    ) -> Result<LinkToken, ClientError> {
        let body = serde_json::json!({ "tenant_ref": tenant_ref });
        self.call(Method::POST, "/link-tokens", Some(&body)).await
    }

    /// One page of an account's users; `query` like `status=active&limit=50`.
    pub async fn users(&self, account: &str, query: &str) -> Result<Page<User>, ClientError> {
        self.unified_list("users", account, query).await
    }

    /// Creates a user (Mode: an invitation); `body` as in the contract.
    pub async fn create_user(&self, account: &str, body: &Value) -> Result<User, ClientError> {
        self.call(
            Method::POST,
            &unified_path("users", account, ""),
            Some(body),
        )
        .await
    }

    pub async fn user(&self, account: &str, id: &str) -> Result<User, ClientError> {
        self.call(
            Method::GET,
            &unified_path(&format!("users/{}", encode(id)), account, ""),
            None,
        )
        .await
    }

    pub async fn groups(&self, account: &str, query: &str) -> Result<Page<Group>, ClientError> {
        self.unified_list("groups", account, query).await
    }

    pub async fn group(&self, account: &str, id: &str) -> Result<Group, ClientError> {
        self.call(
            Method::GET,
            &unified_path(&format!("groups/{}", encode(id)), account, ""),
            None,
        )
        .await
    }

    pub async fn memberships(
        &self,
        account: &str,
        query: &str,
    ) -> Result<Page<GroupMembership>, ClientError> {
        self.unified_list("group-memberships", account, query).await
    }

    /// Adds a user to a group; an existing membership comes back unchanged.
    pub async fn add_member(
        &self,
        account: &str,
        group_id: &str,
        user_id: &str,
    ) -> Result<GroupMembership, ClientError> {
        let body = serde_json::json!({ "group_id": group_id, "user_id": user_id });
        self.call(
            Method::POST,
            &unified_path("group-memberships", account, ""),
            Some(&body),
        )
        .await
    }

    pub async fn remove_member(
        &self,
        account: &str,
        group_id: &str,
        user_id: &str,
    ) -> Result<(), ClientError> {
        let id = format!("{group_id}:{user_id}");
        let path = unified_path(&format!("group-memberships/{}", encode(&id)), account, "");
        let _: Option<Value> = self.call(Method::DELETE, &path, None).await?;
        Ok(())
    }

    pub async fn roles(&self, account: &str) -> Result<Page<Role>, ClientError> {
        self.unified_list("roles", account, "").await
    }

    pub async fn me(&self, account: &str) -> Result<Me, ClientError> {
        self.call(Method::GET, &unified_path("me", account, ""), None)
            .await
    }

    /// Queues a sync of the account (or finds the one already queued).
    pub async fn start_sync(&self, account: &str) -> Result<SyncStarted, ClientError> {
        let path = format!("/integrated-accounts/{}/sync", encode(account));
        self.call(Method::POST, &path, None).await
    }

    pub async fn sync_run(&self, id: &str) -> Result<SyncRun, ClientError> {
        self.call(Method::GET, &format!("/sync-runs/{}", encode(id)), None)
            .await
    }

    /// Events after `after` (a cursor from an earlier page), oldest first.
    pub async fn events(&self, after: Option<&str>, limit: u32) -> Result<EventPage, ClientError> {
        let mut path = format!("/events?limit={limit}");
        if let Some(after) = after {
            path.push_str(&format!("&after={}", encode(after)));
        }
        self.call(Method::GET, &path, None).await
    }

    pub async fn create_webhook(&self, url: &str, events: &[&str]) -> Result<Webhook, ClientError> {
        let body = serde_json::json!({ "url": url, "events": events });
        self.call(Method::POST, "/webhooks", Some(&body)).await
    }

    pub async fn webhooks(&self) -> Result<Page<Webhook>, ClientError> {
        self.call(Method::GET, "/webhooks", None).await
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/webhooks/{}", encode(id));
        self.call::<Value>(Method::DELETE, &path, None)
            .await
            .map(drop)
    }

    pub async fn deliveries(&self, webhook: &str) -> Result<Page<Delivery>, ClientError> {
        let path = format!("/webhooks/{}/deliveries", encode(webhook));
        self.call(Method::GET, &path, None).await
    }

    /// `body` as in the contract's `POST /access-grants`.
    pub async fn create_grant(&self, body: &Value) -> Result<Grant, ClientError> {
        self.call(Method::POST, "/access-grants", Some(body)).await
    }

    /// One page; `query` like `status=active` (may be empty).
    pub async fn grants(&self, query: &str) -> Result<Page<Grant>, ClientError> {
        self.call(Method::GET, &format!("/access-grants?{query}"), None)
            .await
    }

    pub async fn grant(&self, id: &str) -> Result<Grant, ClientError> {
        let path = format!("/access-grants/{}", encode(id));
        self.call(Method::GET, &path, None).await
    }

    /// Revokes a grant now.
    pub async fn revoke_grant(&self, id: &str) -> Result<Grant, ClientError> {
        let path = format!("/access-grants/{}", encode(id));
        self.call(Method::DELETE, &path, None).await
    }

    /// `body` as in the contract's `POST /plans`.
    pub async fn create_plan(&self, body: &Value) -> Result<Plan, ClientError> {
        self.call(Method::POST, "/plans", Some(body)).await
    }

    pub async fn plan(&self, id: &str) -> Result<Plan, ClientError> {
        self.call(Method::GET, &format!("/plans/{}", encode(id)), None)
            .await
    }

    pub async fn apply_plan(&self, id: &str) -> Result<Plan, ClientError> {
        let path = format!("/plans/{}/apply", encode(id));
        self.call(Method::POST, &path, None).await
    }

    /// One page of a report (`people`, `admins`, `inactive`); `query` like
    /// `days=90` (may be empty).
    pub async fn report(&self, report: &str, query: &str) -> Result<Page<Value>, ClientError> {
        let path = format!("/reports/{}?{query}", encode(report));
        self.call(Method::GET, &path, None).await
    }

    /// A whole report as CSV.
    pub async fn report_csv(&self, report: &str, query: &str) -> Result<String, ClientError> {
        let mut path = format!("/reports/{}?format=csv", encode(report));
        if !query.is_empty() {
            path.push('&');
            path.push_str(query);
        }
        self.text(&path).await
    }

    async fn text(&self, path: &str) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.base_url);
        let mut request = self.http.get(&url);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|source| ClientError::Transport { url, source })?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        match serde_json::from_str::<ErrorEnvelope>(&text) {
            Ok(envelope) => Err(ClientError::Api {
                status,
                envelope: Box::new(envelope),
            }),
            Err(_) => Err(ClientError::Unexpected { status, body: text }),
        }
    }

    async fn unified_list<T: DeserializeOwned>(
        &self,
        resource: &str,
        account: &str,
        query: &str,
    ) -> Result<Page<T>, ClientError> {
        self.call(Method::GET, &unified_path(resource, account, query), None)
            .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base_url);
        let mut request = self.http.request(method, &url);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|source| ClientError::Transport { url, source })?;
        if (200..300).contains(&status) {
            // 204 has no body; callers expecting one get a clear error.
            let text = if text.is_empty() {
                "null"
            } else {
                text.as_str()
            };
            return serde_json::from_str(text).map_err(|_| ClientError::Unexpected {
                status,
                body: text.to_owned(),
            });
        }
        match serde_json::from_str::<ErrorEnvelope>(&text) {
            Ok(envelope) => Err(ClientError::Api {
                status,
                envelope: Box::new(envelope),
            }),
            Err(_) => Err(ClientError::Unexpected { status, body: text }),
        }
    }
}

fn unified_path(resource: &str, account: &str, query: &str) -> String {
    let mut path = format!(
        "/unified/user-directory/{resource}?integrated_account_id={}",
        encode(account)
    );
    if !query.is_empty() {
        path.push('&');
        path.push_str(query);
    }
    path
}

/// Percent-encodes a path segment or query value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
