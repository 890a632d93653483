//! A Metabase simulator: the user-directory part of the REST API of a
//! current OSS Metabase with API keys, plus the Enterprise SCIM endpoints,
//! built to `shared/specs/metabase-api.md` (its §9 checklist).
//!
//! # What it serves
//!
//! * `POST/DELETE /api/session`, `GET /api/session/properties`, `GET /api/health`;
//! * `/api/user` (list, current, get, create, update, deactivate,
//!   reactivate, password, modal);
//! * `/api/permissions/group[/:id]`, `/api/permissions/membership[/:id[/clear]]`;
//! * `/api/api-key` (create, list, count, update, regenerate, delete);
//! * `/api/ee/scim/api_key` and `/api/ee/scim/v2/{Users,Groups}`.
//!
//! Authentication is a session (`X-Metabase-Session` header or the
//! `metabase.SESSION` cookie; absolute expiry after the configured max age,
//! by the configured clock) or `X-API-KEY`. SCIM takes only
//! `Authorization: Bearer <scim key>`. Group-manager features answer 402, as
//! OSS does. Failed logins are throttled as in Metabase unless disabled
//! (10 per username, 50 per source address — the first `X-Forwarded-For`
//! entry, else the peer — within an hour).
//!
//! Every request is checked in Metabase's order: authentication, route,
//! request schema, permission, existence, model rules. Bodies are read only
//! with a JSON content type (`application/json` or `…+json`), as ring-json
//! does; any other body counts as absent.
//!
//! # Seeded data and fixtures
//!
//! `users` counts the seeded personal users (10 to 1,000,000); the two
//! fixture API keys add two hidden `api-key` users after them. See
//! [`seed`] for the layout. [`MetabaseFixtures`] holds the
//! credentials; they depend on the seed only: the admin (id 1,
//! `admin@example.com`), a member (id 2, `member@example.com`), an API key
//! in Administrators, an API key in a custom group, the SCIM key, and the
//! password every other seeded user shares. With a million users, a page
//! at any offset of `GET /api/user` walks a maintained order index rather
//! than sorting.
//!
//! # Control endpoints
//!
//! The kit's `/_sim/counters`, `/_sim/counters/reset` and `/_sim/faults`
//! (GET/POST/DELETE), and these (none counted or faulted):
//!
//! | endpoint | effect |
//! |---|---|
//! | `POST /_sim/metabase/sessions/expire` | expire every session now (`{"expired":n}`); clients must log in again |
//! | `GET /_sim/metabase/sessions` | `{"total":n,"live":m}` |
//! | `GET /_sim/metabase/users/{id}/sessions` | `{"user_id","live","total"}` for one user |
//! | `POST /_sim/metabase/throttle/reset` | forget failed logins (204) |
//! | `GET /_sim/metabase/fixtures` | the fixture credentials as JSON |
//! | `GET /_sim/metabase/invariants` | `{"ok":bool,"violations":[…]}`: the spec's state rules checked over all data |
//! | `PUT /_sim/metabase/scim` `{"enabled":bool}` | turn SCIM on or off |
//!
//! Counter events: `login` (every `POST /api/session`), `login_ok`,
//! `login_throttled`. Credentials are counted by user email (sessions), API
//! key name (`X-API-KEY`) or `scim`.
//!
//! # Data file (`--data FILE`)
//!
//! ```json
//! {
//!   "groups": [{"name": "Marketing"}],
//!   "users": [
//!     {"email": "ada@example.com", "first_name": "Ada", "last_name": "Admin",
//!      "password": "s3cret1", "is_superuser": true},
//!     {"email": "bob@example.com", "first_name": "Bob", "last_name": "Builder",
//!      "password": "b0bpass", "groups": ["Marketing"],
//!      "last_login": "2024-05-02T08:00:00Z"},
//!     {"email": "gone@example.com", "is_active": false, "sso_source": "google"}
//!   ],
//!   "api_keys": [{"name": "ci-bot", "group": "Marketing"}],
//!   "scim_key": "mb_…44 base64 characters…"
//! }
//! ```
//!
//! * `groups`: custom groups, ids 3, 4, … in file order (1 is All Users, 2
//!   Administrators).
//! * `users`: ids 1, 2, … in file order. Only `email` is required. Optional:
//!   `first_name`, `last_name`, `password` (without one the user cannot log
//!   in), `is_superuser` (puts them in Administrators), `is_active`
//!   (default true), `groups` (names), `sso_source`
//!   (`google|ldap|saml|jwt|scim`), `locale`, `login_attributes`,
//!   `date_joined`, `last_login` (RFC 3339), `is_qbnewb`. Unknown fields are
//!   refused.
//! * The first active superuser with a password is the admin fixture, the
//!   first active non-superuser with a password the member fixture; both
//!   must exist, and at least one active superuser.
//! * `api_keys` (optional): `name`, `group` (a name, `Administrators` and
//!   `All Users` allowed), optional `key`. The first key in Administrators
//!   and the first elsewhere become the fixture keys; missing ones are
//!   created from the seed (`Rollcall admin` in Administrators, `Rollcall
//!   member` in the first custom group).
//! * `scim_key` (optional): otherwise derived from the seed.
//!
//! # Where the spec guesses
//!
//! Lines marked `[inference]` in the spec are followed and marked so in the
//! code: the combined two-field login error, the All Users 400 text on
//! create and clear, 500 on re-adding an existing membership, the newest
//! tenant-check 400 for unknown users or groups, 204 on deleting a missing
//! group, `%`/`_` as `LIKE` wildcards in `query`, non-numeric route ids as
//! unknown endpoints, the "Please try again later." throttle message, SCIM
//! errors as `application/scim+json`, and null names sorting last.

pub mod config;

mod app;
mod datafile;
mod db;
mod groups;
mod http;
mod index;
mod keys;
mod scim;
pub mod seed;
mod session;
mod simctl;
mod users;
mod views;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post, put};
use rollcall_sim_kit::{ControlState, RunningSim, SimError, control_routes};

pub use config::{MetabaseSimArgs, MetabaseSimConfig};

use crate::app::Shared;
use crate::http::{ApiError, json_response, text};

#[derive(Debug, thiserror::Error)]
pub enum MetabaseSimError {
    #[error("bad Metabase simulator configuration: {0}")]
    Config(String),
    #[error("cannot read the data file {path}: {source}")]
    DataFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad data file {path}: {message}")]
    Data { path: PathBuf, message: String },
    #[error(transparent)]
    Sim(#[from] SimError),
}

/// Credentials a client or test can use against the simulator.
#[derive(Debug, Clone)]
pub struct MetabaseFixtures {
    /// A superuser (id 1 when seeded).
    pub admin_email: String,
    pub admin_password: String,
    /// A regular active user.
    pub member_email: String,
    pub member_password: String,
    /// `mb_` + 44 base64 characters; its user is in Administrators.
    pub admin_api_key: String,
    /// A key whose user is in a non-admin custom group.
    pub member_api_key: String,
    /// `Authorization: Bearer` key for `/api/ee/scim/v2`.
    pub scim_key: String,
    /// The password of every other seeded user.
    pub seeded_password: String,
}

pub struct MetabaseSim {
    app: Arc<Shared>,
    fixtures: MetabaseFixtures,
}

impl std::fmt::Debug for MetabaseSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetabaseSim")
            .field("fixtures", &self.fixtures)
            .finish_non_exhaustive()
    }
}

/// Metabase's own answer for an injected status: plain text like its other
/// errors, and the exception shape for a 500.
fn error_body(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match status {
        500 => json_response(
            code,
            &serde_json::json!({ "message": "Internal server error." }),
        ),
        400 => text(code, http::INVALID_REQUEST),
        401 => text(code, http::UNAUTHENTICATED),
        403 => text(code, http::FORBIDDEN),
        404 => text(code, http::NOT_FOUND),
        _ => text(code, code.canonical_reason().unwrap_or("Error")),
    }
}

/// Routes `+auth` wraps: an unauthenticated request is 401 before routing.
fn auth_wrapped(path: &str) -> bool {
    ["/api/user", "/api/permissions", "/api/api-key"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

async fn fallback(
    State(app): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    use axum::response::IntoResponse as _;
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        let db = app.db();
        if path.starts_with("/api/ee/scim/v2")
            && let Err(e) = scim::authenticate(&app, &db, &headers)
        {
            return e.into_response();
        }
        if auth_wrapped(path)
            && let Err(e) = app.authenticate(&db, &headers)
        {
            return e.into_response();
        }
        return ApiError::no_endpoint().into_response();
    }
    if method == Method::GET {
        return session::frontend().await;
    }
    ApiError::not_found().into_response()
}

fn vendor_routes(app: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/health", get(session::health))
        .route("/api/session", post(session::login).delete(session::logout))
        .route("/api/session/properties", get(session::properties))
        .route("/api/user", get(users::list).post(users::create))
        .route("/api/user/current", get(users::current))
        .route(
            "/api/user/{id}",
            get(users::get_one)
                .put(users::update)
                .delete(users::deactivate),
        )
        .route("/api/user/{id}/reactivate", put(users::reactivate))
        .route("/api/user/{id}/password", put(users::password))
        .route("/api/user/{id}/modal/{modal}", put(users::modal))
        .route(
            "/api/permissions/group",
            get(groups::list).post(groups::create),
        )
        .route(
            "/api/permissions/group/{id}",
            get(groups::get_one)
                .put(groups::update)
                .delete(groups::delete),
        )
        .route(
            "/api/permissions/membership",
            get(groups::memberships).post(groups::add_member),
        )
        .route(
            "/api/permissions/membership/{id}",
            put(groups::update_membership).delete(groups::remove_member),
        )
        .route("/api/permissions/membership/{id}/clear", put(groups::clear))
        .route("/api/api-key", get(keys::list).post(keys::create))
        .route("/api/api-key/count", get(keys::count))
        .route("/api/api-key/{id}", put(keys::update).delete(keys::delete))
        .route("/api/api-key/{id}/regenerate", put(keys::regenerate))
        .route(
            "/api/ee/scim/api_key",
            get(scim::get_key).post(scim::rotate_key),
        )
        .route(
            "/api/ee/scim/v2/Users",
            get(scim::list_users).post(scim::create_user),
        )
        .route(
            "/api/ee/scim/v2/Users/{id}",
            get(scim::get_user)
                .put(scim::put_user)
                .patch(scim::patch_user),
        )
        .route(
            "/api/ee/scim/v2/Groups",
            get(scim::list_groups).post(scim::create_group),
        )
        .route(
            "/api/ee/scim/v2/Groups/{id}",
            get(scim::get_group)
                .put(scim::put_group)
                .delete(scim::delete_group),
        )
        .fallback(fallback)
        .method_not_allowed_fallback(fallback)
        .with_state(app)
}

impl MetabaseSim {
    /// Seeds the data (or loads `config.data_file`).
    pub fn new(config: MetabaseSimConfig) -> Result<Self, MetabaseSimError> {
        let now = config.clock.now_millis();
        let (db, fixtures) = match &config.data_file {
            Some(path) => datafile::load(path, config.seed, now)?,
            None => {
                if !(config::MIN_USERS..=config::MAX_USERS).contains(&config.users) {
                    return Err(MetabaseSimError::Config(format!(
                        "users must be between {} and {}, got {}",
                        config::MIN_USERS,
                        config::MAX_USERS,
                        config.users
                    )));
                }
                seed::seed(config.users, config.seed, now)
            }
        };
        let control = ControlState::new(config.faults.clone(), error_body);
        let max_age_ms = i64::try_from(config.session_max_age.as_millis()).unwrap_or(i64::MAX);
        let app = Arc::new(Shared::new(
            db,
            control,
            config.clock.clone(),
            max_age_ms,
            config.login_throttle,
        ));
        Ok(Self { app, fixtures })
    }

    /// Vendor routes (counted, faultable) plus the control routes.
    pub fn router(&self) -> Router {
        let control = self.app.control.clone();
        control
            .observe(vendor_routes(self.app.clone()))
            .merge(control_routes(control))
            .merge(simctl::routes(self.app.clone(), self.fixtures.clone()))
    }

    pub fn control(&self) -> &ControlState {
        &self.app.control
    }

    pub fn fixtures(&self) -> MetabaseFixtures {
        self.fixtures.clone()
    }

    /// Serves on `addr` (port 0 picks one) in the background.
    pub async fn start(self, addr: SocketAddr) -> Result<RunningMetabaseSim, MetabaseSimError> {
        let running = rollcall_sim_kit::serve(self.router(), addr).await?;
        Ok(RunningMetabaseSim {
            running,
            fixtures: self.fixtures,
            control: self.app.control.clone(),
        })
    }
}

/// A simulator serving in the background; dropping it stops the server.
#[derive(Debug)]
pub struct RunningMetabaseSim {
    running: RunningSim,
    fixtures: MetabaseFixtures,
    control: ControlState,
}

impl RunningMetabaseSim {
    /// `http://127.0.0.1:PORT` (no trailing slash; vendor paths are `/api/...`).
    pub fn base_url(&self) -> String {
        self.running.base_url()
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.addr()
    }

    pub fn fixtures(&self) -> &MetabaseFixtures {
        &self.fixtures
    }

    pub fn control(&self) -> &ControlState {
        &self.control
    }

    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn stop(self) {
        if let Err(e) = self.running.stop().await {
            tracing::warn!(error = %e, "Metabase simulator stopped with an error");
        }
    }

    /// Serves until the server task ends (or fails).
    pub async fn wait(self) -> Result<(), MetabaseSimError> {
        self.running.wait().await.map_err(MetabaseSimError::from)
    }
}
