//! Settings: defaults < `rollcall.toml` < `ROLLCALL_*` environment < command
//! line flags (applied by the binary). Every secret can also come from a file
//! (`master_key_file` / `ROLLCALL_MASTER_KEY_FILE`). Unknown keys in the file
//! or unknown `ROLLCALL_*` variables are errors, so a typo never silently
//! falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            other => Err(format!("`{other}` is not a log format (pretty or json)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// `sqlite://PATH` (the embedded default).
    pub database_url: String,
    /// Master key(s) sealing stored vendor credentials, given inline.
    pub master_key: Option<SecretString>,
    /// ... or a file holding them (re-read on rotation). Without either,
    /// `serve` on SQLite creates a key file next to the database.
    pub master_key_file: Option<PathBuf>,
    /// `tracing` filter, e.g. `info` or `rollcall_server=debug,info`.
    pub log: String,
    pub log_format: LogFormat,
    /// The address users reach this server at, for links it hands out
    /// (link-token URLs). Defaults to `http://<listen>`.
    pub public_url: Option<String>,
    /// How long one vendor call may take.
    pub vendor_timeout_secs: u64,
    /// How long one request may spend on a vendor, waiting for rate-limit
    /// room and retrying included.
    pub vendor_deadline_secs: u64,
    /// How long an account's circuit stays open after repeated failures.
    pub circuit_cooldown_secs: u64,
    /// The largest request body the proxy forwards.
    pub proxy_max_body_bytes: usize,
    /// How long a link-token URL stays valid.
    pub link_token_ttl_secs: u64,
    /// How often each account is synced (an account's `config.sync_interval_minutes` overrides it).
    pub sync_interval_minutes: u64,
    /// Whether this process syncs accounts on their interval (syncs asked for through the API run either way).
    pub sync_scheduler: bool,
    /// How long a background job stays with a worker that stops renewing it (a dead node's jobs are taken over after this).
    pub job_lease_secs: u64,
    /// Delivery attempts before a webhook delivery is dead-lettered.
    pub webhook_max_attempts: i64,
    /// The first webhook retry's delay; each later one doubles, up to an hour.
    pub webhook_retry_base_ms: u64,
    /// Longest a webhook receiver may take to answer.
    pub webhook_timeout_secs: u64,
    /// Whether webhooks may target loopback, private and link-local
    /// addresses (off by default: a subscription must not reach the network
    /// Rollcall runs in; turn on for receivers on the same host or LAN).
    pub webhook_allow_private_networks: bool,
    /// Vendor roles mapped to unified role types: the documented default
    /// table with `[roles.<provider>]` overrides from the config file.
    pub roles: rollcall_core::RoleMap,
    /// How long a plan may be applied after it was computed.
    pub plan_ttl_hours: u64,
}

impl Settings {
    /// The URL this server is reached at, without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://rollcall.db".into(),
            master_key: None,
            master_key_file: None,
            log: "info".into(),
            log_format: LogFormat::Pretty,
            public_url: None,
            vendor_timeout_secs: 30,
            vendor_deadline_secs: 30,
            circuit_cooldown_secs: 30,
            proxy_max_body_bytes: 10 * 1024 * 1024,
            link_token_ttl_secs: 30 * 60,
            sync_interval_minutes: 15,
            sync_scheduler: true,
            job_lease_secs: 30,
            webhook_max_attempts: 10,
            webhook_retry_base_ms: 10_000,
            webhook_timeout_secs: 10,
            webhook_allow_private_networks: false,
            roles: rollcall_core::RoleMap::default(),
            plan_ttl_hours: 24,
        }
    }
}

/// `rollcall.toml`: the same keys as [`Settings`], all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    database_url: Option<String>,
    master_key: Option<SecretString>,
    master_key_file: Option<PathBuf>,
    log: Option<String>,
    log_format: Option<LogFormat>,
    public_url: Option<String>,
    vendor_timeout_secs: Option<u64>,
    vendor_deadline_secs: Option<u64>,
    circuit_cooldown_secs: Option<u64>,
    proxy_max_body_bytes: Option<usize>,
    link_token_ttl_secs: Option<u64>,
    sync_interval_minutes: Option<u64>,
    sync_scheduler: Option<bool>,
    job_lease_secs: Option<u64>,
    webhook_max_attempts: Option<i64>,
    webhook_retry_base_ms: Option<u64>,
    webhook_timeout_secs: Option<u64>,
    webhook_allow_private_networks: Option<bool>,
    plan_ttl_hours: Option<u64>,
    /// `[roles.mode] admin = "admin"`: provider → vendor role id → type.
    roles: Option<std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    BadEnv { name: String, message: String },
    #[error("unknown environment variable {name}; known ones are: {known}")]
    UnknownEnv { name: String, known: String },
    #[error("{0} and {0}_FILE are both set; set only one")]
    SecretTwice(String),
}

const ENV_PREFIX: &str = "ROLLCALL_";
/// `ROLLCALL_CONFIG` names the file; it is not itself a setting.
const ENV_CONFIG: &str = "ROLLCALL_CONFIG";
const KNOWN_ENV: &[&str] = &[
    "ROLLCALL_CONFIG",
    "ROLLCALL_LISTEN",
    "ROLLCALL_DATABASE_URL",
    "ROLLCALL_MASTER_KEY",
    "ROLLCALL_MASTER_KEY_FILE",
    "ROLLCALL_LOG",
    "ROLLCALL_LOG_FORMAT",
    "ROLLCALL_PUBLIC_URL",
    "ROLLCALL_VENDOR_TIMEOUT_SECS",
    "ROLLCALL_VENDOR_DEADLINE_SECS",
    "ROLLCALL_CIRCUIT_COOLDOWN_SECS",
    "ROLLCALL_PROXY_MAX_BODY_BYTES",
    "ROLLCALL_LINK_TOKEN_TTL_SECS",
    "ROLLCALL_SYNC_INTERVAL_MINUTES",
    "ROLLCALL_SYNC_SCHEDULER",
    "ROLLCALL_JOB_LEASE_SECS",
    "ROLLCALL_WEBHOOK_MAX_ATTEMPTS",
    "ROLLCALL_WEBHOOK_RETRY_BASE_MS",
    "ROLLCALL_WEBHOOK_TIMEOUT_SECS",
    "ROLLCALL_WEBHOOK_ALLOW_PRIVATE_NETWORKS",
    "ROLLCALL_PLAN_TTL_HOURS",
    // Read by the client commands (users, groups, members), not the server.
    "ROLLCALL_URL",
    "ROLLCALL_API_KEY",
    // Read by `rollcall webhooks verify`.
    "ROLLCALL_WEBHOOK_SECRET",
];

impl Settings {
    /// Layers the config file (explicit path, else `ROLLCALL_CONFIG`, else
    /// `./rollcall.toml` if present) and the environment over the defaults.
    /// `env` is passed in so tests need not touch the process environment.
    pub fn load(
        explicit_file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());

        let file = match explicit_file {
            Some(path) => Some(path.to_path_buf()),
            None => lookup(ENV_CONFIG).map(PathBuf::from).or_else(|| {
                let default = PathBuf::from("rollcall.toml");
                default.exists().then_some(default)
            }),
        };
        let mut settings = Settings::default();
        if let Some(path) = file {
            settings.apply_file(&path)?;
        }
        settings.apply_env(&env)?;
        Ok(settings)
    }

    fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        let file: FileSettings = toml::from_str(&text).map_err(|e| ConfigError::ParseFile {
            path: path.to_path_buf(),
            message: e.message().to_owned(),
        })?;
        if file.master_key.is_some() && file.master_key_file.is_some() {
            return Err(ConfigError::SecretTwice("master_key".into()));
        }
        if let Some(v) = file.listen {
            self.listen = v;
        }
        if let Some(v) = file.database_url {
            self.database_url = v;
        }
        if let Some(v) = file.master_key {
            self.master_key = Some(v);
            self.master_key_file = None;
        }
        if let Some(p) = file.master_key_file {
            self.master_key_file = Some(p);
            self.master_key = None;
        }
        if let Some(v) = file.log {
            self.log = v;
        }
        if let Some(v) = file.log_format {
            self.log_format = v;
        }
        if let Some(v) = file.public_url {
            self.public_url = Some(v);
        }
        if let Some(v) = file.vendor_timeout_secs {
            self.vendor_timeout_secs = v;
        }
        if let Some(v) = file.vendor_deadline_secs {
            self.vendor_deadline_secs = v;
        }
        if let Some(v) = file.circuit_cooldown_secs {
            self.circuit_cooldown_secs = v;
        }
        if let Some(v) = file.proxy_max_body_bytes {
            self.proxy_max_body_bytes = v;
        }
        if let Some(v) = file.link_token_ttl_secs {
            self.link_token_ttl_secs = v;
        }
        if let Some(v) = file.sync_interval_minutes {
            self.sync_interval_minutes = v;
        }
        if let Some(v) = file.sync_scheduler {
            self.sync_scheduler = v;
        }
        if let Some(v) = file.job_lease_secs {
            self.job_lease_secs = v;
        }
        if let Some(v) = file.webhook_max_attempts {
            self.webhook_max_attempts = v;
        }
        if let Some(v) = file.webhook_retry_base_ms {
            self.webhook_retry_base_ms = v;
        }
        if let Some(v) = file.webhook_timeout_secs {
            self.webhook_timeout_secs = v;
        }
        if let Some(v) = file.webhook_allow_private_networks {
            self.webhook_allow_private_networks = v;
        }
        if let Some(v) = file.plan_ttl_hours {
            self.plan_ttl_hours = v;
        }
        if let Some(table) = &file.roles {
            self.roles =
                rollcall_core::RoleMap::parse(table).map_err(|message| ConfigError::ParseFile {
                    path: path.to_path_buf(),
                    message,
                })?;
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &[(String, String)]) -> Result<(), ConfigError> {
        let bad = |name: &str, message: String| ConfigError::BadEnv {
            name: name.to_owned(),
            message,
        };
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        if names.contains(&"ROLLCALL_MASTER_KEY") && names.contains(&"ROLLCALL_MASTER_KEY_FILE") {
            return Err(ConfigError::SecretTwice("ROLLCALL_MASTER_KEY".into()));
        }
        for (name, value) in env {
            match name.as_str() {
                "ROLLCALL_CONFIG"
                | "ROLLCALL_URL"
                | "ROLLCALL_API_KEY"
                | "ROLLCALL_WEBHOOK_SECRET" => {}
                "ROLLCALL_LISTEN" => {
                    self.listen = value.parse().map_err(|e| {
                        bad(name, format!("`{value}` is not a socket address: {e}"))
                    })?;
                }
                "ROLLCALL_DATABASE_URL" => self.database_url = value.clone(),
                "ROLLCALL_MASTER_KEY" => {
                    self.master_key = Some(SecretString::from(value.clone()));
                    self.master_key_file = None;
                }
                "ROLLCALL_MASTER_KEY_FILE" => {
                    self.master_key_file = Some(PathBuf::from(value));
                    self.master_key = None;
                }
                "ROLLCALL_LOG" => self.log = value.clone(),
                "ROLLCALL_LOG_FORMAT" => {
                    self.log_format = value.parse().map_err(|e| bad(name, e))?
                }
                "ROLLCALL_PUBLIC_URL" => self.public_url = Some(value.clone()),
                "ROLLCALL_VENDOR_TIMEOUT_SECS" => self.vendor_timeout_secs = number(name, value)?,
                "ROLLCALL_VENDOR_DEADLINE_SECS" => self.vendor_deadline_secs = number(name, value)?,
                "ROLLCALL_CIRCUIT_COOLDOWN_SECS" => {
                    self.circuit_cooldown_secs = number(name, value)?
                }
                "ROLLCALL_PROXY_MAX_BODY_BYTES" => self.proxy_max_body_bytes = number(name, value)?,
                "ROLLCALL_LINK_TOKEN_TTL_SECS" => self.link_token_ttl_secs = number(name, value)?,
                "ROLLCALL_SYNC_INTERVAL_MINUTES" => {
                    self.sync_interval_minutes = number(name, value)?
                }
                "ROLLCALL_SYNC_SCHEDULER" => self.sync_scheduler = boolean(name, value)?,
                "ROLLCALL_JOB_LEASE_SECS" => self.job_lease_secs = number(name, value)?,
                "ROLLCALL_WEBHOOK_MAX_ATTEMPTS" => self.webhook_max_attempts = number(name, value)?,
                "ROLLCALL_WEBHOOK_RETRY_BASE_MS" => {
                    self.webhook_retry_base_ms = number(name, value)?
                }
                "ROLLCALL_WEBHOOK_TIMEOUT_SECS" => self.webhook_timeout_secs = number(name, value)?,
                "ROLLCALL_WEBHOOK_ALLOW_PRIVATE_NETWORKS" => {
                    self.webhook_allow_private_networks = boolean(name, value)?
                }
                "ROLLCALL_PLAN_TTL_HOURS" => self.plan_ttl_hours = number(name, value)?,
                _ => {
                    return Err(ConfigError::UnknownEnv {
                        name: name.clone(),
                        known: KNOWN_ENV.join(", "),
                    });
                }
            }
        }
        Ok(())
    }
}

fn boolean(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::BadEnv {
            name: name.to_owned(),
            message: format!("`{value}` is not true or false"),
        }),
    }
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::BadEnv {
        name: name.to_owned(),
        message: format!("`{value}` is not a whole number"),
    })
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn defaults_then_file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rollcall.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9000\"\ndatabase_url = \"sqlite://file.db\"\nlog = \"debug\"\n",
        )
        .unwrap();
        let s = Settings::load(
            Some(&file),
            env(&[
                ("ROLLCALL_DATABASE_URL", "sqlite://env.db"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.listen,
            "0.0.0.0:9000".parse().unwrap(),
            "file beats default"
        );
        assert_eq!(s.database_url, "sqlite://env.db", "env beats file");
        assert_eq!(s.log, "debug");
        assert_eq!(s.log_format, LogFormat::Pretty, "default kept");
    }

    #[test]
    fn the_documented_example_config_loads() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rollcall.toml");
        std::fs::write(&file, include_str!("../../../rollcall.example.toml")).unwrap();
        let s = Settings::load(Some(&file), env(&[])).unwrap();
        assert_eq!(
            s.vendor_timeout_secs,
            Settings::default().vendor_timeout_secs
        );
        assert_eq!(s.listen, Settings::default().listen);
    }

    #[test]
    fn role_overrides_come_from_the_file_and_bad_ones_stop_the_load() {
        use rollcall_core::Provider;
        use rollcall_core::unified::RoleType;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rollcall.toml");
        std::fs::write(&file, "[roles.metabase]\ngroup_manager = \"admin\"\n").unwrap();
        let s = Settings::load(Some(&file), env(&[])).unwrap();
        assert_eq!(
            s.roles.type_of(Provider::Metabase, "group_manager"),
            RoleType::Admin
        );
        assert_eq!(s.roles.type_of(Provider::Mode, "member"), RoleType::Member);
        std::fs::write(&file, "[roles.mode]\nadmin = \"owner\"\n").unwrap();
        let err = Settings::load(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("roles.mode.admin") && err.contains("owner"),
            "{err}"
        );
    }

    #[test]
    fn unknown_file_keys_are_rejected_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rollcall.toml");
        std::fs::write(&file, "listne = \"0.0.0.0:9000\"\n").unwrap();
        let err = Settings::load(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listne"), "{err}");
    }

    #[test]
    fn unknown_env_variables_are_rejected_by_name() {
        let err = Settings::load(None, env(&[("ROLLCALL_LISTNE", "x")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ROLLCALL_LISTNE") && err.contains("ROLLCALL_LISTEN"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = Settings::load(None, env(&[("ROLLCALL_LISTEN", "nowhere")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("environment variable ROLLCALL_LISTEN"),
            "{err}"
        );
    }

    #[test]
    fn secrets_come_inline_or_from_files_and_never_print() {
        let s = Settings::load(None, env(&[("ROLLCALL_MASTER_KEY", "s3cr3t-master")])).unwrap();
        assert_eq!(
            s.master_key.as_ref().unwrap().expose_secret(),
            "s3cr3t-master"
        );
        assert!(!format!("{s:?}").contains("s3cr3t"));
        let s = Settings::load(
            None,
            env(&[("ROLLCALL_MASTER_KEY_FILE", "/etc/rollcall/master.key")]),
        )
        .unwrap();
        assert_eq!(
            s.master_key_file.as_deref(),
            Some(Path::new("/etc/rollcall/master.key"))
        );
        assert!(s.master_key.is_none());

        let both = Settings::load(
            None,
            env(&[
                ("ROLLCALL_MASTER_KEY", "a"),
                ("ROLLCALL_MASTER_KEY_FILE", "b"),
            ]),
        );
        assert!(matches!(both, Err(ConfigError::SecretTwice(_))));
    }
}
