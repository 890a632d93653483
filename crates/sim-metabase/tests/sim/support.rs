//! Starting simulators in-process and talking real HTTP to them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::Method;
use rollcall_core::MockClock;
use rollcall_sim_metabase::{MetabaseFixtures, MetabaseSim, MetabaseSimConfig, RunningMetabaseSim};
use serde_json::{Value, json};

pub const JSON: &str = "application/json; charset=utf-8";
pub const TEXT: &str = "text/plain";
pub const SCIM: &str = "application/scim+json";

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub fn mock_clock() -> MockClock {
    MockClock::new("2026-03-01T12:00:00Z".parse().unwrap())
}

pub struct Sim {
    pub running: RunningMetabaseSim,
    pub base: String,
    pub f: MetabaseFixtures,
    pub http: reqwest::Client,
}

#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Session(String),
    Key(String),
    Bearer(String),
    Headers(Vec<(String, String)>),
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} {}", self.status, self.text))
    }

    pub fn ct(&self) -> &str {
        self.content_type.as_deref().unwrap_or("")
    }

    /// Status, content type and (for text) body in one go.
    pub fn assert_text(&self, status: u16, body: &str) {
        assert_eq!(
            (self.status, self.ct(), self.text.as_str()),
            (status, TEXT, body),
            "unexpected answer"
        );
    }

    pub fn assert_json(&self, status: u16) -> Value {
        assert_eq!(
            (self.status, self.ct()),
            (status, JSON),
            "unexpected answer: {}",
            self.text
        );
        self.json()
    }

    pub fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

impl Sim {
    pub async fn start(config: MetabaseSimConfig) -> Sim {
        let file = config.data_file.clone();
        let sim = MetabaseSim::new(config).expect("sim builds");
        remove_temp(file);
        let running = sim.start(loopback()).await.expect("sim starts");
        let base = running.base_url();
        let f = running.fixtures().clone();
        Sim {
            running,
            base,
            f,
            http: reqwest::Client::new(),
        }
    }

    /// 50 seeded users, system clock.
    pub async fn seeded() -> Sim {
        Sim::start(MetabaseSimConfig::default()).await
    }

    /// The small, known world the checklist tests use (see [`world_file`]).
    pub async fn world() -> Sim {
        Sim::world_with(|_| {}).await
    }

    pub async fn world_with(tweak: impl FnOnce(&mut MetabaseSimConfig)) -> Sim {
        let mut config = MetabaseSimConfig {
            data_file: Some(world_file()),
            ..MetabaseSimConfig::default()
        };
        tweak(&mut config);
        Sim::start(config).await
    }

    pub async fn call(&self, method: Method, path: &str, auth: &Auth, body: Option<Value>) -> Resp {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        req = match auth {
            Auth::None => req,
            Auth::Session(t) => req.header("X-Metabase-Session", t),
            Auth::Key(k) => req.header("X-API-KEY", k),
            Auth::Bearer(k) => req.header("Authorization", format!("Bearer {k}")),
            Auth::Headers(hs) => hs.iter().fold(req, |r, (k, v)| r.header(k, v)),
        };
        if let Some(body) = body {
            req = req.json(&body);
        }
        Resp::from(req.send().await.expect("request")).await
    }

    /// A raw body with a JSON content type.
    pub async fn raw(&self, method: Method, path: &str, auth: &Auth, body: &str) -> Resp {
        let req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        let req = match auth {
            Auth::Session(t) => req.header("X-Metabase-Session", t),
            Auth::Key(k) => req.header("X-API-KEY", k),
            Auth::Bearer(k) => req.header("Authorization", format!("Bearer {k}")),
            _ => req,
        };
        Resp::from(req.body(body.to_owned()).send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str, auth: &Auth) -> Resp {
        self.call(Method::GET, path, auth, None).await
    }
    pub async fn post(&self, path: &str, auth: &Auth, body: Value) -> Resp {
        self.call(Method::POST, path, auth, Some(body)).await
    }
    pub async fn put(&self, path: &str, auth: &Auth, body: Value) -> Resp {
        self.call(Method::PUT, path, auth, Some(body)).await
    }
    pub async fn delete(&self, path: &str, auth: &Auth) -> Resp {
        self.call(Method::DELETE, path, auth, None).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Auth {
        let r = self
            .post(
                "/api/session",
                &Auth::None,
                json!({ "username": email, "password": password }),
            )
            .await;
        assert_eq!(r.status, 200, "login {email}: {}", r.text);
        Auth::Session(r.json()["id"].as_str().unwrap().to_owned())
    }

    pub async fn admin(&self) -> Auth {
        self.login(&self.f.admin_email, &self.f.admin_password)
            .await
    }

    pub async fn member(&self) -> Auth {
        self.login(&self.f.member_email, &self.f.member_password)
            .await
    }

    pub fn admin_key(&self) -> Auth {
        Auth::Key(self.f.admin_api_key.clone())
    }

    pub fn scim(&self) -> Auth {
        Auth::Bearer(self.f.scim_key.clone())
    }

    pub async fn invariants_hold(&self) {
        let r = self.get("/_sim/metabase/invariants", &Auth::None).await;
        let v = r.json();
        assert_eq!(
            v["ok"],
            json!(true),
            "state rules broken: {}",
            v["violations"]
        );
    }

    pub async fn counters(&self) -> Value {
        self.get("/_sim/counters", &Auth::None).await.json()
    }
}

impl Resp {
    async fn from(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let content_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let text = r.text().await.unwrap_or_default();
        Resp {
            status,
            content_type,
            headers,
            text,
        }
    }
}

/// Deletes a file made by [`temp_file`] once it has been loaded.
pub fn remove_temp(path: Option<PathBuf>) {
    if let Some(path) = path
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("rollcall-sim-metabase-"))
    {
        let _ = std::fs::remove_file(path);
    }
}

static FILES: AtomicUsize = AtomicUsize::new(0);

pub fn temp_file(contents: &str) -> PathBuf {
    let n = FILES.fetch_add(1, Ordering::SeqCst);
    let path = std::env::temp_dir().join(format!(
        "rollcall-sim-metabase-{}-{n}.json",
        std::process::id()
    ));
    std::fs::write(&path, contents).unwrap();
    path
}

/// The checklist's world. Ids: 1 Ada Admin (admin, `s3cret1`); 2 Uma User
/// (regular, in Marketing, `old-pass1`: the spec's U5); 3 Vic Viewer
/// (regular); 4 Gone Away (deactivated, `right1`); 5 Sam Sso (Google SSO).
/// Groups: 3 Marketing, 4 Sales. Then the fixture keys' users: 6 "Rollcall
/// admin" (Administrators), 7 "Rollcall member" (Marketing).
pub fn world_file() -> PathBuf {
    temp_file(
        &json!({
            "groups": [{"name": "Marketing"}, {"name": "Sales"}],
            "users": [
                {"email": "admin@example.com", "first_name": "Ada", "last_name": "Admin",
                 "password": "s3cret1", "is_superuser": true, "is_qbnewb": false,
                 "date_joined": "2024-05-01T10:00:00.123Z", "last_login": "2024-05-02T08:00:00.456Z"},
                {"email": "uma@example.com", "first_name": "Uma", "last_name": "User",
                 "password": "old-pass1", "groups": ["Marketing"]},
                {"email": "vic@example.com", "first_name": "Vic", "last_name": "Viewer",
                 "password": "vic-pass1"},
                {"email": "gone@example.com", "first_name": "Gone", "last_name": "Away",
                 "password": "right1", "is_active": false},
                {"email": "sso@example.com", "first_name": "Sam", "last_name": "Sso",
                 "password": "sso-pass1", "sso_source": "google"}
            ]
        })
        .to_string(),
    )
}

pub const UMA: u64 = 2;
pub const VIC: u64 = 3;
pub const GONE: u64 = 4;
pub const SSO: u64 = 5;
pub const MARKETING: u64 = 3;
pub const SALES: u64 = 4;

pub fn with_mock_clock(clock: &MockClock) -> impl FnOnce(&mut MetabaseSimConfig) {
    let clock = clock.clone();
    move |c: &mut MetabaseSimConfig| c.clock = Arc::new(clock)
}

pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// `^Too many attempts! You must wait \d+ seconds before trying again\.$`
pub fn is_wait_message(s: &str) -> bool {
    s.strip_prefix("Too many attempts! You must wait ")
        .and_then(|rest| rest.strip_suffix(" seconds before trying again."))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}
