//! The behaviour every [`Store`] implementation must show. Each case takes
//! a freshly migrated, empty store; backends run the whole list through
//! [`store_conformance_suite!`](crate::store_conformance_suite).

use rollcall_core::id::{ApiKeyId, TenantId};

use crate::{ApiKeyRow, Store, StoreError, TenantRow};

fn tenant(name: &str) -> TenantRow {
    TenantRow {
        id: TenantId::generate(),
        name: name.to_owned(),
        created_at: 1_700_000_000_123,
    }
}

pub async fn migrations_are_idempotent(store: &dyn Store) {
    store.migrate().await.expect("second migrate");
    store.ping().await.expect("ping");
}

pub async fn tenants_round_trip(store: &dyn Store) {
    let acme = tenant("acme");
    store.insert_tenant(&acme).await.expect("insert");
    assert_eq!(store.tenant(&acme.id).await.expect("get"), Some(acme.clone()));
    assert_eq!(store.tenant_by_name("acme").await.expect("by name"), Some(acme));
    assert_eq!(store.tenant_by_name("nobody").await.expect("by name"), None);
    assert_eq!(store.tenant(&TenantId::generate()).await.expect("get"), None);
}

pub async fn tenant_names_are_unique(store: &dyn Store) {
    store.insert_tenant(&tenant("acme")).await.expect("insert");
    let err = store.insert_tenant(&tenant("acme")).await.expect_err("duplicate");
    assert!(matches!(err, StoreError::Conflict { what: "tenant", .. }), "{err:?}");
}

pub async fn api_keys_round_trip_and_belong_to_a_tenant(store: &dyn Store) {
    let acme = tenant("acme");
    store.insert_tenant(&acme).await.expect("insert tenant");
    let key = ApiKeyRow {
        id: ApiKeyId::generate(),
        tenant_id: acme.id.clone(),
        label: "ci".into(),
        secret_sha256: [7; 32],
        created_at: 1_700_000_000_456,
        revoked_at: None,
    };
    store.insert_api_key(&key).await.expect("insert key");
    assert_eq!(store.api_key(&key.id).await.expect("get"), Some(key.clone()));
    assert_eq!(store.api_key(&ApiKeyId::generate()).await.expect("get"), None);

    // A key for a tenant that does not exist is refused by the schema.
    let orphan = ApiKeyRow {
        id: ApiKeyId::generate(),
        tenant_id: TenantId::generate(),
        ..key
    };
    assert!(store.insert_api_key(&orphan).await.is_err());
}

/// Instantiates every conformance case as a `#[tokio::test]` against a
/// backend. `$make` is an async expression giving a fresh, migrated store
/// behind something that derefs to it (so it can own its temp files).
#[macro_export]
macro_rules! store_conformance_suite {
    ($make:expr) => {
        $crate::store_conformance_suite!(@cases $make;
            migrations_are_idempotent,
            tenants_round_trip,
            tenant_names_are_unique,
            api_keys_round_trip_and_belong_to_a_tenant,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store = $make.await;
                $crate::conformance::$case(&*store).await;
            }
        )*
    };
}
