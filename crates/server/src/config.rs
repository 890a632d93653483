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
    /// Master key that seals stored vendor credentials. Without one, `serve`
    /// on SQLite creates a key file next to the database.
    pub master_key: Option<SecretString>,
    /// `tracing` filter, e.g. `info` or `rollcall_server=debug,info`.
    pub log: String,
    pub log_format: LogFormat,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://rollcall.db".into(),
            master_key: None,
            log: "info".into(),
            log_format: LogFormat::Pretty,
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
    #[error("cannot read secret file {path} (from {from}): {source}")]
    SecretFile {
        from: String,
        path: PathBuf,
        source: std::io::Error,
    },
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
        }
        if let Some(p) = file.master_key_file {
            self.master_key = Some(read_secret_file("master_key_file", &p)?);
        }
        if let Some(v) = file.log {
            self.log = v;
        }
        if let Some(v) = file.log_format {
            self.log_format = v;
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
                "ROLLCALL_CONFIG" => {}
                "ROLLCALL_LISTEN" => {
                    self.listen = value
                        .parse()
                        .map_err(|e| bad(name, format!("`{value}` is not a socket address: {e}")))?;
                }
                "ROLLCALL_DATABASE_URL" => self.database_url = value.clone(),
                "ROLLCALL_MASTER_KEY" => self.master_key = Some(SecretString::from(value.clone())),
                "ROLLCALL_MASTER_KEY_FILE" => {
                    self.master_key = Some(read_secret_file(name, Path::new(value))?);
                }
                "ROLLCALL_LOG" => self.log = value.clone(),
                "ROLLCALL_LOG_FORMAT" => self.log_format = value.parse().map_err(|e| bad(name, e))?,
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

fn read_secret_file(from: &str, path: &Path) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
        from: from.to_owned(),
        path: path.to_path_buf(),
        source,
    })?;
    Ok(SecretString::from(text.trim_end_matches(['\n', '\r']).to_owned()))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
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
            env(&[("ROLLCALL_DATABASE_URL", "sqlite://env.db"), ("PATH", "/bin")]),
        )
        .unwrap();
        assert_eq!(s.listen, "0.0.0.0:9000".parse().unwrap(), "file beats default");
        assert_eq!(s.database_url, "sqlite://env.db", "env beats file");
        assert_eq!(s.log, "debug");
        assert_eq!(s.log_format, LogFormat::Pretty, "default kept");
    }

    #[test]
    fn unknown_file_keys_are_rejected_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rollcall.toml");
        std::fs::write(&file, "listne = \"0.0.0.0:9000\"\n").unwrap();
        let err = Settings::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(err.contains("listne"), "{err}");
    }

    #[test]
    fn unknown_env_variables_are_rejected_by_name() {
        let err = Settings::load(None, env(&[("ROLLCALL_LISTNE", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ROLLCALL_LISTNE") && err.contains("ROLLCALL_LISTEN"), "{err}");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = Settings::load(None, env(&[("ROLLCALL_LISTEN", "nowhere")]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("environment variable ROLLCALL_LISTEN"), "{err}");
    }

    #[test]
    fn secrets_come_from_files_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("master.key");
        std::fs::write(&key, "s3cr3t-master\n").unwrap();
        let s = Settings::load(None, env(&[("ROLLCALL_MASTER_KEY_FILE", key.to_str().unwrap())]))
            .unwrap();
        assert_eq!(s.master_key.as_ref().unwrap().expose_secret(), "s3cr3t-master");
        assert!(!format!("{s:?}").contains("s3cr3t"));

        let both = Settings::load(
            None,
            env(&[("ROLLCALL_MASTER_KEY", "a"), ("ROLLCALL_MASTER_KEY_FILE", "b")]),
        );
        assert!(matches!(both, Err(ConfigError::SecretTwice(_))));
    }
}
