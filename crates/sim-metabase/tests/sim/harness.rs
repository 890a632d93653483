//! Faults, counters, data files, bad input, determinism and scale.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use rollcall_sim_metabase::{MetabaseSim, MetabaseSimArgs, MetabaseSimConfig, MetabaseSimError};
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn faults_from_the_config() {
    // Through the flags, as `rollcall sim metabase --fault …` passes them.
    let config = MetabaseSimArgs {
        data: Some(world_file()),
        faults: vec![
            "503@next=2@/api/user".into(),
            "500@every=3@/api/api-key".into(),
            "truncate@next=1@/api/permissions".into(),
            "malformed@next=1@/api/health".into(),
            "latency=200@next=1@/api/session/properties".into(),
        ],
        ..MetabaseSimArgs::default()
    }
    .into_config()
    .unwrap();
    let sim = Sim::start(config).await;
    let key = sim.admin_key();
    for _ in 0..2 {
        sim.get("/api/user/current", &key)
            .await
            .assert_text(503, "Service Unavailable");
    }
    assert_eq!(sim.get("/api/user/current", &key).await.status, 200);

    let statuses = {
        let mut out = Vec::new();
        for _ in 0..6 {
            out.push(sim.get("/api/api-key", &key).await.status);
        }
        out
    };
    assert_eq!(statuses, vec![200, 200, 500, 200, 200, 500]);

    let cut = sim.get("/api/permissions/group", &key).await;
    assert_eq!(cut.status, 200);
    assert!(serde_json::from_str::<Value>(&cut.text).is_err());
    assert!(
        serde_json::from_str::<Value>(&sim.get("/api/permissions/group", &key).await.text).is_ok()
    );

    let bad = sim.get("/api/health", &Auth::None).await;
    assert!(serde_json::from_str::<Value>(&bad.text).is_err());

    let started = Instant::now();
    assert_eq!(
        sim.get("/api/session/properties", &Auth::None).await.status,
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(200));

    let counters = sim.counters().await;
    assert_eq!(counters["faults_injected"], json!(7));
    assert_eq!(counters["by_status"]["503"], json!(2));
    assert_eq!(counters["by_status"]["500"], json!(2));
}

#[tokio::test]
async fn faults_through_the_control_endpoint() {
    let sim = Sim::world().await;
    let key = sim.admin_key();
    let r = sim
        .post("/_sim/faults", &Auth::None, json!({"spec": "500@every=2"}))
        .await;
    assert_eq!(r.status, 201);
    let answers: Vec<u16> = {
        let mut out = Vec::new();
        for _ in 0..4 {
            out.push(sim.get("/api/user/current", &key).await.status);
        }
        out
    };
    assert_eq!(answers, vec![200, 500, 200, 500]);
    let r = sim.get("/api/user/current", &key).await;
    assert_eq!(r.status, 200);
    let r = sim.get("/api/user/current", &key).await;
    assert_eq!(
        r.assert_json(500),
        json!({"message": "Internal server error."})
    );
    // Control routes are never faulted.
    assert_eq!(sim.get("/_sim/counters", &Auth::None).await.status, 200);
    assert_eq!(
        sim.get("/_sim/faults", &Auth::None)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(sim.delete("/_sim/faults", &Auth::None).await.status, 204);

    sim.post(
        "/_sim/faults",
        &Auth::None,
        json!({"spec": "truncate@next=1"}),
    )
    .await;
    let r = sim.get("/api/user", &key).await;
    assert_eq!(r.status, 200);
    assert!(
        serde_json::from_str::<Value>(&r.text).is_err(),
        "truncated: {}",
        r.text
    );
    assert!(serde_json::from_str::<Value>(&sim.get("/api/user", &key).await.text).is_ok());

    sim.post(
        "/_sim/faults",
        &Auth::None,
        json!({"spec": "malformed@next=1"}),
    )
    .await;
    let r = sim.get("/api/user", &key).await;
    assert_eq!(r.status, 200);
    assert!(serde_json::from_str::<Value>(&r.text).is_err());

    sim.post(
        "/_sim/faults",
        &Auth::None,
        json!({"spec": "latency=250@next=1"}),
    )
    .await;
    let started = Instant::now();
    assert_eq!(sim.get("/api/user/current", &key).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(250));

    sim.post(
        "/_sim/faults",
        &Auth::None,
        json!({"spec": "401@next=1@/api/permissions"}),
    )
    .await;
    sim.get("/api/permissions/group", &key)
        .await
        .assert_text(401, "Unauthenticated");
    let bad = sim
        .post("/_sim/faults", &Auth::None, json!({"spec": "boom"}))
        .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn counters_count_requests_credentials_and_logins() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    for _ in 0..3 {
        sim.get("/api/user", &admin).await;
    }
    sim.get("/api/user/current", &sim.admin_key()).await;
    sim.post(
        "/api/session",
        &Auth::None,
        json!({"username": "admin@example.com", "password": "bad"}),
    )
    .await;
    sim.get("/api/nope", &Auth::None).await;
    let c = sim.counters().await;
    assert_eq!(c["events"]["login"], json!(2));
    assert_eq!(c["events"]["login_ok"], json!(1));
    assert_eq!(c["by_route"]["GET /api/user"], json!(3));
    assert_eq!(c["by_route"]["POST /api/session"], json!(2));
    assert_eq!(c["by_route"]["GET <unmatched>"], json!(1));
    assert_eq!(
        c["by_credential"]["admin@example.com"],
        json!(4),
        "3 lists + the login"
    );
    assert_eq!(c["by_credential"]["Rollcall admin"], json!(1));
    assert_eq!(c["by_status"]["401"], json!(1));
    assert_eq!(c["total"], json!(7));

    assert_eq!(
        sim.call(Method::POST, "/_sim/counters/reset", &Auth::None, None)
            .await
            .status,
        204
    );
    let c = sim.counters().await;
    assert_eq!(c["total"], json!(0));
    // In-process too.
    assert_eq!(sim.running.control().counters.event("login"), 0);
}

#[tokio::test]
async fn data_files_load_and_refuse_nonsense() {
    // Explicit keys in the file become the fixtures.
    let key = "mb_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let path = temp_file(
        &json!({
            "groups": [{"name": "Ops"}],
            "users": [
                {"email": "Root@Example.com", "password": "r00t-pass", "is_superuser": true},
                {"email": "worker@example.com", "password": "w0rker-pass", "groups": ["Ops"], "locale": "de"}
            ],
            "api_keys": [{"name": "bot", "group": "Ops", "key": key}]
        })
        .to_string(),
    );
    let sim = Sim::start(MetabaseSimConfig {
        data_file: Some(path),
        ..MetabaseSimConfig::default()
    })
    .await;
    assert_eq!(sim.f.admin_email, "root@example.com");
    assert_eq!(sim.f.member_email, "worker@example.com");
    assert_eq!(sim.f.member_api_key, key);
    let me = sim
        .get("/api/user/current", &Auth::Key(key.into()))
        .await
        .json();
    assert_eq!(me["first_name"], json!("bot"));
    let admin = sim.admin().await;
    let list = sim.get("/api/user", &admin).await.json();
    assert_eq!(list["total"], json!(2));
    assert_eq!(list["data"][1]["locale"], json!("de"));
    assert_eq!(list["data"][1]["group_ids"], json!([1, 3]));
    sim.invariants_hold().await;

    let load = |text: &str| {
        let path = temp_file(text);
        let sim = MetabaseSim::new(MetabaseSimConfig {
            data_file: Some(path.clone()),
            ..MetabaseSimConfig::default()
        });
        remove_temp(Some(path));
        sim
    };
    let admin_only =
        r#"{"users":[{"email":"a@example.com","password":"p4ssword","is_superuser":true}]}"#;
    for bad in [
        "not json",
        r#"{"users": [], "extra": 1}"#,
        r#"{"users": [{"email": "a@example.com", "password": "p4ssword"}, {"email":"b@example.com","password":"p4ssword"}]}"#,
        admin_only,
        r#"{"users":[{"email":"a@example.com","password":"p4ssword","is_superuser":true},{"email":"A@example.com","password":"x1"}]}"#,
        r#"{"users":[{"email":"a@example.com","password":"p4ssword","is_superuser":true},{"email":"b@example.com","password":"x1","groups":["Nope"]}]}"#,
        r#"{"users":[{"email":"not-an-email","password":"p4ssword","is_superuser":true}]}"#,
    ] {
        match load(bad) {
            Err(MetabaseSimError::Data { message, .. }) => assert!(!message.is_empty()),
            other => panic!("{bad}: {other:?}"),
        }
    }
    let missing = MetabaseSim::new(MetabaseSimConfig {
        data_file: Some("/nonexistent/rollcall.json".into()),
        ..MetabaseSimConfig::default()
    });
    assert!(matches!(missing, Err(MetabaseSimError::DataFile { .. })));

    // Through the flags too.
    let config = MetabaseSimArgs {
        data: Some(world_file()),
        ..MetabaseSimArgs::default()
    }
    .into_config()
    .unwrap();
    let file = config.data_file.clone();
    assert!(MetabaseSim::new(config).is_ok());
    remove_temp(file);
}

#[tokio::test]
async fn bad_input_is_never_a_server_error() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let bodies = [
        "",
        "{",
        "not json",
        "[1,2]",
        "\"a string\"",
        "42",
        "null",
        "{\"email\": 5, \"first_name\": [], \"user_group_memberships\": \"x\"}",
        "{\"user_group_memberships\": [{\"id\": \"1\"}, 7, null]}",
        "{\"name\": {\"a\": 1}, \"group_id\": -1, \"user_id\": 1.5}",
        "{\"group_id\": 99999999999999999999, \"user_id\": true}",
        "{\"password\": null, \"old_password\": 3}",
        "{\"locale\": 12, \"login_attributes\": {\"@x\": 1}, \"is_superuser\": \"yes\"}",
        "{\"username\": \"\\u0000\", \"password\": \"   \"}",
        "{\"schemas\": 1, \"Operations\": [{\"op\": 1}], \"userName\": null}",
        "{\"is_group_manager\": \"no\"}",
    ];
    let routes: &[(Method, &str)] = &[
        (Method::POST, "/api/session"),
        (Method::POST, "/api/user"),
        (Method::PUT, "/api/user/2"),
        (Method::PUT, "/api/user/2/password"),
        (Method::PUT, "/api/user/1/password"),
        (Method::POST, "/api/permissions/group"),
        (Method::PUT, "/api/permissions/group/3"),
        (Method::POST, "/api/permissions/membership"),
        (Method::PUT, "/api/permissions/membership/3"),
        (Method::POST, "/api/api-key"),
        (Method::PUT, "/api/api-key/2"),
        (Method::POST, "/api/ee/scim/v2/Users"),
        (Method::POST, "/api/ee/scim/v2/Groups"),
    ];
    for (method, path) in routes {
        let auth = if path.contains("/scim/") {
            sim.scim()
        } else {
            admin.clone()
        };
        for body in bodies {
            let r = sim.raw(method.clone(), path, &auth, body).await;
            assert!(
                r.status < 500,
                "{method} {path} {body:?} → {} {}",
                r.status,
                r.text
            );
            assert!(
                [JSON, TEXT, SCIM].contains(&r.ct()),
                "{method} {path} {body:?} → {}",
                r.ct()
            );
        }
    }
    // Odd ids, query strings and paths.
    for path in [
        "/api/user/99999999999999999999",
        "/api/user/-1",
        "/api/user/%ff",
        "/api/user?limit=-5&offset=%zz",
        "/api/user?group_id=0",
        "/api/user?status=&query=%25_%25",
        "/api/permissions/group/0",
        "/api/permissions/group?limit=99999999999999999999999",
        "/api/ee/scim/v2/Users?startIndex=abc",
        "/api/ee/scim/v2/Users/%00",
        "/api/ee/scim/v2/Groups?filter=",
    ] {
        let auth = if path.contains("/scim/") {
            sim.scim()
        } else {
            admin.clone()
        };
        let r = sim.get(path, &auth).await;
        assert!(r.status < 500, "{path} → {} {}", r.status, r.text);
    }
    sim.invariants_hold().await;
}

/// ring-json reads only JSON content types; other bodies arrive as nothing.
#[tokio::test]
async fn bodies_need_a_json_content_type() {
    let sim = Sim::world().await;
    let body = r#"{"username": "admin@example.com", "password": "s3cret1"}"#;
    for (ct, status) in [
        ("text/plain", 400),
        ("application/x-www-form-urlencoded", 400),
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("application/scim+json", 200),
    ] {
        let r = sim
            .http
            .post(format!("{}/api/session", sim.base))
            .header("Content-Type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{ct}");
    }
}

async fn snapshot(sim: &Sim) -> (Value, Value, Value) {
    let key = sim.admin_key();
    let users = sim.get("/api/user?status=all", &key).await.json();
    let groups = sim.get("/api/permissions/group", &key).await.json();
    let scim = sim
        .get("/api/ee/scim/v2/Users?count=1000", &sim.scim())
        .await
        .json();
    (users, groups, scim)
}

#[tokio::test]
async fn same_seed_same_data() {
    let clock = mock_clock();
    let config = |seed: u64| MetabaseSimConfig {
        users: 120,
        seed,
        clock: Arc::new(clock.clone()),
        ..MetabaseSimConfig::default()
    };
    let a = Sim::start(config(11)).await;
    let b = Sim::start(config(11)).await;
    let c = Sim::start(config(12)).await;
    assert_eq!(format!("{:?}", a.f), format!("{:?}", b.f));
    assert_ne!(a.f.admin_api_key, c.f.admin_api_key);
    let (sa, sb, sc) = (snapshot(&a).await, snapshot(&b).await, snapshot(&c).await);
    // SCIM `$ref`s carry each simulator's own address.
    let text = |sim: &Sim, s: &(Value, Value, Value)| format!("{s:?}").replace(&sim.base, "BASE");
    assert!(text(&a, &sa) == text(&b, &sb), "same seed, different data");
    assert_ne!(sa.0, sc.0);
    // The fixture logins work, and every seeded user shares a password.
    a.admin().await;
    a.member().await;
    let someone = sa.0["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["is_active"] == json!(true) && u["id"].as_u64() > Some(2))
        .unwrap();
    a.login(someone["email"].as_str().unwrap(), &a.f.seeded_password)
        .await;
    // The fixtures endpoint tells the same.
    let f = a.get("/_sim/metabase/fixtures", &Auth::None).await.json();
    assert_eq!(f["admin_api_key"], json!(a.f.admin_api_key));
    a.invariants_hold().await;
}

#[tokio::test]
async fn seeded_data_has_the_promised_variety() {
    let sim = Sim::seeded().await;
    let key = sim.admin_key();
    let all = sim.get("/api/user?status=all", &key).await.json();
    let users = all["data"].as_array().unwrap();
    assert_eq!(all["total"], json!(50));
    assert!(
        users
            .iter()
            .filter(|u| u["is_superuser"] == json!(true))
            .count()
            >= 2
    );
    assert!(users.iter().any(|u| u["is_active"] == json!(false)));
    assert!(users.iter().any(|u| u["last_login"].is_null()));
    assert!(users.iter().filter(|u| u["last_login"].is_string()).count() > 10);
    assert!(users.iter().any(|u| u["sso_source"].is_string()));
    assert!(
        users
            .iter()
            .any(|u| u["first_name"].is_null() && u["common_name"] == u["email"])
    );
    let groups = sim.get("/api/permissions/group", &key).await.json();
    let counts: Vec<u64> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["member_count"].as_u64().unwrap())
        .collect();
    assert!(counts.contains(&0));
    assert!(groups.as_array().unwrap().len() >= 5);
    assert_eq!(
        sim.get(
            "/api/user/current",
            &Auth::Key(sim.f.member_api_key.clone())
        )
        .await
        .json()["is_superuser"],
        json!(false)
    );
}

fn sort_key(u: &Value) -> (u8, String, u8, String, u64) {
    let name = |k: &str| match u[k].as_str() {
        Some(s) => (0, s.to_lowercase()),
        None => (1, String::new()),
    };
    let (fa, f) = name("first_name");
    let (la, l) = name("last_name");
    (fa, f, la, l, u["id"].as_u64().unwrap())
}

/// The maintained order against an independent sort, page by page.
#[tokio::test]
async fn list_order_matches_an_independent_sort() {
    let sim = Sim::start(MetabaseSimConfig {
        users: 3_000,
        ..MetabaseSimConfig::default()
    })
    .await;
    let key = sim.admin_key();
    let admin = sim.admin().await;
    // Renames and deactivations move users around the maintained index.
    for (id, first) in [(10, "aaron"), (11, "Zed"), (12, "Émile"), (13, "bob")] {
        let r = sim
            .put(
                &format!("/api/user/{id}"),
                &admin,
                json!({"first_name": first}),
            )
            .await;
        assert!(
            r.status == 200 || r.status == 404 || r.status == 400,
            "{}",
            r.text
        );
    }
    sim.delete("/api/user/14", &admin).await;
    let everything = sim.get("/api/user?status=all", &key).await.json();
    let data = everything["data"].as_array().unwrap();
    let mut expected: Vec<&Value> = data.iter().collect();
    expected.sort_by_key(|u| sort_key(u));
    let listed: Vec<u64> = data.iter().map(|u| u["id"].as_u64().unwrap()).collect();
    let sorted: Vec<u64> = expected.iter().map(|u| u["id"].as_u64().unwrap()).collect();
    assert_eq!(listed, sorted);
    let active: Vec<u64> = expected
        .iter()
        .filter(|u| u["is_active"] == json!(true))
        .map(|u| u["id"].as_u64().unwrap())
        .collect();
    for offset in [0, 1, 999, 2_000, active.len() - 7] {
        let page = sim
            .get(&format!("/api/user?limit=100&offset={offset}"), &key)
            .await
            .json();
        let ids: Vec<u64> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_u64().unwrap())
            .collect();
        let end = (offset + 100).min(active.len());
        assert_eq!(ids, active[offset..end].to_vec(), "offset {offset}");
        assert_eq!(page["total"], json!(active.len()));
    }
    sim.invariants_hold().await;
}

/// A million users: seeded in seconds, and a page near the end answers fast.
#[tokio::test]
async fn a_million_users_page_from_the_end() {
    let started = Instant::now();
    let sim = Sim::start(MetabaseSimConfig {
        users: 1_000_000,
        ..MetabaseSimConfig::default()
    })
    .await;
    let seeded = started.elapsed();
    let key = sim.admin_key();
    let all = sim.get("/api/user?status=all&limit=1", &key).await.json();
    assert_eq!(all["total"], json!(1_000_000));
    let active_total = sim.get("/api/user?limit=1", &key).await.json()["total"]
        .as_u64()
        .unwrap();
    assert!(active_total > 900_000 && active_total < 1_000_000);

    let asked = Instant::now();
    let page = sim
        .get("/api/user?limit=100&offset=999900", &key)
        .await
        .json();
    let took = asked.elapsed();
    assert_eq!(page["limit"], json!(100));
    assert_eq!(page["offset"], json!(999_900));
    assert_eq!(page["total"], json!(active_total));
    // Fewer active users than the offset: an empty page. Then a full page at the
    // end of all users, whose ids chain on from the page before.
    assert_eq!(page["data"].as_array().unwrap().len(), 0);
    let page = sim
        .get("/api/user?status=all&limit=100&offset=999900", &key)
        .await
        .json();
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 100);
    let keys: Vec<_> = data.iter().map(sort_key).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "page in order");
    let before = sim
        .get("/api/user?status=all&limit=1&offset=999899", &key)
        .await
        .json();
    assert!(sort_key(&before["data"][0]) < keys[0]);
    let last = sim
        .get("/api/user?status=all&limit=100&offset=999999", &key)
        .await
        .json();
    assert_eq!(last["data"][0]["id"], data[99]["id"]);
    // Users without names sort last (nulls last), among themselves by id: so
    // the last page is the 100 highest ids of the nameless users, found here
    // through their emails (`user.<n>@example.com`) by the filtered scan.
    let nameless = sim
        .get("/api/user?status=all&query=user.", &key)
        .await
        .json();
    let nameless: Vec<u64> = nameless["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["first_name"].is_null())
        .map(|u| u["id"].as_u64().unwrap())
        .collect();
    assert!(nameless.len() > 100 && nameless.windows(2).all(|w| w[0] < w[1]));
    let page_ids: Vec<u64> = data.iter().map(|u| u["id"].as_u64().unwrap()).collect();
    assert_eq!(page_ids, nameless[nameless.len() - 100..].to_vec());
    // Same for the active list at its own end.
    let tail_offset = active_total - 100;
    let tail = sim
        .get(&format!("/api/user?limit=100&offset={tail_offset}"), &key)
        .await
        .json();
    assert_eq!(tail["data"].as_array().unwrap().len(), 100);
    assert!(
        tail["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["is_active"] == json!(true))
    );
    eprintln!("1M users: seeded in {seeded:?}, deep page in {took:?}");
    assert!(took < Duration::from_secs(2), "deep page took {took:?}");
}
