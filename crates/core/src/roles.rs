//! Role normalization: each vendor's roles mapped to the unified role
//! types, so "who is an admin" means the same across vendors. The default
//! table is documented in `docs/governance.md`; deployments override single
//! entries in `rollcall.toml` (`[roles.<provider>] <role id> = "<type>"`).

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::Provider;
use crate::unified::{Ref, Role, RoleType};

/// The default table: `(provider, vendor role id, unified type)`.
pub const DEFAULT_ROLE_TYPES: &[(Provider, &str, RoleType)] = &[
    (Provider::Mode, "admin", RoleType::Admin),
    (Provider::Mode, "member", RoleType::Member),
    (Provider::Metabase, "admin", RoleType::Admin),
    (Provider::Metabase, "member", RoleType::Member),
    (Provider::Metabase, "group_manager", RoleType::GroupManager),
];

impl RoleType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
            Self::GroupManager => "group_manager",
        }
    }
}

impl FromStr for RoleType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Self::Admin),
            "member" => Ok(Self::Member),
            "group_manager" => Ok(Self::GroupManager),
            other => Err(format!(
                "`{other}` is not a role type (admin, member or group_manager)"
            )),
        }
    }
}

/// The table in force: defaults with the deployment's overrides on top.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleMap {
    overrides: BTreeMap<(Provider, String), RoleType>,
}

impl RoleMap {
    /// Overrides as the config file gives them: provider name → role id →
    /// type name. Unknown providers and types are errors, not ignored.
    pub fn parse(table: &BTreeMap<String, BTreeMap<String, String>>) -> Result<Self, String> {
        let mut overrides = BTreeMap::new();
        for (provider, roles) in table {
            let provider: Provider = provider.parse().map_err(|e| format!("roles: {e}"))?;
            for (role, kind) in roles {
                let kind: RoleType = kind
                    .parse()
                    .map_err(|e| format!("roles.{provider}.{role}: {e}"))?;
                overrides.insert((provider, role.clone()), kind);
            }
        }
        Ok(Self { overrides })
    }

    /// The unified type of a vendor role id. A role neither the table nor
    /// the overrides know is a plain member: it grants nothing that an
    /// audit would otherwise miss as "admin".
    pub fn type_of(&self, provider: Provider, role_id: &str) -> RoleType {
        if let Some(kind) = self.overrides.get(&(provider, role_id.to_owned())) {
            return *kind;
        }
        DEFAULT_ROLE_TYPES
            .iter()
            .find(|(p, id, _)| *p == provider && *id == role_id)
            .map_or(RoleType::Member, |(_, _, kind)| *kind)
    }

    /// `role` with its type from this table.
    pub fn normalize(&self, provider: Provider, mut role: Role) -> Role {
        role.role_type = self.type_of(provider, &role.id);
        role
    }

    /// Whether any of a user's roles is of the admin type.
    pub fn is_admin(&self, provider: Provider, roles: &[Ref]) -> bool {
        roles
            .iter()
            .any(|r| self.type_of(provider, &r.id) == RoleType::Admin)
    }

    /// The vendor role ids of the admin type, for queries by role.
    pub fn admin_role_ids(&self, provider: Provider) -> Vec<String> {
        let mut ids: Vec<String> = DEFAULT_ROLE_TYPES
            .iter()
            .filter(|(p, _, _)| *p == provider)
            .map(|(_, id, _)| (*id).to_owned())
            .chain(
                self.overrides
                    .keys()
                    .filter(|(p, _)| *p == provider)
                    .map(|(_, id)| id.clone()),
            )
            .filter(|id| self.type_of(provider, id) == RoleType::Admin)
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, &str, &str)]) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut t: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (p, r, k) in entries {
            t.entry((*p).into())
                .or_default()
                .insert((*r).into(), (*k).into());
        }
        t
    }

    #[test]
    fn defaults_follow_the_documented_table() {
        let map = RoleMap::default();
        assert_eq!(map.type_of(Provider::Mode, "admin"), RoleType::Admin);
        assert_eq!(map.type_of(Provider::Mode, "member"), RoleType::Member);
        assert_eq!(
            map.type_of(Provider::Metabase, "group_manager"),
            RoleType::GroupManager
        );
        assert_eq!(
            map.type_of(Provider::Metabase, "unheard_of"),
            RoleType::Member
        );
        assert_eq!(map.admin_role_ids(Provider::Metabase), vec!["admin"]);
    }

    #[test]
    fn overrides_replace_single_entries() {
        let map = RoleMap::parse(&table(&[("metabase", "group_manager", "admin")])).unwrap();
        assert_eq!(
            map.type_of(Provider::Metabase, "group_manager"),
            RoleType::Admin
        );
        assert_eq!(map.type_of(Provider::Mode, "admin"), RoleType::Admin);
        assert_eq!(
            map.admin_role_ids(Provider::Metabase),
            vec!["admin", "group_manager"]
        );
        let member = Ref {
            id: "group_manager".into(),
            name: "Group manager".into(),
        };
        assert!(map.is_admin(Provider::Metabase, &[member]));

        let demoted = RoleMap::parse(&table(&[("mode", "admin", "member")])).unwrap();
        assert!(demoted.admin_role_ids(Provider::Mode).is_empty());
    }

    #[test]
    fn bad_overrides_are_refused() {
        assert!(RoleMap::parse(&table(&[("looker", "admin", "admin")])).is_err());
        assert!(RoleMap::parse(&table(&[("mode", "admin", "owner")])).is_err());
    }
}
