//! The Mode connector for the unified User Directory API.
//!
//! [`ModeDirectory`] maps Mode's workspace memberships, invites, groups and
//! group memberships (spec `mode-api.md` §3) onto the unified types. Users
//! are keyed by Mode's **user token** (`member_token`); lists read only
//! `GET /api/{workspace}/memberships` and never fan out per user; paging
//! copes with Mode paginating or not (see [`paging`]). The full mapping and
//! the calls each operation makes are in `docs/providers/mode.md`.

mod directory;
mod paging;
mod payload;

pub use directory::{DEFAULT_INVITE_MESSAGE, ModeDirectory};
