use rollcall_core::SystemClock;
use rollcall_core::id::TenantName;
use rollcall_server::keys;
use secrecy::{ExposeSecret, SecretString};

use crate::helpers::spawn_app;

#[tokio::test]
async fn issued_keys_verify_and_tampered_ones_do_not() {
    let app = spawn_app().await;
    let acme = TenantName::parse("acme").unwrap();
    let issued = keys::issue(app.store.as_ref(), &SystemClock, &acme, "test")
        .await
        .unwrap();
    let key = issued.key.expose_secret().to_owned();
    assert!(key.starts_with(&format!("rk_{}_", issued.id)), "{key}");

    let verified = keys::verify(app.store.as_ref(), &issued.key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(verified.tenant_id, issued.tenant.id);
    assert_eq!(verified.key_id, issued.id);

    let mut tampered = key.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [
        tampered.as_str(),
        "rk_nope",
        "",
        "Bearer x",
        &key[..key.len() - 1],
    ] {
        let bad = SecretString::from(bad.to_owned());
        assert!(
            keys::verify(app.store.as_ref(), &bad)
                .await
                .unwrap()
                .is_none()
        );
    }

    // A second key for the same tenant reuses the tenant.
    let again = keys::issue(app.store.as_ref(), &SystemClock, &acme, "other")
        .await
        .unwrap();
    assert_eq!(again.tenant.id, issued.tenant.id);
    assert_ne!(again.id, issued.id);
}

#[tokio::test]
async fn only_a_hash_of_the_secret_is_stored() {
    let app = spawn_app().await;
    let acme = TenantName::parse("acme").unwrap();
    let issued = keys::issue(app.store.as_ref(), &SystemClock, &acme, "test")
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    // rk_<id>_<secret>, where the secret itself may contain `_`.
    let secret = key.strip_prefix(&format!("rk_{}_", issued.id)).unwrap();
    assert_eq!(secret.len(), 43, "32 random bytes, base64url");
    // Checkpoint the WAL so the main database file holds everything.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(app.sqlite.pool())
        .await
        .unwrap();
    for file in ["rollcall.db", "rollcall.db-wal"] {
        let bytes = std::fs::read(app.dir.path().join(file)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(secret),
            "{file} holds the key secret in clear"
        );
    }
}

/// Keys are read through a short cache: the secret is still checked on
/// every request, and a key revoked in the store stops working within the
/// cache's 2 seconds.
#[tokio::test]
async fn cached_keys_still_check_the_secret_and_expire() {
    use jiff::SignedDuration;
    use rollcall_core::{Clock as _, MockClock};
    let clock = MockClock::new(SystemClock.now());
    let app = crate::helpers::spawn_app_with(crate::helpers::Options {
        clock: Some(std::sync::Arc::new(clock.clone())),
        ..Default::default()
    })
    .await;
    assert!(app.acme.accounts("").await.is_ok());
    // A wrong secret for a cached key id is refused.
    let (prefix, _) = app.key.rsplit_once('_').unwrap();
    let wrong = rollcall_client::Client::new(&app.base_url)
        .with_api_key(format!("{prefix}_{}", "x".repeat(43)));
    assert_eq!(wrong.accounts("").await.unwrap_err().status(), Some(401));

    sqlx::query("UPDATE api_keys SET revoked_at = 1")
        .execute(app.sqlite.pool())
        .await
        .unwrap();
    // Within the cache's lifetime the revocation is not seen yet...
    assert!(app.acme.accounts("").await.is_ok());
    // ...after it, it is.
    clock.advance(SignedDuration::from_secs(3));
    assert_eq!(app.acme.accounts("").await.unwrap_err().status(), Some(401));
}
