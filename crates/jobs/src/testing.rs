//! What the crate's unit tests share.

use rollcall_core::unified::{User, UserStatus};

/// A user with an id, a status and an admin flag; the rest plain.
pub(crate) fn user(id: &str, status: UserStatus, admin: bool) -> User {
    User {
        id: id.into(),
        username: Some(id.into()),
        email: Some(format!("{id}@example.com")),
        first_name: None,
        last_name: None,
        name: None,
        status,
        is_admin: admin,
        roles: vec![],
        groups: None,
        last_active_at: None,
        created_at: None,
        updated_at: None,
        remote_data: None,
    }
}
