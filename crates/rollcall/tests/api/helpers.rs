use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use rollcall_client::Client;
use rollcall_core::id::TenantName;
use rollcall_core::{SharedClock, SystemClock};
use rollcall_server::keys;
use rollcall_server::{AppState, Application, Settings};
use rollcall_sim_metabase::{MetabaseSim, MetabaseSimConfig, RunningMetabaseSim};
use rollcall_sim_mode::{ModeSim, ModeSimConfig, RunningModeSim};
use rollcall_store::Store;
use rollcall_vault::{KeySource, Vault};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

/// Every log line of every test in this binary, so a test can prove that no
/// secret was ever logged.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=info,reqwest=info,sqlx=info,h2=info")
            .with_ansi(false)
            .with_writer(move || SharedWriter(sink.clone()))
            .try_init();
        buffer
    })
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct TestApp {
    pub base_url: String,
    /// Unauthenticated client.
    pub client: Client,
    /// Tenant `acme`'s key and client.
    pub key: String,
    pub acme: Client,
    /// Tenant `globex`'s client, for isolation checks.
    pub globex: Client,
    globex_key: String,
    pub store: Arc<dyn Store>,
    /// The same store, as its concrete type, for tests that need the pool.
    pub sqlite: rollcall_store::SqliteStore,
    pub state: AppState,
    pub clock: SharedClock,
    pub mode: RunningModeSim,
    pub metabase: RunningMetabaseSim,
    pub dir: tempfile::TempDir,
    pub key_file: std::path::PathBuf,
    /// Shared clients: building one loads the platform's TLS roots, which
    /// costs far more than a request.
    http: reqwest::Client,
    http_no_redirects: reqwest::Client,
    /// The Mode simulator enforces no limit, so linked accounts say so too.
    mode_unlimited: bool,
    pub _shutdown: tokio::sync::oneshot::Sender<()>,
}

#[derive(Default)]
pub struct Options {
    pub clock: Option<SharedClock>,
    pub metabase_session_max_age: Option<std::time::Duration>,
    pub settings: Option<Settings>,
    /// Users in each simulator (default 30).
    pub mode_users: Option<usize>,
    pub metabase_users: Option<usize>,
    /// Make the Mode simulator paginate its lists at this size.
    pub mode_page_size: Option<usize>,
    /// Switch the Mode simulator's 40-per-10s limit off.
    pub mode_unlimited: bool,
    /// Run the sync scheduler (off by default so that tests counting
    /// vendor calls see only their own).
    pub scheduler: bool,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// The real application on port 0 with a fresh SQLite store and master key
/// file in a temp dir, and both simulators in-process.
pub async fn spawn_app_with(options: Options) -> TestApp {
    log_buffer();
    let clock: SharedClock = options.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let loopback = "127.0.0.1:0".parse().unwrap();
    let mut mode_config = ModeSimConfig {
        users: options.mode_users.unwrap_or(30),
        page_size: options.mode_page_size,
        clock: clock.clone(),
        ..ModeSimConfig::default()
    };
    if options.mode_unlimited {
        mode_config.rate_limit = None;
    }
    let mode = ModeSim::new(mode_config)
        .unwrap()
        .start(loopback)
        .await
        .unwrap();
    let mut metabase_config = MetabaseSimConfig {
        users: options.metabase_users.unwrap_or(30),
        clock: clock.clone(),
        ..MetabaseSimConfig::default()
    };
    if let Some(age) = options.metabase_session_max_age {
        metabase_config.session_max_age = age;
    }
    let metabase = MetabaseSim::new(metabase_config)
        .unwrap()
        .start(loopback)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rollcall.db").display());
    let sqlite = rollcall_store::SqliteStore::open(&url).await.unwrap();
    sqlite.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(sqlite.clone());
    let key_file = dir.path().join("rollcall.master.key");
    let (vault, _) = Vault::load_or_create_file(&key_file).unwrap();
    let settings = Settings {
        database_url: url,
        sync_scheduler: options.scheduler,
        ..options.settings.unwrap_or_default()
    };
    let state = AppState::new(store.clone(), clock.clone(), settings, vault).unwrap();
    let app = Application::bind(loopback, state.clone()).await.unwrap();
    let base_url = format!("http://{}", app.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));

    let issue = |tenant: &'static str| {
        let store = store.clone();
        let clock = clock.clone();
        async move {
            let issued = keys::issue(
                store.as_ref(),
                clock.as_ref(),
                &TenantName::parse(tenant).unwrap(),
                "test",
            )
            .await
            .unwrap();
            issued.key.expose_secret().to_owned()
        }
    };
    let key = issue("acme").await;
    let globex_key = issue("globex").await;
    TestApp {
        client: Client::new(&base_url),
        acme: Client::new(&base_url).with_api_key(&key),
        globex: Client::new(&base_url).with_api_key(&globex_key),
        globex_key,
        key,
        base_url,
        store,
        sqlite,
        state,
        clock,
        mode,
        metabase,
        dir,
        key_file,
        http: reqwest::Client::new(),
        mode_unlimited: options.mode_unlimited,
        http_no_redirects: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _shutdown: tx,
    }
}

impl TestApp {
    pub fn mode_link_body(&self) -> Value {
        let f = self.mode.fixtures();
        let mut config = json!({ "base_url": self.mode.base_url(), "workspace": f.workspace });
        if self.mode_unlimited {
            config["rate_limit"] = json!({ "requests": 1_000_000, "per_seconds": 1 });
        }
        json!({
            "provider": "mode",
            "label": "Acme Mode",
            "config": config,
            "credentials": { "token": f.admin.token, "secret": f.admin.secret },
        })
    }

    pub fn metabase_password_body(&self) -> Value {
        let f = self.metabase.fixtures();
        json!({
            "provider": "metabase",
            "config": { "base_url": self.metabase.base_url() },
            "credentials": { "username": f.admin_email, "password": f.admin_password },
        })
    }

    pub fn metabase_api_key_body(&self, api_key: &str) -> Value {
        json!({
            "provider": "metabase",
            "config": { "base_url": self.metabase.base_url() },
            "credentials": { "api_key": api_key },
        })
    }

    pub fn globex_key(&self) -> &str {
        &self.globex_key
    }

    /// A raw request through the proxy with tenant acme's key. The client
    /// never follows redirects itself, so tests see what the proxy answered.
    pub fn proxy(
        &self,
        method: reqwest::Method,
        account: &str,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.http_no_redirects
            .request(method, format!("{}/proxy/{account}{path}", self.base_url))
            .bearer_auth(&self.key)
    }

    /// A unified-API URL for `resource` on `account`, with extra query.
    pub fn unified(&self, resource: &str, account: &str, query: &str) -> String {
        let mut url = format!(
            "{}/unified/user-directory/{resource}?integrated_account_id={account}",
            self.base_url
        );
        if !query.is_empty() {
            url.push('&');
            url.push_str(query);
        }
        url
    }

    /// A raw unified-API request with tenant acme's key.
    pub fn call(
        &self,
        method: reqwest::Method,
        resource: &str,
        account: &str,
        query: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.unified(resource, account, query))
            .bearer_auth(&self.key)
    }

    /// A vendor-side event count (`login`, `login_ok`, ...) from the Metabase simulator.
    pub fn metabase_event(&self, event: &str) -> u64 {
        self.metabase.control().counters.event(event)
    }

    /// Every request the Metabase simulator has answered.
    pub fn metabase_requests(&self) -> u64 {
        self.metabase.control().counters.snapshot().total
    }

    /// `GET path` (like `/audit-log?limit=5`) with tenant acme's key, as JSON.
    pub async fn http_get_json(&self, path: &str) -> Value {
        let answer = self
            .http
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        answer.json().await.unwrap()
    }

    /// Mode with its Discovery API token, so activity is known.
    pub fn mode_link_body_with_discovery(&self) -> Value {
        let mut body = self.mode_link_body();
        body["credentials"]["discovery_token"] = json!(self.mode.fixtures().discovery_token);
        body
    }
}

/// A `rollcall` process the test started; killed (SIGKILL) when dropped.
pub struct Node {
    pub child: std::process::Child,
}

impl Node {
    /// Starts `rollcall serve` (`command` holds its arguments and
    /// environment) and waits until it answers `/readyz` on `port`.
    pub async fn start(mut command: std::process::Command, port: u16) -> Self {
        let child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let node = Self { child };
        let client = rollcall_client::Client::new(&format!("http://127.0.0.1:{port}"));
        for _ in 0..200 {
            if client.readyz().await.is_ok() {
                return node;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("rollcall serve did not come up on port {port}");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `rollcall` executable built for this test run.
pub fn rollcall_bin() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"));
    // Tests must not see the developer's own configuration.
    for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("ROLLCALL_")) {
        cmd.env_remove(name);
    }
    cmd
}

/// A vault on an existing key file, as a second process (the CLI) sees it.
pub fn vault_on(path: &std::path::Path) -> Vault {
    Vault::load(KeySource::File(path.to_path_buf())).unwrap()
}

/// Adds a fault rule to a simulator (`ACTION[@TRIGGER][@PATH_PREFIX]`).
pub async fn fault(base_url: &str, spec: &str) {
    let response = reqwest::Client::new()
        .post(format!("{base_url}/_sim/faults"))
        .json(&json!({ "spec": spec }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{spec}");
}

/// Removes every fault rule of a simulator.
pub async fn clear_faults(base_url: &str) {
    let response = reqwest::Client::new()
        .delete(format!("{base_url}/_sim/faults"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

impl TestApp {
    /// A unified-API GET with tenant acme's key, as JSON (any status).
    pub async fn get_json(&self, resource: &str, account: &str, query: &str) -> Value {
        self.call(reqwest::Method::GET, resource, account, query)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}
