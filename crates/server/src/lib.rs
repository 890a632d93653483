//! Rollcall's HTTP server: configuration, telemetry, the application
//! router and its error type. `main` only wires these together.
//!
//! Read in this order: `config` (what can be set and from where), `app`
//! (the `AppState`, the router and the layers around it), `error` (the one
//! error type every handler returns), then the route modules.

pub mod accounts;
pub mod app;
pub mod audit;
pub mod auth;
pub mod background;
pub mod cache;
pub mod config;
mod csv;
pub mod cursor;
pub mod docs;
pub mod error;
pub mod events;
pub mod extract;
pub mod grants;
pub mod health;
pub mod idempotency;
pub mod keys;
pub mod link;
pub mod plans;
pub mod proxy;
pub mod ratelimit;
pub mod recent;
pub mod reports;
pub mod request_id;
pub mod rotation;
pub mod sync;
pub mod telemetry;
pub mod unified;
pub mod vault_setup;
pub mod webhooks;

pub use app::{AppState, Application, openapi};
pub use config::{LogFormat, Settings};
pub use error::ApiError;
