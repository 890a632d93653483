//! Command-line flags (`rollcall sim mode ...`) and the configuration they
//! turn into.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rollcall_core::{SharedClock, SystemClock};
use rollcall_sim_kit::FaultRule;

use crate::ModeSimError;

/// The most members a seeded workspace may have.
pub const MAX_USERS: usize = 1_000_000;
/// alice and bob always exist.
pub const MIN_USERS: usize = 2;

#[derive(Debug, Clone, clap::Args)]
pub struct ModeSimArgs {
    /// Workspace members to seed, alice (admin) and bob (member) included.
    #[arg(long, default_value_t = 50)]
    pub users: usize,
    /// Seed for the generated data and credentials; the same seed gives the same data.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// The workspace's username (the `{workspace}` in `/api/{workspace}/...`).
    #[arg(long, default_value = "acme")]
    pub workspace: String,
    /// Requests allowed per credential per window, as `N/WINDOW` (`40/10s`,
    /// `100/1m`, `5/500ms`), or `off`.
    #[arg(long, default_value = "40/10s")]
    pub rate_limit: String,
    /// Leave `Retry-After` out of 429 answers (Mode may not send it).
    #[arg(long)]
    pub no_retry_after: bool,
    /// Paginate memberships, groups and group memberships with
    /// `?page=&per_page=`, this many per page by default. Off: every list
    /// comes whole, as the spec's design choice says.
    #[arg(long)]
    pub page_size: Option<usize>,
    /// Inject a fault, e.g. `429,retry_after=2@every=5` or
    /// `503@next=3@/api/acme/groups`. Repeatable.
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<String>,
    /// Load users and groups from this JSON file instead of seeding them
    /// (format in the crate documentation).
    #[arg(long = "data", value_name = "FILE")]
    pub data: Option<PathBuf>,
}

impl ModeSimArgs {
    pub fn into_config(self) -> Result<ModeSimConfig, ModeSimError> {
        let faults = self
            .faults
            .iter()
            .map(|spec| {
                spec.parse::<FaultRule>()
                    .map_err(|e| ModeSimError::Config(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let config = ModeSimConfig {
            users: self.users,
            seed: self.seed,
            workspace: self.workspace,
            rate_limit: parse_rate_limit(&self.rate_limit)?,
            retry_after: !self.no_retry_after,
            page_size: self.page_size,
            faults,
            data_file: self.data,
            ..ModeSimConfig::default()
        };
        config.validate()?;
        Ok(config)
    }
}

#[derive(Debug, Clone)]
pub struct ModeSimConfig {
    /// Workspace members to seed (alice and bob included); ignored with a data file.
    pub users: usize,
    pub seed: u64,
    /// The workspace username; a data file's `workspace` wins over it.
    pub workspace: String,
    /// Requests per credential per sliding window; `None` turns limiting off.
    pub rate_limit: Option<(u32, Duration)>,
    /// Whether 429 answers carry `Retry-After`.
    pub retry_after: bool,
    /// Default page size when list pagination is on; `None` = whole lists.
    pub page_size: Option<usize>,
    pub faults: Vec<FaultRule>,
    pub data_file: Option<PathBuf>,
    /// The source of "now" for the rate-limit window and new objects' times.
    pub clock: SharedClock,
}

impl Default for ModeSimConfig {
    fn default() -> Self {
        Self {
            users: 50,
            seed: 7,
            workspace: "acme".to_owned(),
            rate_limit: Some((40, Duration::from_secs(10))),
            retry_after: true,
            page_size: None,
            faults: Vec::new(),
            data_file: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl ModeSimConfig {
    pub(crate) fn validate(&self) -> Result<(), ModeSimError> {
        if self.data_file.is_none() && !(MIN_USERS..=MAX_USERS).contains(&self.users) {
            return Err(ModeSimError::Config(format!(
                "--users must be between {MIN_USERS} and {MAX_USERS}, got {}",
                self.users
            )));
        }
        validate_workspace_name(&self.workspace)?;
        if self.page_size == Some(0) {
            return Err(ModeSimError::Config(
                "--page-size must be at least 1".into(),
            ));
        }
        if let Some((limit, window)) = self.rate_limit
            && (limit == 0 || window.is_zero())
        {
            return Err(ModeSimError::Config(
                "a rate limit needs a positive count and window (or `off`)".into(),
            ));
        }
        Ok(())
    }
}

pub(crate) fn validate_workspace_name(name: &str) -> Result<(), ModeSimError> {
    let slug = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !slug || matches!(name, "account" | "verify" | "organizations" | "batch") {
        return Err(ModeSimError::Config(format!(
            "workspace `{name}` is not a usable username (letters, digits, `_`, `-`; not a reserved path)"
        )));
    }
    Ok(())
}

/// `40/10s` -> 40 per 10 seconds; `off` -> no limit. Units: `ms`, `s`, `m`;
/// a bare number is seconds.
pub fn parse_rate_limit(text: &str) -> Result<Option<(u32, Duration)>, ModeSimError> {
    let text = text.trim();
    if matches!(text, "off" | "none" | "0") {
        return Ok(None);
    }
    let fail = || {
        ModeSimError::Config(format!(
            "bad rate limit `{text}`: expected N/WINDOW such as `40/10s`, `100/1m`, `5/500ms`, or `off`"
        ))
    };
    let (count, window) = text.split_once('/').ok_or_else(fail)?;
    let count: u32 = count.trim().parse().map_err(|_| fail())?;
    let window = window.trim();
    let (number, unit_ms) = if let Some(n) = window.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = window.strip_suffix('s') {
        (n, 1_000)
    } else if let Some(n) = window.strip_suffix('m') {
        (n, 60_000)
    } else {
        (window, 1_000)
    };
    // `40/s` means one second.
    let number: u64 = if number.is_empty() {
        1
    } else {
        number.parse().map_err(|_| fail())?
    };
    let window = Duration::from_millis(number.saturating_mul(unit_ms));
    if count == 0 || window.is_zero() {
        return Err(fail());
    }
    Ok(Some((count, window)))
}

/// The inverse of [`parse_rate_limit`], for the settings endpoint.
pub(crate) fn format_rate_limit(limit: Option<(u32, Duration)>) -> String {
    match limit {
        None => "off".to_owned(),
        Some((count, window)) => {
            let ms = window.as_millis();
            if ms % 60_000 == 0 {
                format!("{count}/{}m", ms / 60_000)
            } else if ms % 1_000 == 0 {
                format!("{count}/{}s", ms / 1_000)
            } else {
                format!("{count}/{ms}ms")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_forms() {
        assert_eq!(
            parse_rate_limit("40/10s").unwrap(),
            Some((40, Duration::from_secs(10)))
        );
        assert_eq!(
            parse_rate_limit("100/1m").unwrap(),
            Some((100, Duration::from_secs(60)))
        );
        assert_eq!(
            parse_rate_limit("5/500ms").unwrap(),
            Some((5, Duration::from_millis(500)))
        );
        assert_eq!(
            parse_rate_limit("4/s").unwrap(),
            Some((4, Duration::from_secs(1)))
        );
        assert_eq!(parse_rate_limit("off").unwrap(), None);
        for bad in ["40", "x/10s", "40/abc", "0/10s", "40/0s"] {
            assert!(parse_rate_limit(bad).is_err(), "{bad}");
        }
        for text in ["40/10s", "100/1m", "5/500ms", "off"] {
            assert_eq!(
                format_rate_limit(parse_rate_limit(text).unwrap()),
                text,
                "{text}"
            );
        }
    }

    #[test]
    fn validation_refuses_nonsense() {
        let ok = ModeSimConfig::default();
        assert!(ok.validate().is_ok());
        for bad in [
            ModeSimConfig {
                users: 1,
                ..ModeSimConfig::default()
            },
            ModeSimConfig {
                users: MAX_USERS + 1,
                ..ModeSimConfig::default()
            },
            ModeSimConfig {
                workspace: "account".into(),
                ..ModeSimConfig::default()
            },
            ModeSimConfig {
                workspace: "a/b".into(),
                ..ModeSimConfig::default()
            },
            ModeSimConfig {
                page_size: Some(0),
                ..ModeSimConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
