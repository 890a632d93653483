//! The Metabase simulator against the spec's §9 checklist, over real HTTP.
//! One test (or a close group) per checklist line, then the state rules,
//! sessions, throttling, faults, counters, data files, bad input,
//! determinism and scale.

// Test helpers outside #[test] functions unwrap freely too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_keys;
mod auth;
mod groups;
mod harness;
mod rules;
mod scim;
mod support;
mod users;
