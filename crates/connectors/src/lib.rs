//! Vendor connectors: how Rollcall talks to each vendor account. This crate
//! owns the vendors' shapes (configs, credentials, payloads) and the
//! mechanics of calling them with credentials injected; nothing in it knows
//! about Rollcall's own API or store.

pub mod account;
pub mod config;
pub mod credentials;
pub mod directory;
pub mod error;
pub mod guard;
pub mod http;
pub mod metabase;
pub mod mode;

pub use account::{LinkedAccount, SessionRegistry, VendorAnswer, VendorBody, VendorRequest};
pub use config::{AccountConfig, BaseUrl, MetabaseConfig, ModeConfig};
pub use credentials::{Credentials, MetabaseCredentials, ModeCredentials};
pub use directory::{
    Added, Directory, DirectoryError, DirectorySnapshot, GroupPatch, KnownFingerprints, KnownUsers,
    Listed, MembershipQuery, NewGroup, NewUser, Page, PageRequest, ProgressSink, SnapshotProgress,
    UserPatch, UserQuery,
};
pub use error::{ConnectorError, Remote};
pub use guard::{RateSnapshot, RetryPolicy, SharedWindow, VendorGuards};
pub use http::VendorHttp;
