//! A simulator of Mode Analytics' user-directory API, built to
//! `shared/specs/mode-api.md` (checklist C1–C18): workspace memberships,
//! invites, groups, group memberships, the account endpoints and the
//! read-only Discovery API, with Mode's HAL envelopes, error bodies, Basic
//! auth, per-token rate limit, and the kit's fault injection and counters.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rollcall_sim_mode::{ModeSim, ModeSimConfig};
//! let sim = ModeSim::new(ModeSimConfig::default())?;
//! let running = sim.start("127.0.0.1:0".parse()?).await?;
//! let alice = &running.fixtures().admin;
//! // curl -u {alice.token}:{alice.secret} {base_url}/api/acme/memberships
//! println!("{} {}:{}", running.base_url(), alice.token, alice.secret);
//! running.stop().await?;
//! # Ok(()) }
//! ```
//!
//! # Vendor routes
//!
//! | Method | Path | Who |
//! |---|---|---|
//! | GET | `/api/account` | personal token (Workspace API token: 400 "unsupported for use with Api Keys") |
//! | GET | `/api/verify` | any (workspace token: `{workspace, workspace_token, _links}`; personal: the user object) |
//! | GET | `/api/{username}` | any user object, incl. `email` (visible to members of a shared workspace) |
//! | GET | `/api/{workspace}` | members; `membership_type` is the caller's |
//! | GET | `/api/{ws}/memberships`, `/api/{ws}/memberships/{token}` | members |
//! | DELETE | `/api/{ws}/memberships/{token}` | admins |
//! | POST | `/api/{ws}/invites` | admins with a personal token |
//! | GET, POST | `/api/{ws}/groups` | admins |
//! | GET, PATCH, DELETE | `/api/{ws}/groups/{group}` | admins |
//! | GET, POST | `/api/{ws}/groups/{group}/memberships` | admins |
//! | GET, DELETE | `/api/{ws}/groups/{group}/memberships/{token}` | admins |
//! | GET | `/batch/{ws}/members?page=&per_page=` | `Authorization: Bearer <discovery_token>` |
//!
//! Every `/api` path needs Basic `token:secret` (401 otherwise); a caller who
//! is not a current member of `{ws}` gets 404. A trailing slash is ignored.
//! Answers are `application/hal+json` whatever the `Accept` header says.
//!
//! # Data
//!
//! Seeded (`--users N --seed S`): alice (admin), bob (member) and N-2 more
//! members, about 5% admins, 5% former members (`state: deactivated`) and 3%
//! pending invitees (`state: pending`, `invited: true`), plus `outsider`, a
//! user in no workspace. Groups of varied sizes (up to ~10% of the
//! workspace), the last one always soft-deleted. The same seed gives the
//! same users, tokens, secrets and dates (dates are laid out before
//! 2025-10-01, not relative to the clock). A million users seed in well
//! under a second in release builds; names, emails and tokens of seeded users
//! are derived, not stored.
//!
//! # Data file (`--data FILE`)
//!
//! ```json
//! {
//!   "workspace": "acme",              // optional; wins over --workspace
//!   "workspace_name": "Acme Corp",    // optional
//!   "users": [
//!     {"username": "alice", "name": "Alice Admin", "email": "alice@acme.example",
//!      "token": "a11ce0000001", "admin": true},
//!     {"username": "dave", "email": "dave@acme.example",
//!      "state": "pending", "created_at": "2024-05-01T12:00:00.000Z"},
//!     {"username": "erin", "email": "erin@acme.example", "state": "deactivated",
//!      "activated_at": "2023-01-01T00:00:00Z", "banned_at": "2024-01-01T00:00:00Z"}
//!   ],
//!   "groups": [
//!     {"name": "Analysts", "token": "9f0000000001", "members": ["alice", "dave"],
//!      "creator": "alice", "state": "active"}
//!   ]
//! }
//! ```
//!
//! (Comments are for this page only; the file is plain JSON.) Users need
//! `username` and `email`; `name` defaults to the username, `token` (12
//! lowercase hex) to a seeded one, `admin` to false, `state` to `active`
//! (also `pending`, `deactivated`, or `none` for a user in no workspace),
//! times to 2025-10-01. Groups need `name`; `state` is `active` or
//! `soft_deleted`, `members` are usernames of active or pending members,
//! `creator` defaults to alice. Unknown keys are refused. alice (active
//! admin), bob (active non-admin) and outsider (no workspace) are added when
//! missing, and must keep those roles when present. API credentials are
//! always derived from the seed.
//!
//! # Control endpoints
//!
//! From the kit: `GET /_sim/counters`, `POST /_sim/counters/reset`,
//! `GET|POST|DELETE /_sim/faults` (`{"spec": "429,retry_after=2@next=1"}`).
//! Mode-specific:
//!
//! - `GET /_sim/mode/fixtures`: the fixture credentials (as [`ModeFixtures`]).
//! - `GET /_sim/mode/state`: counts of users, members by state, admins,
//!   groups (active, soft-deleted) and live group memberships.
//! - `GET|POST /_sim/mode/settings`: read or change at run time any of
//!   `{"rate_limit": "40/10s"|"off", "retry_after": bool, "page_size": N|null,
//!   "former_members": "listed"|"hidden"}`. `former_members: hidden` makes
//!   deleted memberships vanish from the list (and 404 on GET) instead of
//!   staying with `state: deactivated` (the spec leaves this open, C7).
//! - `POST /_sim/mode/rate-limit/reset`: forget every credential's window.
//!
//! # Guesses followed (the spec marks these unconfirmed)
//!
//! Membership states `active`/`pending`/`deactivated`; DELETE keeps the
//! member listed as `deactivated` (configurable) and removes them from all
//! groups; membership tokens distinct from user tokens; group `state`
//! `active`, `group_type` `custom`, integer counts, boolean `managed`;
//! soft-deleted groups hidden from the list but 200 on GET, names unique
//! including soft-deleted ones; duplicate group member 400; Workspace API
//! token refused on invites with the Api Keys 400; non-admins 403 on
//! invites, groups and membership DELETE; `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset` (seconds) beside `X-RateLimit-Limit`; `Retry-After`
//! on 429 (switchable); 401/403/404/429 message texts; `_links.help` on
//! every error; `activated_at` of a pending member is the invite time; an
//! empty list is `"_embedded":{}`; `pagination` uses
//! `{page, per_page, count, total_pages, total_count}`; the Discovery API
//! caps `per_page` at 1000 and writes `last_day_*` as `YYYY-MM-DD`.

mod api;
pub mod config;
mod control;
mod datafile;
mod render;
mod store;
mod tokens;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::Request;
use base64::Engine;
use rollcall_sim_kit::{ControlState, RunningSim, SeededRng, SimError, control_routes};
use serde::Serialize;

pub use config::{ModeSimArgs, ModeSimConfig};

use crate::api::{App, Credential, Limits, Principal};
use crate::store::Store;
use crate::tokens::{Keys, Kind, hex12, mix};

#[derive(Debug, thiserror::Error)]
pub enum ModeSimError {
    #[error("invalid Mode simulator configuration: {0}")]
    Config(String),
    #[error("cannot read data file {path}: {source}")]
    DataRead {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("bad data file {path}: {message}")]
    DataFormat {
        path: std::path::PathBuf,
        message: String,
    },
    #[error(transparent)]
    Sim(#[from] SimError),
}

/// An API credential for HTTP Basic auth (`token` as user, `secret` as password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModeCredential {
    pub token: String,
    pub secret: String,
    /// The user a personal token belongs to; `None` for the Workspace API token.
    pub username: Option<String>,
}

impl ModeCredential {
    /// The `Authorization` header value.
    pub fn basic_auth(&self) -> String {
        let raw = format!("{}:{}", self.token, self.secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Credentials that exist in every dataset, derived from the seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModeFixtures {
    pub workspace: String,
    /// Personal token of alice, an admin member.
    pub admin: ModeCredential,
    /// A Workspace API token: admin-like, refused on `/api/account` and invites.
    pub workspace_api: ModeCredential,
    /// Personal token of bob, a non-admin member.
    pub member: ModeCredential,
    /// Personal token of `outsider`, a user in no workspace (404 on workspace paths).
    pub outsider: ModeCredential,
    /// The Discovery API's `Authorization: Bearer` value.
    pub discovery_token: String,
}

pub struct ModeSim {
    app: Arc<App>,
}

impl std::fmt::Debug for ModeSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModeSim")
            .field("fixtures", &self.app.fixtures)
            .finish_non_exhaustive()
    }
}

impl ModeSim {
    /// Seeds the data (or loads `data_file`) and derives the credentials.
    pub fn new(config: ModeSimConfig) -> Result<Self, ModeSimError> {
        config.validate()?;
        let store = match &config.data_file {
            Some(path) => datafile::load(path, &config.workspace, config.seed)?,
            None => Store::seeded(&config.workspace, config.users, config.seed),
        };
        let (credentials, fixtures, discovery_key) = credentials(&store, config.seed);
        let app = App {
            clock: config.clock.clone(),
            control: ControlState::new(config.faults.clone(), api::mode_error_body),
            credentials,
            discovery_bearer: fixtures.discovery_token.clone(),
            discovery_key,
            limits: RwLock::new(Limits::new(config.rate_limit, config.retry_after)),
            page_size: AtomicUsize::new(config.page_size.unwrap_or(0)),
            hide_former: AtomicBool::new(false),
            fixtures,
            store: RwLock::new(store),
        };
        Ok(Self { app: Arc::new(app) })
    }

    /// Vendor routes (counted and faulted) plus the control routes.
    pub fn router(&self) -> Router {
        let vendor = self
            .app
            .control
            .observe(api::vendor_router(self.app.clone()));
        let inner = vendor
            .merge(control_routes(self.app.control.clone()))
            .merge(control::routes(self.app.clone()));
        // Routing happens inside `inner`, after the trailing slash is gone
        // (opsbot calls `/api/{org}/`).
        Router::new()
            .fallback_service(inner)
            .layer(axum::middleware::map_request(strip_trailing_slash))
    }

    pub fn control(&self) -> &ControlState {
        &self.app.control
    }

    pub fn fixtures(&self) -> ModeFixtures {
        self.app.fixtures.clone()
    }

    /// Serves on `addr` (port 0 picks a free one) in a background task.
    pub async fn start(self, addr: SocketAddr) -> Result<RunningModeSim, ModeSimError> {
        let running = rollcall_sim_kit::serve(self.router(), addr).await?;
        tracing::info!(base_url = %running.base_url(), workspace = %self.app.fixtures.workspace, "Mode simulator listening");
        Ok(RunningModeSim {
            running,
            app: self.app,
        })
    }
}

pub struct RunningModeSim {
    running: RunningSim,
    app: Arc<App>,
}

impl std::fmt::Debug for RunningModeSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningModeSim")
            .field("addr", &self.running.addr())
            .finish_non_exhaustive()
    }
}

impl RunningModeSim {
    /// `http://127.0.0.1:PORT`, no trailing slash; vendor paths follow it.
    pub fn base_url(&self) -> String {
        self.running.base_url()
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.addr()
    }

    pub fn fixtures(&self) -> &ModeFixtures {
        &self.app.fixtures
    }

    pub fn control(&self) -> &ControlState {
        &self.app.control
    }

    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn stop(self) -> Result<(), ModeSimError> {
        Ok(self.running.stop().await?)
    }

    /// Serves until the server stops.
    pub async fn wait(self) -> Result<(), ModeSimError> {
        Ok(self.running.wait().await?)
    }
}

async fn strip_trailing_slash(mut request: Request) -> Request {
    let uri = request.uri();
    let path = uri.path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let rebuilt = match uri.query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_owned(),
        };
        if let Ok(new_uri) = rebuilt.parse() {
            *request.uri_mut() = new_uri;
        }
    }
    request
}

/// The four API credentials and the Discovery bearer, all from the seed.
fn credentials(store: &Store, seed: u64) -> (HashMap<String, Credential>, ModeFixtures, String) {
    let keys = Keys::new(seed, Kind::AccessKey);
    let mut secrets = SeededRng::new(mix(seed ^ ((Kind::Secret as u64) << 56)));
    let mut credentials = HashMap::new();
    let mut make = |n: u64, principal: Principal, username: Option<String>| {
        let credential = ModeCredential {
            token: hex12(keys.permute(n)),
            secret: secrets.hex(32),
            username,
        };
        credentials.insert(
            credential.token.clone(),
            Credential {
                secret: credential.secret.clone(),
                principal,
            },
        );
        credential
    };
    let f = store.fixtures;
    let personal = |u: u32| (Principal::Personal(u), Some(store.username(u).into_owned()));
    let (p, n) = personal(f.alice);
    let admin = make(0, p, n);
    let (p, n) = personal(f.bob);
    let member = make(1, p, n);
    let (p, n) = personal(f.outsider);
    let outsider = make(2, p, n);
    let workspace_api = make(3, Principal::WorkspaceKey, None);
    let signature = hex12(Keys::new(seed, Kind::Signature).permute(0));
    let discovery_token = base64::engine::general_purpose::STANDARD.encode(format!(
        "{signature}:{}:{}",
        workspace_api.token, workspace_api.secret
    ));
    let fixtures = ModeFixtures {
        workspace: store.workspace.username.clone(),
        admin,
        workspace_api,
        member,
        outsider,
        discovery_token,
    };
    (credentials, fixtures, signature)
}
