//! Non-secret account configuration, as the API receives and returns it.

use serde::{Deserialize, Serialize};

/// A vendor base URL: `http(s)://host[:port][/prefix]`, no credentials,
/// query or fragment, stored without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct BaseUrl(String);

impl BaseUrl {
    pub fn parse(value: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(value).map_err(|e| format!("`{value}` is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("`{value}` must be an http or https URL"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("`{value}` has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "the base URL must not carry credentials; put them in `credentials`".into(),
            );
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("`{value}` must not have a query or fragment"));
        }
        Ok(Self(url.as_str().trim_end_matches('/').to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The base URL with a vendor path (starting with `/`) appended.
    pub fn join(&self, path_and_query: &str) -> String {
        format!("{}{}", self.0, path_and_query)
    }

    /// `scheme://host:port`, to tell same-origin redirects from others.
    pub fn origin(&self) -> Option<(String, String, Option<u16>)> {
        let url = reqwest::Url::parse(&self.0).ok()?;
        Some((
            url.scheme().to_owned(),
            url.host_str()?.to_owned(),
            url.port_or_known_default(),
        ))
    }
}

impl From<BaseUrl> for String {
    fn from(b: BaseUrl) -> String {
        b.0
    }
}

impl<'de> Deserialize<'de> for BaseUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A vendor rate limit: at most `requests` in any `per_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests: u32,
    pub per_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeConfig {
    pub base_url: BaseUrl,
    /// The workspace's username (the `{workspace}` of `/api/{workspace}/...`).
    pub workspace: String,
    /// Overrides Mode's documented 40 requests per 10 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Minutes between scheduled syncs of this account (the server's
    /// `sync_interval_minutes` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_interval_minutes: Option<u32>,
}

impl ModeConfig {
    /// Mode's documented limit, per credential.
    pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
        requests: 40,
        per_seconds: 10,
    };
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetabaseConfig {
    pub base_url: BaseUrl,
    /// The instance's `MAX_SESSION_AGE` in minutes (Metabase's default is
    /// 20160, 14 days). Sessions are renewed before they reach it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_max_age_minutes: Option<u32>,
    /// Metabase has no API rate limit; set one to spare a small instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Minutes between scheduled syncs of this account (the server's
    /// `sync_interval_minutes` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_interval_minutes: Option<u32>,
}

impl MetabaseConfig {
    pub const DEFAULT_SESSION_MAX_AGE_MINUTES: u32 = 20_160;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountConfig {
    Mode(ModeConfig),
    Metabase(MetabaseConfig),
}

impl AccountConfig {
    pub fn provider(&self) -> rollcall_core::Provider {
        match self {
            Self::Mode(_) => rollcall_core::Provider::Mode,
            Self::Metabase(_) => rollcall_core::Provider::Metabase,
        }
    }

    pub fn parse(
        provider: rollcall_core::Provider,
        value: serde_json::Value,
    ) -> Result<Self, String> {
        let describe = |e: serde_json::Error| format!("config: {e}");
        match provider {
            rollcall_core::Provider::Mode => {
                let config: ModeConfig = serde_json::from_value(value).map_err(describe)?;
                let ws = &config.workspace;
                let ok = !ws.is_empty()
                    && ws.len() <= 100
                    && ws
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                if !ok {
                    return Err(format!("config: `{ws}` is not a Mode workspace username"));
                }
                Ok(Self::Mode(config))
            }
            rollcall_core::Provider::Metabase => {
                let config: MetabaseConfig = serde_json::from_value(value).map_err(describe)?;
                if config.session_max_age_minutes == Some(0) {
                    return Err("config: session_max_age_minutes must be at least 1".into());
                }
                Ok(Self::Metabase(config))
            }
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Mode(c) => serde_json::to_value(c),
            Self::Metabase(c) => serde_json::to_value(c),
        }
        .unwrap_or(serde_json::Value::Null)
    }

    pub fn base_url(&self) -> &BaseUrl {
        match self {
            Self::Mode(c) => &c.base_url,
            Self::Metabase(c) => &c.base_url,
        }
    }

    /// The limit this account's credential is held to, if any.
    pub fn rate_limit(&self) -> Option<(u32, std::time::Duration)> {
        let limit = match self {
            Self::Mode(c) => Some(c.rate_limit.unwrap_or(ModeConfig::DEFAULT_RATE_LIMIT)),
            Self::Metabase(c) => c.rate_limit,
        }?;
        (limit.requests > 0 && limit.per_seconds > 0).then(|| {
            (
                limit.requests,
                std::time::Duration::from_secs(u64::from(limit.per_seconds)),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base_urls_are_plain_http_origins() {
        assert_eq!(
            BaseUrl::parse("https://app.mode.com/").unwrap().as_str(),
            "https://app.mode.com"
        );
        assert_eq!(
            BaseUrl::parse("http://127.0.0.1:3000/metabase/")
                .unwrap()
                .join("/api/user"),
            "http://127.0.0.1:3000/metabase/api/user"
        );
        for bad in [
            "ftp://x",
            "https://u:p@x.com",
            "https://x.com/?a=1",
            "not a url",
            "https://x.com/#f",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn configs_refuse_unknown_keys_and_bad_workspaces() {
        use rollcall_core::Provider;
        assert!(
            AccountConfig::parse(
                Provider::Mode,
                json!({"base_url":"https://app.mode.com","workspace":"acme"})
            )
            .is_ok()
        );
        assert!(
            AccountConfig::parse(
                Provider::Mode,
                json!({"base_url":"https://app.mode.com","workspace":"../x"})
            )
            .is_err()
        );
        let err = AccountConfig::parse(
            Provider::Metabase,
            json!({"base_url":"https://m.example","token":"x"}),
        )
        .unwrap_err();
        assert!(err.contains("token"), "{err}");
    }
}
