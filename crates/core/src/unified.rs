//! The unified User Directory wire types (contract section 3): what every
//! vendor's users, groups, memberships and roles look like through Rollcall.
//! Vendor payloads convert into these in the connectors; stored rows convert
//! into them in the store's callers.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Inactive,
    Invited,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Invited => "invited",
        }
    }
}

/// `{"id","name"}`: how a user lists its roles and groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Ref {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    pub username: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub name: Option<String>,
    pub status: UserStatus,
    pub is_admin: bool,
    pub roles: Vec<Ref>,
    /// `None` when the vendor cannot tell without one call per user (the
    /// list then says `is_partial_response`).
    pub groups: Option<Vec<Ref>>,
    pub last_active_at: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    /// The vendor's own object, with `include_remote_data=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub remote_data: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub member_count: Option<u64>,
    /// A vendor's built-in group that cannot be renamed or deleted.
    pub is_builtin: bool,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    /// The vendor's own object, with `include_remote_data=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub remote_data: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupMembership {
    /// `<group_id>:<user_id>`, the same whatever the vendor calls it.
    pub id: String,
    pub group_id: String,
    pub user_id: String,
    pub created_at: Option<String>,
}

impl GroupMembership {
    pub fn id_for(group_id: &str, user_id: &str) -> String {
        format!("{group_id}:{user_id}")
    }

    /// The `(group_id, user_id)` a membership id names.
    pub fn parse_id(id: &str) -> Option<(&str, &str)> {
        let (group, user) = id.split_once(':')?;
        (!group.is_empty() && !user.is_empty()).then_some((group, user))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleType {
    Admin,
    Member,
    GroupManager,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleScope {
    Workspace,
    Group,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Role {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub role_type: RoleType,
    pub applicable_in: RoleScope,
}

impl Role {
    /// The workspace-wide admin role every vendor here has.
    pub fn workspace_admin() -> Self {
        Self {
            id: "admin".into(),
            name: "Admin".into(),
            role_type: RoleType::Admin,
            applicable_in: RoleScope::Workspace,
        }
    }

    /// The plain workspace member role every vendor here has.
    pub fn workspace_member() -> Self {
        Self {
            id: "member".into(),
            name: "Member".into(),
            role_type: RoleType::Member,
            applicable_in: RoleScope::Workspace,
        }
    }
}

/// Who the linked credential acts as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub id: String,
    /// `user` (a person's credential), `api_key` (a vendor API-key user) or
    /// `workspace_token` (Mode's workspace API token, which is no user).
    pub kind: String,
    pub username: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub is_admin: bool,
    /// The vendor's own object, with `include_remote_data=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub remote_data: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_ids_round_trip() {
        let id = GroupMembership::id_for("9f0000000001", "b0b000000002");
        assert_eq!(
            GroupMembership::parse_id(&id),
            Some(("9f0000000001", "b0b000000002"))
        );
        assert_eq!(GroupMembership::parse_id("nocolon"), None);
        assert_eq!(GroupMembership::parse_id(":x"), None);
    }

    #[test]
    fn roles_serialize_with_the_contracts_type_key() {
        let role = Role {
            id: "admin".into(),
            name: "Admin".into(),
            role_type: RoleType::Admin,
            applicable_in: RoleScope::Workspace,
        };
        let json = serde_json::to_value(role).unwrap();
        assert_eq!(json["type"], "admin");
        assert_eq!(json["applicable_in"], "workspace");
    }
}
