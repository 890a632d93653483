//! Rollcall's HTTP server: configuration, telemetry, the application
//! router and its error type. `main` only wires these together.
//!
//! Read in this order: `config` (what can be set and from where), `app`
//! (the `AppState`, the router and the layers around it), `error` (the one
//! error type every handler returns), then the route modules.

pub mod app;
pub mod config;
pub mod error;
pub mod health;
pub mod keys;
pub mod request_id;
pub mod telemetry;

pub use app::{AppState, Application};
pub use config::{LogFormat, Settings};
pub use error::ApiError;
