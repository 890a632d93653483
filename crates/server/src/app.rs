//! The application: one [`AppState`], one router assembled from each
//! module's `routes()`, and the layers every request passes through.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use rollcall_connectors::{RetryPolicy, VendorGuards, VendorHttp};
use rollcall_core::SharedClock;
use rollcall_core::id::{AccountId, TenantId};
use rollcall_jobs::Jobs;
use rollcall_store::{AccountRow, Store};
use rollcall_vault::Vault;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::accounts::Vendors;
use crate::config::Settings;
use crate::error::ApiError;
use crate::recent::Recent;
use crate::{
    accounts, audit, background, docs, events, grants, health, idempotency, keys, link, plans,
    proxy, ratelimit, reports, request_id, sync, unified, webhooks,
};

/// Everything a handler may need, cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    pub settings: Arc<Settings>,
    /// Seals and opens stored vendor credentials.
    pub vault: Arc<Vault>,
    /// The one outbound client for every vendor call.
    pub vendor_http: VendorHttp,
    /// Rate limiters, circuit breakers and Metabase sessions shared by
    /// every vendor call in the process.
    pub guards: Arc<VendorGuards>,
    /// Background work: syncs, the scheduler, webhook deliveries.
    pub jobs: Jobs,
    /// API keys read recently (see [`keys::KeyCache`]).
    pub key_cache: Arc<keys::KeyCache>,
    /// Accounts read recently for calls to their vendor (see
    /// [`accounts::load_linked`]).
    pub account_cache: Arc<Recent<AccountId, AccountRow>>,
    /// Accounts known to have a completed sync, with their tenant, for
    /// `source=cache` reads (see [`crate::cache::synced_account`]).
    pub synced_accounts: Arc<Recent<AccountId, TenantId>>,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        clock: SharedClock,
        settings: Settings,
        vault: Vault,
    ) -> Result<Self, rollcall_connectors::ConnectorError> {
        let vendor_http =
            VendorHttp::new(std::time::Duration::from_secs(settings.vendor_timeout_secs))?;
        let policy = RetryPolicy {
            deadline: std::time::Duration::from_secs(settings.vendor_deadline_secs),
            cooldown: std::time::Duration::from_secs(settings.circuit_cooldown_secs),
            ..RetryPolicy::default()
        };
        let vault = Arc::new(vault);
        let mut guards = VendorGuards::new(policy);
        // Several nodes share a PostgreSQL database: they share each
        // credential's rate-limit window too. (SQLite is one node.)
        if store.backend() == rollcall_store::Backend::Postgres {
            guards =
                guards.with_shared_window(Arc::new(crate::ratelimit::StoreWindow(store.clone())));
        }
        let guards = Arc::new(guards);
        let account_cache = Arc::new(accounts::account_cache());
        let opener = background::Opener {
            store: store.clone(),
            vault: vault.clone(),
            account_cache: account_cache.clone(),
            vendors: Vendors {
                http: vendor_http.clone(),
                guards: guards.clone(),
                clock: clock.clone(),
            },
        };
        let jobs = Jobs::new(
            store.clone(),
            clock.clone(),
            Arc::new(opener),
            vault.clone(),
            background::job_settings(&settings),
        )
        .map_err(|e| rollcall_connectors::ConnectorError::Request(e.to_string()))?;
        Ok(Self {
            store,
            clock,
            settings: Arc::new(settings),
            vault,
            vendor_http,
            guards,
            jobs,
            key_cache: Arc::default(),
            account_cache,
            synced_accounts: Arc::new(accounts::account_cache()),
        })
    }

    /// The vendor machinery, as one value for code outside a request.
    pub fn vendors(&self) -> Vendors {
        Vendors {
            http: self.vendor_http.clone(),
            guards: self.guards.clone(),
            clock: self.clock.clone(),
        }
    }
}

/// Routes that take an API key (and so `Idempotency-Key`).
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(accounts::routes())
        .merge(audit::routes())
        .merge(unified::routes())
        .merge(sync::routes())
        .merge(events::routes())
        .merge(webhooks::routes())
        .merge(grants::routes())
        .merge(reports::routes())
        .merge(plans::routes())
}

/// Routes anyone may call: health, and the link page (its token is its credential).
fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(health::routes())
        .merge(link::page_routes())
}

/// `POST /link-tokens` takes an API key but no `Idempotency-Key`: its answer
/// is a capability that must not be stored in clear for replay, and a
/// second token is harmless (each is single-use).
fn link_token_routes() -> OpenApiRouter<AppState> {
    link::token_routes()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Rollcall",
        description = "One self-hosted User Directory API for Mode and Metabase: linked accounts, \
                       a unified API for users, groups, memberships and roles, and a proxy to each \
                       vendor's own API. Errors are `{\"error\":{\"code\",\"message\",\"request_id\",\"remote\"?}}`; \
                       every response carries `x-request-id`; POST and PATCH take `Idempotency-Key`.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    components(schemas(rollcall_core::error::ErrorEnvelope))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A tenant API key, `rk_<id>_<secret>`"))
                    .build(),
            ),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "api_key",
            Vec::<String>::new(),
        )]);
    }
}

/// The whole API's OpenAPI document, built from the same route definitions
/// the server runs (so it cannot list a route that does not exist).
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    let mut doc = ApiDoc::openapi();
    doc.merge(api_routes().into_openapi());
    doc.merge(public_routes().into_openapi());
    doc.merge(link_token_routes().into_openapi());
    doc.merge(proxy::ProxyDoc::openapi());
    doc
}

pub fn router(state: AppState) -> Router {
    // Idempotency-Key handling wraps exactly the authenticated JSON API (not
    // the proxy, whose requests are the vendor's business).
    let (api, _) = api_routes()
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::middleware,
        ))
        .layer(middleware::from_fn(ratelimit::middleware))
        .split_for_parts();
    let (public, _) = public_routes().split_for_parts();
    let (link_tokens, _) = link_token_routes().split_for_parts();
    let document = Arc::new(openapi().to_pretty_json().unwrap_or_default());
    Router::new()
        .merge(api)
        .merge(public)
        .merge(link_tokens)
        .merge(proxy::routes().layer(middleware::from_fn(ratelimit::middleware)))
        .merge(docs::routes(document))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        // Innermost: a panic in a handler becomes a contract-shaped 500
        // instead of a dropped connection. It sits inside the request-id
        // layer so that the 500 is rendered with the id and logged.
        .layer(CatchPanicLayer::custom(panic_to_error))
        // Outermost: assigns the request id before anything can log or fail,
        // and renders every `ApiError` body with it.
        .layer(middleware::from_fn(request_id::middleware))
        .with_state(state)
}

async fn unknown_route() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        rollcall_core::ErrorCode::InvalidRequest,
        "this route does not accept that method",
    )
    .with_status(axum::http::StatusCode::METHOD_NOT_ALLOWED)
}

fn panic_to_error(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("a handler panicked").into_response()
}

/// A bound, not yet running server. Binding first lets tests ask for port 0
/// and learn the real port before serving.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    jobs: Jobs,
}

impl Application {
    pub async fn bind(addr: SocketAddr, mut state: AppState) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        if state.settings.public_url.is_none() {
            // Links handed out must name the port really bound (port 0 in tests).
            let mut settings = (*state.settings).clone();
            settings.public_url = Some(format!("http://{}", listener.local_addr()?));
            state.settings = Arc::new(settings);
        }
        Ok(Self {
            listener,
            jobs: state.jobs.clone(),
            router: router(state),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves, and runs the background workers, until `shutdown` resolves;
    /// then lets in-flight requests finish. Jobs in flight are left to their
    /// leases: another worker (or the next start) picks them up.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let workers = self.jobs.start();
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        drop(workers);
        served
    }
}
