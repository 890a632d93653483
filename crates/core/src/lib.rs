//! Rollcall's core model: the types every other crate shares and nothing
//! else (no I/O, no HTTP, no database).

pub mod clock;
pub mod error;
pub mod id;
pub mod provider;
pub mod roles;
pub mod unified;

pub use clock::{Clock, MockClock, SharedClock, SystemClock};
pub use error::ErrorCode;
pub use provider::Provider;
pub use roles::RoleMap;
