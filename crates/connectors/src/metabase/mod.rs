//! Metabase: session handling for username/password credentials, the
//! vendor's own JSON shapes, and the unified User Directory connector.

mod directory;
pub mod payload;
mod session;

pub use directory::MetabaseDirectory;
pub use session::SessionCell;
