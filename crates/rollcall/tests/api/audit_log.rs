//! The audit log: filters, cursor paging, and the CSV export.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test]
async fn every_change_is_listed_filtered_paged_and_exported() {
    let app = spawn_app().await;
    let mode = app
        .acme
        .create_account(&app.mode_link_body())
        .await
        .unwrap();
    let metabase = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    app.acme
        .update_account(&mode.id, &json!({"label":"Renamed"}))
        .await
        .unwrap();
    let created = app
        .call(Method::POST, "groups", &metabase.id, "")
        .json(&json!({"name":"Audited"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let refused = app
        .call(Method::POST, "groups", &metabase.id, "")
        .json(&json!({"name":"audited"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);

    let http = reqwest::Client::new();
    let get = |query: String| {
        let http = http.clone();
        let url = format!("{}/audit-log?{query}", app.base_url);
        let key = app.key.clone();
        async move {
            let response = http.get(url).bearer_auth(key).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let all = get(String::new()).await;
    let actions: Vec<&str> = all["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            "group.created",
            "group.created",
            "integrated_account.updated",
            "integrated_account.created",
            "integrated_account.created"
        ],
        "newest first"
    );
    let first = &all["result"][0];
    assert_eq!(
        first["outcome"], "failure",
        "refused changes are audited too"
    );
    assert!(first["detail"].as_str().unwrap().starts_with("conflict"));
    assert!(first["request_id"].is_string() && first["at"].as_str().unwrap().ends_with('Z'));

    let page = get("limit=2".into()).await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = get(format!(
        "limit=10&next_cursor={}",
        rollcall_client::encode(cursor)
    ))
    .await;
    assert_eq!(
        page["result_count"].as_u64().unwrap() + rest["result_count"].as_u64().unwrap(),
        5
    );

    let about_mode = get(format!("integrated_account_id={}", mode.id)).await;
    assert_eq!(about_mode["result_count"], 2);
    let failures = get("outcome=failure".into()).await;
    assert_eq!(failures["result_count"], 1);
    let updates = get("action=integrated_account.updated".into()).await;
    assert_eq!(updates["result"][0]["before"]["label"], "Acme Mode");
    assert_eq!(updates["result"][0]["after"]["label"], "Renamed");
    let future = get("since=2999-01-01T00:00:00Z".into()).await;
    assert_eq!(future["result_count"], 0);

    let bad = http
        .get(format!("{}/audit-log?since=yesterday", app.base_url))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let theirs = http
        .get(format!("{}/audit-log", app.base_url))
        .bearer_auth(app.globex_key())
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(theirs["result_count"], 0, "another tenant's log is its own");

    let csv = http
        .get(format!("{}/audit-log?format=csv", app.base_url))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with("\"id\",\"at\",\"actor\",\"action\""));
    assert_eq!(lines.len(), 6, "a header and every row");
    assert!(
        !text.contains(&app.metabase.fixtures().admin_password),
        "no secret in the export"
    );
}
