//! Command-line flags and the resolved configuration of the simulator.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rollcall_core::{SharedClock, SystemClock};
use rollcall_sim_kit::FaultRule;

use crate::MetabaseSimError;

/// Fewest and most seeded users. Ten leaves room for the fixtures, a few
/// admins, deactivated and SSO users; a million is the scale we promise to
/// page through quickly.
pub const MIN_USERS: usize = 10;
pub const MAX_USERS: usize = 1_000_000;

/// Flags for `rollcall sim metabase` (flatten into a clap command).
#[derive(Debug, Clone, clap::Args)]
pub struct MetabaseSimArgs {
    /// Seeded personal users, the admin fixture included (10..=1000000).
    #[arg(long, default_value_t = 50)]
    pub users: usize,
    /// Seed for the generated data and the fixture credentials.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Absolute session lifetime, Metabase's MAX_SESSION_AGE: a number with
    /// an `s`, `m`, `h` or `d` suffix; a bare number is minutes, as in Metabase.
    #[arg(long, default_value = "20160m")]
    pub session_max_age: String,
    /// Turn off the failed-login throttle (MB_DISABLE_SESSION_THROTTLE=true).
    #[arg(long)]
    pub no_login_throttle: bool,
    /// Inject a fault, e.g. `503@next=3@/api/user` (repeatable).
    #[arg(long = "fault")]
    pub faults: Vec<String>,
    /// Load users, groups and keys from this JSON file instead of seeding
    /// (format in the crate documentation).
    #[arg(long = "data")]
    pub data: Option<PathBuf>,
}

impl Default for MetabaseSimArgs {
    fn default() -> Self {
        Self {
            users: 50,
            seed: 7,
            session_max_age: "20160m".into(),
            no_login_throttle: false,
            faults: Vec::new(),
            data: None,
        }
    }
}

impl MetabaseSimArgs {
    pub fn into_config(self) -> Result<MetabaseSimConfig, MetabaseSimError> {
        if !(MIN_USERS..=MAX_USERS).contains(&self.users) {
            return Err(MetabaseSimError::Config(format!(
                "--users must be between {MIN_USERS} and {MAX_USERS}, got {}",
                self.users
            )));
        }
        let faults = self
            .faults
            .iter()
            .map(|spec| {
                spec.parse::<FaultRule>()
                    .map_err(|e| MetabaseSimError::Config(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MetabaseSimConfig {
            users: self.users,
            seed: self.seed,
            session_max_age: parse_duration(&self.session_max_age)?,
            login_throttle: !self.no_login_throttle,
            faults,
            data_file: self.data,
            clock: Arc::new(SystemClock),
        })
    }
}

/// Everything the simulator needs; build it from flags with
/// [`MetabaseSimArgs::into_config`] or directly in tests.
#[derive(Debug, Clone)]
pub struct MetabaseSimConfig {
    /// Seeded personal users (ignored when `data_file` is set).
    pub users: usize,
    pub seed: u64,
    /// Absolute session lifetime from login (not sliding).
    pub session_max_age: Duration,
    /// Failed-login throttling as in Metabase (10 per username, 50 per IP, 1 h).
    pub login_throttle: bool,
    pub faults: Vec<FaultRule>,
    pub data_file: Option<PathBuf>,
    /// Every timestamp and expiry is read from this clock.
    pub clock: SharedClock,
}

impl Default for MetabaseSimConfig {
    fn default() -> Self {
        Self {
            users: 50,
            seed: 7,
            session_max_age: Duration::from_secs(20_160 * 60),
            login_throttle: true,
            faults: Vec::new(),
            data_file: None,
            clock: Arc::new(SystemClock),
        }
    }
}

/// `90s`, `20160m`, `2h`, `14d`; a bare number is minutes (MAX_SESSION_AGE's unit).
pub fn parse_duration(text: &str) -> Result<Duration, MetabaseSimError> {
    let text = text.trim();
    let bad = || {
        MetabaseSimError::Config(format!(
            "bad duration `{text}` (expected a positive number with s, m, h or d, e.g. `20160m` or `30s`)"
        ))
    };
    let (digits, unit_secs) = match text.char_indices().last() {
        Some((i, 's')) => (&text[..i], 1),
        Some((i, 'm')) => (&text[..i], 60),
        Some((i, 'h')) => (&text[..i], 3_600),
        Some((i, 'd')) => (&text[..i], 86_400),
        Some(_) => (text, 60),
        None => return Err(bad()),
    };
    let n: u64 = digits.trim().parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(bad());
    }
    n.checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_documented_suffixes() {
        assert_eq!(
            parse_duration("20160m").unwrap(),
            Duration::from_secs(1_209_600)
        );
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7_200));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(300));
        for bad in ["", "m", "0s", "-1m", "soon", "1w"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_resolve_into_a_config() {
        let config = MetabaseSimArgs {
            users: 12,
            faults: vec!["503@next=1@/api/user".into()],
            no_login_throttle: true,
            session_max_age: "45s".into(),
            ..MetabaseSimArgs::default()
        }
        .into_config()
        .unwrap();
        assert_eq!(config.users, 12);
        assert_eq!(config.faults.len(), 1);
        assert!(!config.login_throttle);
        assert_eq!(config.session_max_age, Duration::from_secs(45));

        let too_few = MetabaseSimArgs {
            users: 3,
            ..MetabaseSimArgs::default()
        };
        assert!(too_few.into_config().is_err());
        let bad_fault = MetabaseSimArgs {
            faults: vec!["boom".into()],
            ..MetabaseSimArgs::default()
        };
        assert!(bad_fault.into_config().is_err());
    }
}
