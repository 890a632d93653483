//! The link page: an end customer links their own account with a
//! single-use, expiring URL; the caller never handles their secrets.

use rollcall_store::LinkTokenRow;
use sha2::Digest;

use crate::helpers::spawn_app;

#[tokio::test]
async fn an_end_customer_links_through_the_page_once() {
    let app = spawn_app().await;
    let token = app
        .acme
        .create_link_token(Some("customer-42"))
        .await
        .unwrap();
    assert!(token.url.starts_with(&app.base_url), "{}", token.url);
    let http = reqwest::Client::new();

    let page = http.get(&token.url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains("Connect Mode") && html.contains("Connect Metabase"));
    assert!(
        !html.contains("<script") && !html.contains("src=") && !html.contains("<link"),
        "no scripts or external assets"
    );

    let m = app.mode.fixtures().clone();
    let mut form = vec![
        ("provider", "mode".to_owned()),
        ("mode_base_url", app.mode.base_url()),
        ("mode_workspace", m.workspace.clone()),
        ("mode_token", m.admin.token.clone()),
        ("mode_secret", "not-the-secret".to_owned()),
    ];
    let wrong = http.post(&token.url).form(&form).send().await.unwrap();
    assert_eq!(wrong.status(), 422);
    let html = wrong.text().await.unwrap();
    assert!(
        html.contains("Unauthorized"),
        "the vendor's reason is shown"
    );
    assert!(
        html.contains(&m.admin.token) && html.contains(&m.workspace),
        "the form stays filled"
    );
    assert!(!html.contains("not-the-secret"), "except the secret");

    form[4].1 = m.admin.secret.clone();
    let linked = http.post(&token.url).form(&form).send().await.unwrap();
    assert_eq!(linked.status(), 200);
    assert!(linked.text().await.unwrap().contains("Linked"));
    let accounts = app.acme.accounts("tenant_ref=customer-42").await.unwrap();
    assert_eq!(accounts.result_count, 1);
    assert_eq!(accounts.result[0].provider, "mode");

    assert_eq!(
        http.get(&token.url).send().await.unwrap().status(),
        410,
        "single use"
    );
    assert_eq!(
        http.post(&token.url)
            .form(&form)
            .send()
            .await
            .unwrap()
            .status(),
        410
    );
    assert_eq!(app.acme.accounts("").await.unwrap().result_count, 1);
}

#[tokio::test]
async fn expired_or_unknown_links_are_refused_and_tokens_need_a_key() {
    let app = spawn_app().await;
    let tenant = app.store.tenant_by_name("acme").await.unwrap().unwrap();
    let now = app.clock.now_millis();
    app.store
        .insert_link_token(&LinkTokenRow {
            token_sha256: sha2::Sha256::digest(b"expired-token").into(),
            tenant_id: tenant.id,
            tenant_ref: None,
            created_by: "key:test".into(),
            created_at: now - 120_000,
            expires_at: now - 60_000,
            used_at: None,
            account_id: None,
        })
        .await
        .unwrap();
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{}/link/expired-token", app.base_url))
            .send()
            .await
            .unwrap()
            .status(),
        410
    );
    assert_eq!(
        http.get(format!("{}/link/never-issued", app.base_url))
            .send()
            .await
            .unwrap()
            .status(),
        410
    );
    // Link tokens are never stored for replay: the same Idempotency-Key
    // still gets a new, single-use token.
    let mint = || {
        http.post(format!("{}/link-tokens", app.base_url))
            .bearer_auth(&app.key)
            .header("idempotency-key", "same-key")
            .json(&serde_json::json!({}))
            .send()
    };
    let first: serde_json::Value = mint().await.unwrap().json().await.unwrap();
    let second: serde_json::Value = mint().await.unwrap().json().await.unwrap();
    assert_ne!(first["token"], second["token"]);
    let anonymous = app.client.create_link_token(None).await.unwrap_err();
    assert_eq!(anonymous.status(), Some(401));
}
