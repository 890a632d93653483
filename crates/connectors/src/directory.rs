//! The one interface every vendor connector implements for the unified User
//! Directory API. The server turns these results into contract responses;
//! each vendor module (`mode`, `metabase`) turns its payloads into the
//! unified types of `rollcall_core::unified`.
//!
//! Paging: a list takes the `position` the previous page returned (an
//! opaque, vendor-specific string the server wraps in its signed cursor) and
//! a `limit`, and returns at most `limit` items plus the next position, or
//! `None` at the end. Walking every page must yield every object exactly once
//! whatever the vendor does underneath.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use rollcall_core::Provider;
use rollcall_core::unified::{Group, GroupMembership, Me, Role, User, UserStatus};

use crate::error::{ConnectorError, Remote};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// `None` for the first page.
    pub position: Option<String>,
    /// 1..=1000.
    pub limit: u32,
    /// Fill `remote_data` with the vendor's own object.
    pub include_remote_data: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_position: Option<String>,
    /// Items lack fields that would need one vendor call each.
    pub is_partial_response: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// Default (None): active users only, as both vendors list by default.
    pub status: Option<UserStatus>,
    /// Exact, case-insensitive.
    pub email: Option<String>,
    pub is_admin: Option<bool>,
    pub group_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipQuery {
    pub group_id: Option<String>,
    pub user_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewUser {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub is_admin: bool,
    /// Groups to join at once (where the vendor allows it on create).
    pub group_ids: Vec<String>,
    /// The invitation message (Mode).
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub is_admin: Option<bool>,
    /// `active` reactivates, `inactive` deactivates (`invited` is refused).
    pub status: Option<UserStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewGroup {
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPatch {
    pub name: Option<String>,
    pub description: Option<String>,
}

/// Whether an add created the membership or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Created,
    AlreadyPresent,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The vendor cannot do this at all (501 `unsupported_by_provider`).
    #[error("{0}")]
    Unsupported(String),
    /// No such user/group/membership (404); `remote` if the vendor said so.
    #[error("{message}")]
    NotFound {
        message: String,
        remote: Option<Remote>,
    },
    /// The vendor refused because of the state of things (409): the last
    /// admin, a duplicate email or name, a built-in group.
    #[error("{message}")]
    Conflict {
        message: String,
        remote: Option<Remote>,
    },
    /// The input is wrong for this vendor (400).
    #[error("{message}")]
    Invalid {
        message: String,
        remote: Option<Remote>,
    },
    /// Transport, authentication and other vendor failures.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
}

/// Everything a sync stores about one account, read in the cheapest way
/// the vendor allows. Users carry `groups: None` (memberships say that) and
/// no `remote_data`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirectorySnapshot {
    /// Every user the vendor knows: active, deactivated/former and invited;
    /// less those the read's sink kept (`ProgressSink::listed`).
    pub users: Vec<User>,
    /// Every live group (soft-deleted ones left out).
    pub groups: Vec<Group>,
    /// `(group_id, user_id)` pairs, each once; best sorted (as text), which
    /// spares the sync sorting them again.
    pub memberships: Vec<(String, String)>,
    pub roles: Vec<Role>,
    /// Users carry `last_active_at` from the vendor (`None` there: never
    /// active). False when the vendor shows no activity for this account
    /// (Mode without a Discovery API token): nobody's activity is known.
    pub activity_exposed: bool,
}

/// Where a snapshot read has got to, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotProgress {
    /// `users`, `user_details`, `groups` or `memberships`.
    pub phase: &'static str,
    pub done: u64,
    /// Known once the vendor has said how many there are.
    pub total: Option<u64>,
}

/// Told of progress as a snapshot read goes; must be cheap (it is called
/// once per item or page).
#[async_trait]
pub trait ProgressSink: Send + Sync {
    fn report(&self, progress: SnapshotProgress);

    /// What the sink knows of the last snapshot's users, for a connector
    /// that can tell a vendor record unchanged before building the user
    /// from it; asked before each page is built, and may wait until the
    /// sink has read them. `None`: nothing known; every user is built.
    async fn known_fingerprints(&self) -> Option<KnownFingerprints> {
        None
    }

    /// A page of users as the vendor listed them, handed over while the
    /// rest is still being read, in listing order. A sink may keep them to
    /// start its own work on them early (the sync puts them in stored form
    /// while the next page downloads); the users it returns stay in the
    /// snapshot's `users`. A user listed twice may reach the sink twice:
    /// the first listed is the one to keep. `Listed::Known` only comes for
    /// users the sink's `known_fingerprints` named.
    fn listed(&self, users: Vec<Listed>) -> Vec<User> {
        users.into_iter().filter_map(Listed::into_user).collect()
    }
}

/// The id of the last snapshot's user with this fingerprint, if it holds
/// one (see `Listed`). A fingerprint covers the whole record, its id too.
pub type KnownFingerprints = Arc<dyn Fn(i64) -> Option<String> + Send + Sync>;

/// A user as a snapshot read lists it.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a page of these is moved once; boxing would cost an allocation per user built"
)]
pub enum Listed {
    /// Built in full. `fingerprint`: a hash of the vendor's record and of
    /// how the connector maps it, from a connector that keeps them (equal
    /// fingerprints, equal users).
    User {
        user: User,
        fingerprint: Option<i64>,
    },
    /// A record whose fingerprint the sink knew: not built again.
    Known { id: String, fingerprint: i64 },
}

impl Listed {
    pub fn into_user(self) -> Option<User> {
        match self {
            Self::User { user, .. } => Some(user),
            Self::Known { .. } => None,
        }
    }
}

/// What the last good snapshot knew of each user, by id: a connector that
/// needs one call per user for some fields (Mode's email and name) reuses
/// them for users the vendor's list shows unchanged.
pub type KnownUsers = HashMap<String, User>;

#[async_trait]
pub trait Directory: Send + Sync {
    fn provider(&self) -> Provider;

    async fn list_users(
        &self,
        query: &UserQuery,
        page: &PageRequest,
    ) -> Result<Page<User>, DirectoryError>;
    /// The full user (including fields lists may leave out).
    async fn get_user(&self, id: &str, include_remote_data: bool) -> Result<User, DirectoryError>;
    /// Mode: the invite flow. Metabase: creates the user.
    async fn create_user(&self, input: &NewUser) -> Result<User, DirectoryError>;
    async fn update_user(&self, id: &str, patch: &UserPatch) -> Result<User, DirectoryError>;
    /// Deprovision: Mode removes the workspace membership, Metabase deactivates.
    async fn delete_user(&self, id: &str) -> Result<(), DirectoryError>;

    async fn list_groups(&self, page: &PageRequest) -> Result<Page<Group>, DirectoryError>;
    async fn get_group(&self, id: &str, include_remote_data: bool)
    -> Result<Group, DirectoryError>;
    async fn create_group(&self, input: &NewGroup) -> Result<Group, DirectoryError>;
    async fn update_group(&self, id: &str, patch: &GroupPatch) -> Result<Group, DirectoryError>;
    async fn delete_group(&self, id: &str) -> Result<(), DirectoryError>;

    async fn list_group_memberships(
        &self,
        query: &MembershipQuery,
        page: &PageRequest,
    ) -> Result<Page<GroupMembership>, DirectoryError>;
    /// Idempotent: an existing membership is returned as `AlreadyPresent`.
    async fn add_group_membership(
        &self,
        group_id: &str,
        user_id: &str,
    ) -> Result<(GroupMembership, Added), DirectoryError>;
    /// `id` is `<group_id>:<user_id>`; a membership that does not exist is NotFound.
    async fn remove_group_membership(&self, id: &str) -> Result<(), DirectoryError>;

    async fn list_roles(&self) -> Result<Vec<Role>, DirectoryError>;
    async fn get_role(&self, id: &str) -> Result<Role, DirectoryError>;
    async fn me(&self) -> Result<Me, DirectoryError>;

    /// Whether [`Directory::snapshot`] reuses fields of the `known` users
    /// (so a sync should pass them); false lets the sync skip building them.
    fn reuses_known_users(&self) -> bool {
        false
    }

    /// The whole directory for a sync. Fails as a whole: a snapshot that
    /// could not be read completely is an error, never a partial result.
    async fn snapshot(
        &self,
        known: &KnownUsers,
        progress: &dyn ProgressSink,
    ) -> Result<DirectorySnapshot, DirectoryError>;
}
