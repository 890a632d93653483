//! Master-key rotation while the server runs: afterwards the old key is not
//! needed and every account still works.

use reqwest::Method;
use rollcall_server::rotation::rotate_master;
use rollcall_server::{AppState, Settings};
use rollcall_vault::{KeySource, Keyring, Vault};
use secrecy::ExposeSecret;

use crate::helpers::{spawn_app, vault_on};

#[tokio::test]
async fn rotating_a_key_file_needs_no_restart_and_retires_the_old_key() {
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
    let hook = app
        .acme
        .create_webhook("https://hooks.example.com/x", &["*"])
        .await
        .unwrap();
    let old_ids = vault_on(&app.key_file).keyring().ids();
    assert_eq!(old_ids.len(), 1);

    // The CLI runs in another process, with its own view of the key file.
    let cli_vault = vault_on(&app.key_file);
    let report = rotate_master(app.store.as_ref(), &cli_vault).await.unwrap();
    assert_eq!(report.resealed, 3, "two credentials and a webhook secret");
    assert_eq!(report.retired, old_ids);
    assert!(report.still_in_use.is_empty());
    let file_ids = vault_on(&app.key_file).keyring().ids();
    assert_eq!(
        file_ids,
        vec![report.active.clone()],
        "the old key is gone from the file"
    );

    // The running server (which loaded the old key) keeps working.
    let ws = app.mode.fixtures().workspace.clone();
    let ok = app
        .proxy(Method::GET, &mode.id, &format!("/api/{ws}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        app.acme
            .account(&metabase.id)
            .await
            .unwrap()
            .credential_type,
        "metabase_password"
    );

    // A fresh server with only the new key can open everything.
    let fresh = AppState::new(
        app.store.clone(),
        app.clock.clone(),
        Settings::default(),
        Vault::load(KeySource::File(app.key_file.clone())).unwrap(),
    )
    .unwrap();
    let tenant = app.store.tenant_by_name("acme").await.unwrap().unwrap();
    for id in [&mode.id, &metabase.id] {
        let (_, linked) = rollcall_server::accounts::load_linked(&fresh, &tenant.id, id)
            .await
            .unwrap();
        linked.verify().await.unwrap();
    }
    // The webhook's secret is the same one, now sealed under the new key.
    let stored = app
        .store
        .webhook(&tenant.id, &hook.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.secret_key_id, report.active.as_str());
    let opened = fresh
        .vault
        .open(
            &stored.secret_key_id,
            &stored.secret_sealed,
            &rollcall_jobs::webhooks::secret_aad(&tenant.id, &hook.id),
        )
        .unwrap();
    assert_eq!(opened.as_slice(), hook.secret.unwrap().as_bytes());
}

#[tokio::test]
async fn an_inline_key_rotates_once_the_new_key_is_first() {
    let app = spawn_app().await;
    app.acme
        .create_account(&app.mode_link_body())
        .await
        .unwrap();
    let old = Keyring::parse(&std::fs::read_to_string(&app.key_file).unwrap().into()).unwrap();
    let both = old.with_new_active_key().unwrap();
    let vault = Vault::load(KeySource::Inline(both.to_text())).unwrap();
    let report = rotate_master(app.store.as_ref(), &vault).await.unwrap();
    assert_eq!(report.resealed, 1);
    assert_eq!(
        report.retired,
        old.ids(),
        "the operator may now drop the old key"
    );

    // Only the new key is needed from now on.
    let new_only = both.retaining(&[]);
    let tenant = app.store.tenant_by_name("acme").await.unwrap().unwrap();
    let state = AppState::new(
        app.store.clone(),
        app.clock.clone(),
        Settings::default(),
        Vault::load(KeySource::Inline(new_only.to_text())).unwrap(),
    )
    .unwrap();
    let accounts = app
        .store
        .list_accounts(&tenant.id, &Default::default(), None, 10)
        .await
        .unwrap();
    let (_, linked) =
        rollcall_server::accounts::load_linked(&state, &tenant.id, accounts[0].id.as_str())
            .await
            .unwrap();
    linked.verify().await.unwrap();
    assert!(!new_only.to_text().expose_secret().is_empty());
}
