//! Rollcall's one integration-test binary: every module here starts the
//! real application (in-process on a random port, or the real `rollcall`
//! executable) against a fresh SQLite store and in-process simulators.

// Helpers here are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounts;
mod audit_log;
mod cli;
mod crash;
mod governance;
mod health;
mod helpers;
mod keys;
mod link_page;
mod multi_node;
mod openapi;
mod proxy;
mod resilience;
mod rotation;
mod secrets;
mod sessions;
mod sync;
mod unified;
mod webhooks;
