//! The OpenAPI document: built from the routes themselves, served, rendered
//! offline at /docs, committed, and checked for drift.

use serde_json::Value;

use crate::helpers::spawn_app;

fn committed_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[test]
fn the_committed_document_is_current() {
    let generated = rollcall_server::openapi().to_pretty_json().unwrap();
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "docs/openapi.json is stale: run `cargo run -q -- export-openapi > docs/openapi.json`"
    );
}

#[tokio::test]
async fn every_documented_route_exists_and_the_contract_routes_are_documented() {
    let app = spawn_app().await;
    let doc: Value = reqwest::get(format!("{}/openapi.json", app.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for expected in [
        "/integrated-accounts",
        "/integrated-accounts/{id}",
        "/link-tokens",
        "/unified/user-directory/users",
        "/unified/user-directory/users/{id}",
        "/unified/user-directory/groups",
        "/unified/user-directory/groups/{id}",
        "/unified/user-directory/group-memberships",
        "/unified/user-directory/group-memberships/{id}",
        "/unified/user-directory/roles",
        "/unified/user-directory/roles/{id}",
        "/unified/user-directory/me",
        "/proxy/{account}/{path}",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains_key(expected), "{expected} is not documented");
    }
    let http = reqwest::Client::new();
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", "x")
            .replace("{account}", "acct_0000000000000000000000000000000f")
            .replace("{path}", "api/user")
            .replace("{token}", "t");
        for method in item.as_object().unwrap().keys() {
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            let response = http
                .request(method.clone(), format!("{}{concrete}", app.base_url))
                .bearer_auth(&app.key)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path} is documented but not routed");
            assert!(
                !body.contains("no such route"),
                "{method} {path} is documented but not routed"
            );
        }
    }
}

#[tokio::test]
async fn the_reference_page_is_self_contained() {
    let app = spawn_app().await;
    let page = reqwest::get(format!("{}/docs", app.base_url))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("/openapi.json"));
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http") && !html.contains("<link"),
        "no external assets"
    );
}
