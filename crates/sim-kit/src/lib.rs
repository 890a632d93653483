//! Shared machinery for Rollcall's vendor simulators: starting a simulator
//! on a port, fault injection controlled by flags or a control endpoint,
//! request counters an outside test can read, a sliding-window rate limiter
//! and a deterministic random source for seeded data.
//!
//! The vendor behaviour itself lives in `rollcall-sim-mode` and
//! `rollcall-sim-metabase`; nothing here knows about either vendor.

pub mod control;
pub mod counters;
pub mod faults;
pub mod limiter;
pub mod rng;
pub mod server;

pub use control::{ControlState, control_routes};
pub use counters::{Counters, CountersSnapshot};
pub use faults::{FaultAction, FaultPlan, FaultRule, FaultTrigger, ParseFaultError};
pub use limiter::{Admission, WindowLimiter};
pub use rng::SeededRng;
pub use server::{RunningSim, SimError, serve};
