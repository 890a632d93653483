use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The vendors Rollcall can link.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Mode,
    Metabase,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mode => "mode",
            Self::Metabase => "metabase",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown provider `{0}` (expected `mode` or `metabase`)")]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mode" => Ok(Self::Mode),
            "metabase" => Ok(Self::Metabase),
            other => Err(UnknownProvider(other.to_owned())),
        }
    }
}
