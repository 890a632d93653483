//! Vendor credentials. They exist in clear only in memory, inside `secrecy`
//! types; `Debug` shows which kind they are and never their values. The
//! sealed form is a JSON document that only the vault ever sees in clear.

use rollcall_core::Provider;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

pub struct ModeCredentials {
    pub token: String,
    pub secret: SecretString,
    /// Bearer value for Mode's read-only Discovery API (activity data).
    pub discovery_token: Option<SecretString>,
}

pub enum MetabaseCredentials {
    ApiKey {
        api_key: SecretString,
    },
    Password {
        username: String,
        password: SecretString,
    },
}

pub enum Credentials {
    Mode(ModeCredentials),
    Metabase(MetabaseCredentials),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

fn take_string(map: &mut Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(format!("credentials.{key} must not be empty"))
        }
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("credentials.{key} must be a string")),
    }
}

fn require(map: &mut Map<String, Value>, key: &str) -> Result<String, String> {
    take_string(map, key)?.ok_or_else(|| format!("credentials.{key} is required"))
}

impl Credentials {
    /// Parses the `credentials` object of a link request. Messages name the
    /// offending field, never its value.
    pub fn parse(provider: Provider, value: Value) -> Result<Self, String> {
        let Value::Object(mut map) = value else {
            return Err("credentials must be an object".into());
        };
        let credentials = match provider {
            Provider::Mode => Self::Mode(ModeCredentials {
                token: require(&mut map, "token")?,
                secret: SecretString::from(require(&mut map, "secret")?),
                discovery_token: take_string(&mut map, "discovery_token")?.map(SecretString::from),
            }),
            Provider::Metabase => {
                let has_key = map.contains_key("api_key");
                let has_login = map.contains_key("username") || map.contains_key("password");
                match (has_key, has_login) {
                    (true, true) => {
                        return Err(
                            "credentials: give either api_key or username and password, not both"
                                .into(),
                        );
                    }
                    (true, false) => Self::Metabase(MetabaseCredentials::ApiKey {
                        api_key: SecretString::from(require(&mut map, "api_key")?),
                    }),
                    (false, true) => Self::Metabase(MetabaseCredentials::Password {
                        username: require(&mut map, "username")?,
                        password: SecretString::from(require(&mut map, "password")?),
                    }),
                    (false, false) => {
                        return Err(
                            "credentials: Metabase needs api_key, or username and password".into(),
                        );
                    }
                }
            }
        };
        if let Some(unknown) = map.keys().next() {
            return Err(format!("credentials.{unknown} is not a known field"));
        }
        Ok(credentials)
    }

    pub fn provider(&self) -> Provider {
        match self {
            Self::Mode(_) => Provider::Mode,
            Self::Metabase(_) => Provider::Metabase,
        }
    }

    /// Which kind of credential, for display (`mode_token`, `metabase_api_key`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Mode(ModeCredentials {
                discovery_token: Some(_),
                ..
            }) => "mode_token+discovery",
            Self::Mode(_) => "mode_token",
            Self::Metabase(MetabaseCredentials::ApiKey { .. }) => "metabase_api_key",
            Self::Metabase(MetabaseCredentials::Password { .. }) => "metabase_password",
        }
    }

    /// The plaintext the vault seals. Zeroed when dropped.
    pub fn to_sealable(&self) -> Zeroizing<Vec<u8>> {
        let value = match self {
            Self::Mode(c) => {
                let mut m = Map::new();
                m.insert("token".into(), Value::String(c.token.clone()));
                m.insert(
                    "secret".into(),
                    Value::String(c.secret.expose_secret().to_owned()),
                );
                if let Some(d) = &c.discovery_token {
                    m.insert(
                        "discovery_token".into(),
                        Value::String(d.expose_secret().to_owned()),
                    );
                }
                Value::Object(m)
            }
            Self::Metabase(MetabaseCredentials::ApiKey { api_key }) => {
                serde_json::json!({ "api_key": api_key.expose_secret() })
            }
            Self::Metabase(MetabaseCredentials::Password { username, password }) => {
                serde_json::json!({ "username": username, "password": password.expose_secret() })
            }
        };
        Zeroizing::new(serde_json::to_vec(&value).unwrap_or_default())
    }

    /// The inverse of [`to_sealable`](Self::to_sealable).
    pub fn from_sealed(provider: Provider, plaintext: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(plaintext)
            .map_err(|_| "sealed credentials are not JSON".to_owned())?;
        Self::parse(provider, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_every_kind_and_round_trips_through_the_sealed_form() {
        let cases = [
            (
                Provider::Mode,
                json!({"token":"a11ce0000001","secret":"s"}),
                "mode_token",
            ),
            (
                Provider::Mode,
                json!({"token":"t","secret":"s","discovery_token":"d"}),
                "mode_token+discovery",
            ),
            (
                Provider::Metabase,
                json!({"api_key":"mb_x"}),
                "metabase_api_key",
            ),
            (
                Provider::Metabase,
                json!({"username":"a@b.c","password":"p"}),
                "metabase_password",
            ),
        ];
        for (provider, value, kind) in cases {
            let creds = Credentials::parse(provider, value).unwrap();
            assert_eq!(creds.kind(), kind);
            let again = Credentials::from_sealed(provider, &creds.to_sealable()).unwrap();
            assert_eq!(again.kind(), kind);
        }
    }

    #[test]
    fn refuses_incomplete_mixed_or_unknown_fields_without_echoing_values() {
        let cases = [
            (
                Provider::Mode,
                json!({"token":"t"}),
                "credentials.secret is required",
            ),
            (
                Provider::Mode,
                json!({"token":"t","secret":"hunter2","extra":1}),
                "credentials.extra",
            ),
            (
                Provider::Metabase,
                json!({"api_key":"k","password":"hunter2"}),
                "not both",
            ),
            (Provider::Metabase, json!({}), "needs api_key"),
            (
                Provider::Metabase,
                json!({"username":"u","password":""}),
                "must not be empty",
            ),
            (Provider::Mode, json!("token"), "must be an object"),
        ];
        for (provider, value, expected) in cases {
            let err = Credentials::parse(provider, value).unwrap_err();
            assert!(err.contains(expected), "{err}");
            assert!(!err.contains("hunter2"));
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let creds = Credentials::parse(
            Provider::Metabase,
            json!({"username":"u","password":"hunter2"}),
        )
        .unwrap();
        assert_eq!(format!("{creds:?}"), "metabase_password");
    }
}
