//! The one outbound HTTP client, shared by every vendor call in the process
//! (connection pooling across accounts).

use std::time::Duration;

/// Redirects are followed only within the same origin; a vendor (or a
/// malicious base URL) cannot bounce our credentialed request elsewhere.
const MAX_REDIRECTS: usize = 5;

#[derive(Debug, Clone)]
pub struct VendorHttp {
    client: reqwest::Client,
    timeout: Duration,
}

impl VendorHttp {
    pub fn new(timeout: Duration) -> Result<Self, crate::ConnectorError> {
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let same_origin = attempt.previous().first().is_some_and(|first| {
                first.scheme() == attempt.url().scheme()
                    && first.host_str() == attempt.url().host_str()
                    && first.port_or_known_default() == attempt.url().port_or_known_default()
            });
            if attempt.previous().len() > MAX_REDIRECTS || !same_origin {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .redirect(policy)
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("rollcall/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| crate::ConnectorError::Request(e.to_string()))?;
        Ok(Self { client, timeout })
    }

    /// The longest one request may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}
