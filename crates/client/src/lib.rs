//! A typed client for Rollcall's HTTP API, shared by the `rollcall` CLI and
//! the integration tests so both exercise the API exactly as users do.

use rollcall_core::error::ErrorEnvelope;
use serde::Deserialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach Rollcall at {url}: {source}")]
    Transport { url: String, source: reqwest::Error },
    #[error("Rollcall answered {status}: {}", .envelope.error.message)]
    Api { status: u16, envelope: Box<ErrorEnvelope> },
    #[error("Rollcall answered {status} with an unexpected body: {body}")]
    Unexpected { status: u16, body: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Health {
    pub status: String,
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
        self.get("/healthz").await
    }

    /// Ready means the server and its store answer.
    pub async fn readyz(&self) -> Result<Health, ClientError> {
        self.get("/readyz").await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base_url);
        let mut request = self.http.get(&url);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Transport { url: url.clone(), source })?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|source| ClientError::Transport { url, source })?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&body).map_err(|_| ClientError::Unexpected { status, body });
        }
        match serde_json::from_str::<ErrorEnvelope>(&body) {
            Ok(envelope) => Err(ClientError::Api {
                status,
                envelope: Box::new(envelope),
            }),
            Err(_) => Err(ClientError::Unexpected { status, body }),
        }
    }
}
