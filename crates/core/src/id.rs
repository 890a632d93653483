//! Identifiers. Each is parsed once at the edge and carried as its own type
//! so a tenant id can never be passed where an account id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{value}` is not a valid {kind} id")]
pub struct InvalidId {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new random, time-ordered id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            pub fn parse(value: &str) -> Result<Self, InvalidId> {
                let rest = value.strip_prefix($prefix).unwrap_or("");
                if rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(InvalidId { kind: $kind, value: value.to_owned() })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, InvalidId> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

prefixed_id!(
    /// A tenant: the owner of API keys and everything they create.
    TenantId, "tn_", "tenant"
);
prefixed_id!(
    /// An API key's public id (the `<id>` of `rk_<id>_<secret>`).
    ApiKeyId, "key", "API key"
);
prefixed_id!(
    /// A linked Mode or Metabase account.
    AccountId, "acct_", "integrated account"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let id = AccountId::generate();
        assert_eq!(AccountId::parse(id.as_str()).unwrap(), id);
    }

    #[test]
    fn ids_of_another_kind_or_shape_are_refused() {
        let tenant = TenantId::generate();
        assert!(AccountId::parse(tenant.as_str()).is_err());
        assert!(AccountId::parse("acct_../../etc").is_err());
        assert!(AccountId::parse("acct_").is_err());
        assert!(TenantId::parse("tn_0123456789ABCDEF0123456789abcdef").is_err());
    }
}

/// A tenant's human name (`acme`, `globex-eu`): 1–64 characters of ASCII
/// letters, digits, `-`, `_` or `.`, so it is safe in URLs, logs and shells.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(value: &str) -> Result<Self, InvalidId> {
        let ok = (1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidId {
                kind: "tenant name (1-64 of A-Z a-z 0-9 - _ .)",
                value: value.to_owned(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TenantName {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, InvalidId> {
        Self::parse(&value)
    }
}

impl From<TenantName> for String {
    fn from(name: TenantName) -> String {
        name.0
    }
}

#[cfg(test)]
mod tenant_name_tests {
    use super::TenantName;

    #[test]
    fn tenant_names_are_plain() {
        assert!(TenantName::parse("acme-eu.prod_1").is_ok());
        for bad in ["", "a b", "../x", "ünï", &"x".repeat(65)] {
            assert!(TenantName::parse(bad).is_err(), "{bad}");
        }
    }
}
