use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_and_readyz_answer_with_a_request_id() {
    let app = spawn_app().await;
    assert_eq!(app.client.healthz().await.unwrap().status, "ok");
    assert_eq!(app.client.readyz().await.unwrap().status, "ready");

    let response = reqwest::get(format!("{}/healthz", app.base_url))
        .await
        .unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 32, "generated ids are uuid-simple: {id}");
}

#[tokio::test]
async fn a_callers_request_id_is_echoed_and_bad_ones_replaced() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    let echoed = http
        .get(format!("{}/healthz", app.base_url))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-abc-123");

    let replaced = http
        .get(format!("{}/healthz", app.base_url))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(replaced.headers()["x-request-id"], "bad id with spaces");
}

#[tokio::test]
async fn unknown_routes_get_the_contract_error_shape() {
    let app = spawn_app().await;
    let response = reqwest::Client::new()
        .get(format!("{}/no/such/thing", app.base_url))
        .header("x-request-id", "req-404")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["error"]["request_id"], "req-404");
    assert!(body["error"]["message"].is_string());
    assert!(body["error"].get("remote").is_none(), "no vendor answered");
}

#[tokio::test]
async fn a_wrong_method_is_a_405_in_the_contract_shape() {
    let app = spawn_app().await;
    let response = reqwest::Client::new()
        .delete(format!("{}/healthz", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let header_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    assert_eq!(body["error"]["request_id"], header_id.as_str());
}

#[tokio::test]
async fn readyz_is_503_when_the_store_is_unreachable() {
    let app = spawn_app().await;
    // A closed pool is what a lost database looks like to the server.
    app.sqlite.pool().close().await;
    let response = reqwest::get(format!("{}/readyz", app.base_url))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["store"], "unreachable");
    // Liveness does not depend on the store.
    assert_eq!(app.client.healthz().await.unwrap().status, "ok");
}
