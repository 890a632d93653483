//! Metabase specifics: username/password sessions.
//!
//! One login at a time per account: the session cell's async mutex is held
//! across the login call, so concurrent callers wait for that one login and
//! share its session. A refused or throttled login pauses further logins
//! (every attempt made while Metabase throttles counts as another failure,
//! so retrying in a loop would only lengthen the lockout).

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::account::LinkedAccount;
use crate::config::MetabaseConfig;
use crate::credentials::{Credentials, MetabaseCredentials};
use crate::error::{ConnectorError, Remote};

/// Renew at 90% of the instance's session age, before it can expire mid-call.
const RENEW_AT_PERCENT: i64 = 90;
/// Pause after a refused login when the vendor does not say how long to wait.
const DEFAULT_LOGIN_PAUSE_SECS: u64 = 60;

#[derive(Debug, Default)]
pub struct SessionCell {
    state: Mutex<SessionState>,
}

#[derive(Debug, Default)]
struct SessionState {
    current: Option<Session>,
    paused: Option<Pause>,
}

#[derive(Debug)]
struct Session {
    token: SecretString,
    obtained_at_ms: i64,
}

#[derive(Debug)]
struct Pause {
    until_ms: i64,
    remote: Remote,
}

impl SessionCell {
    /// A session young enough to use, logging in if there is none.
    pub(crate) async fn token(
        &self,
        account: &LinkedAccount,
    ) -> Result<SecretString, ConnectorError> {
        let mut state = self.state.lock().await;
        let now = account.clock().now_millis();
        if let Some(session) = &state.current
            && now - session.obtained_at_ms < renew_after_ms(account.metabase_config())
        {
            return Ok(session.token.clone());
        }
        login_locked(&mut state, account, now).await
    }

    /// After the vendor refused `rejected`: log in again, unless another
    /// caller already replaced it while we waited for the lock.
    pub(crate) async fn refresh_after_rejection(
        &self,
        account: &LinkedAccount,
        rejected: &SecretString,
    ) -> Result<SecretString, ConnectorError> {
        let mut state = self.state.lock().await;
        if let Some(session) = &state.current
            && session.token.expose_secret() != rejected.expose_secret()
        {
            return Ok(session.token.clone());
        }
        state.current = None;
        let now = account.clock().now_millis();
        login_locked(&mut state, account, now).await
    }
}

fn renew_after_ms(config: Option<&MetabaseConfig>) -> i64 {
    let minutes = config
        .and_then(|c| c.session_max_age_minutes)
        .unwrap_or(MetabaseConfig::DEFAULT_SESSION_MAX_AGE_MINUTES);
    i64::from(minutes) * 60_000 * RENEW_AT_PERCENT / 100
}

#[derive(Deserialize)]
struct SessionResponse {
    id: String,
}

async fn login_locked(
    state: &mut SessionState,
    account: &LinkedAccount,
    now: i64,
) -> Result<SecretString, ConnectorError> {
    if let Some(pause) = &state.paused {
        if now < pause.until_ms {
            return Err(ConnectorError::LoginPaused {
                retry_in_secs: u64::try_from((pause.until_ms - now + 999) / 1000).unwrap_or(1),
                remote: pause.remote.clone(),
            });
        }
        state.paused = None;
    }
    let Credentials::Metabase(MetabaseCredentials::Password { username, password }) =
        account.credentials()
    else {
        return Err(ConnectorError::Request("not a Metabase login".into()));
    };
    let url = account.config().base_url().join("/api/session");
    tracing::info!("logging in to Metabase");
    let response = account
        .http()
        .client()
        .post(url)
        .json(&serde_json::json!({ "username": username, "password": password.expose_secret() }))
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    if (200..300).contains(&status) {
        let parsed: SessionResponse = serde_json::from_slice(&body)
            .map_err(|e| ConnectorError::BadResponse(format!("login answer: {e}")))?;
        let token = SecretString::from(parsed.id);
        state.current = Some(Session {
            token: token.clone(),
            obtained_at_ms: now,
        });
        return Ok(token);
    }
    let remote = Remote::from_bytes(status, &body);
    if matches!(status, 400 | 401 | 403) {
        let pause_secs = wait_seconds(&remote.summary()).unwrap_or(DEFAULT_LOGIN_PAUSE_SECS);
        tracing::warn!(
            status,
            pause_secs,
            "Metabase refused the login; pausing logins"
        );
        state.paused = Some(Pause {
            until_ms: now + i64::try_from(pause_secs * 1000).unwrap_or(i64::MAX / 2),
            remote: remote.clone(),
        });
        return Err(ConnectorError::AuthRejected(remote));
    }
    Err(ConnectorError::Vendor(remote))
}

/// The N of Metabase's "You must wait N seconds before trying again."
fn wait_seconds(message: &str) -> Option<u64> {
    let rest = message.split("wait ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_throttle_wait() {
        assert_eq!(
            wait_seconds("Too many attempts! You must wait 42 seconds before trying again."),
            Some(42)
        );
        assert_eq!(wait_seconds("did not match stored password"), None);
    }

    #[test]
    fn renews_before_the_configured_age() {
        let config = MetabaseConfig {
            base_url: crate::BaseUrl::parse("http://x").unwrap(),
            session_max_age_minutes: Some(10),
            rate_limit: None,
            sync_interval_minutes: None,
        };
        assert_eq!(renew_after_ms(Some(&config)), 540_000);
        assert_eq!(renew_after_ms(None), 20_160 * 60_000 * 9 / 10);
    }
}
