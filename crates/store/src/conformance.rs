//! The behaviour every [`Store`] implementation must show. Each case takes
//! a freshly migrated, empty store; backends run the whole list through
//! [`store_conformance_suite!`](crate::store_conformance_suite).

use rollcall_core::Provider;
use rollcall_core::id::{AccountId, ApiKeyId, TenantId};

use crate::{
    AccountFilter, AccountRow, AccountStatus, ApiKeyRow, AuditFilter, AuditOutcome, AuditRow,
    IdempotencyClaim, LinkTokenRow, Store, StoreError, TenantRow,
};

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
    assert_eq!(
        store.tenant(&acme.id).await.expect("get"),
        Some(acme.clone())
    );
    assert_eq!(
        store.tenant_by_name("acme").await.expect("by name"),
        Some(acme)
    );
    assert_eq!(store.tenant_by_name("nobody").await.expect("by name"), None);
    assert_eq!(
        store.tenant(&TenantId::generate()).await.expect("get"),
        None
    );
}

pub async fn tenant_names_are_unique(store: &dyn Store) {
    store.insert_tenant(&tenant("acme")).await.expect("insert");
    let err = store
        .insert_tenant(&tenant("acme"))
        .await
        .expect_err("duplicate");
    assert!(
        matches!(err, StoreError::Conflict { what: "tenant", .. }),
        "{err:?}"
    );
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
    assert_eq!(
        store.api_key(&key.id).await.expect("get"),
        Some(key.clone())
    );
    assert_eq!(
        store.api_key(&ApiKeyId::generate()).await.expect("get"),
        None
    );

    // A key for a tenant that does not exist is refused by the schema.
    let orphan = ApiKeyRow {
        id: ApiKeyId::generate(),
        tenant_id: TenantId::generate(),
        ..key
    };
    assert!(store.insert_api_key(&orphan).await.is_err());
}

fn account(tenant: &TenantId, provider: Provider, tenant_ref: Option<&str>) -> AccountRow {
    AccountRow {
        id: AccountId::generate(),
        tenant_id: tenant.clone(),
        provider,
        label: "label".into(),
        tenant_ref: tenant_ref.map(str::to_owned),
        config_json: r#"{"base_url":"https://x"}"#.into(),
        credentials_key_id: "k1".into(),
        credentials_sealed: vec![1, 2, 3],
        status: AccountStatus::Active,
        status_detail: None,
        created_at: 10,
        updated_at: 10,
    }
}

async fn two_tenants(store: &dyn Store) -> (TenantId, TenantId) {
    let a = tenant("a");
    let b = tenant("b");
    store.insert_tenant(&a).await.expect("tenant a");
    store.insert_tenant(&b).await.expect("tenant b");
    (a.id, b.id)
}

pub async fn accounts_are_visible_only_to_their_tenant(store: &dyn Store) {
    let (a, b) = two_tenants(store).await;
    let mine = account(&a, Provider::Mode, None);
    store.insert_account(&mine).await.expect("insert");
    assert_eq!(
        store.account(&a, &mine.id).await.expect("get"),
        Some(mine.clone())
    );
    assert_eq!(store.account(&b, &mine.id).await.expect("get"), None);
    assert!(
        store
            .list_accounts(&b, &AccountFilter::default(), None, 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(!store.delete_account(&b, &mine.id).await.expect("delete"));
    let mut theirs = mine.clone();
    theirs.tenant_id = b.clone();
    theirs.label = "hijacked".into();
    assert!(
        !store
            .update_account(&theirs, theirs.updated_at)
            .await
            .expect("update")
    );
    assert_eq!(
        store
            .account(&a, &mine.id)
            .await
            .expect("get")
            .expect("still there")
            .label,
        "label"
    );
    assert!(store.delete_account(&a, &mine.id).await.expect("delete"));
    assert_eq!(store.account(&a, &mine.id).await.expect("get"), None);
}

pub async fn accounts_list_in_pages_with_filters(store: &dyn Store) {
    let (a, _) = two_tenants(store).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let provider = if i % 2 == 0 {
            Provider::Mode
        } else {
            Provider::Metabase
        };
        let row = account(&a, provider, Some(if i < 3 { "cust-1" } else { "cust-2" }));
        store.insert_account(&row).await.expect("insert");
        ids.push(row.id);
    }
    let all = AccountFilter::default();
    let mut seen = Vec::new();
    let mut after: Option<AccountId> = None;
    loop {
        let page = store
            .list_accounts(&a, &all, after.as_ref(), 3)
            .await
            .expect("page");
        seen.extend(page.iter().map(|r| r.id.clone()));
        match page.last() {
            Some(last) if page.len() == 3 => after = Some(last.id.clone()),
            _ => break,
        }
    }
    assert_eq!(seen, ids, "every account once, in id order");
    let modes = AccountFilter {
        provider: Some(Provider::Mode),
        tenant_ref: None,
    };
    assert_eq!(
        store
            .list_accounts(&a, &modes, None, 100)
            .await
            .expect("modes")
            .len(),
        4
    );
    let cust = AccountFilter {
        provider: Some(Provider::Metabase),
        tenant_ref: Some("cust-1".into()),
    };
    assert_eq!(
        store
            .list_accounts(&a, &cust, None, 100)
            .await
            .expect("cust")
            .len(),
        1
    );
}

pub async fn account_updates_and_status_changes(store: &dyn Store) {
    let (a, _) = two_tenants(store).await;
    let mut row = account(&a, Provider::Metabase, None);
    store.insert_account(&row).await.expect("insert");
    row.label = "renamed".into();
    row.credentials_sealed = vec![9, 9];
    row.updated_at = 20;
    assert!(store.update_account(&row, 10).await.expect("update"));
    assert_eq!(
        store.account(&a, &row.id).await.expect("get"),
        Some(row.clone())
    );
    // A writer that read the row before that change loses, and changes nothing.
    let mut stale = row.clone();
    stale.credentials_sealed = vec![1];
    stale.updated_at = 21;
    assert!(
        !store
            .update_account(&stale, 10)
            .await
            .expect("stale update")
    );
    assert_eq!(
        store.account(&a, &row.id).await.expect("get"),
        Some(row.clone())
    );

    let changed = store
        .set_account_status(
            &a,
            &row.id,
            AccountStatus::NeedsReauth,
            Some("Unauthenticated"),
            30,
        )
        .await
        .expect("status");
    assert!(changed);
    let again = store
        .set_account_status(
            &a,
            &row.id,
            AccountStatus::NeedsReauth,
            Some("Unauthenticated"),
            31,
        )
        .await
        .expect("status");
    assert!(!again, "an unchanged status is not a change");
    let now = store.account(&a, &row.id).await.expect("get").expect("row");
    assert_eq!(
        (now.status, now.status_detail.as_deref(), now.updated_at),
        (AccountStatus::NeedsReauth, Some("Unauthenticated"), 30)
    );
}

pub async fn resealing_is_compare_and_set(store: &dyn Store) {
    let (a, _) = two_tenants(store).await;
    let row = account(&a, Provider::Mode, None);
    store.insert_account(&row).await.expect("insert");
    let sealed = store.sealed_credentials(None, 10).await.expect("sealed");
    assert_eq!(sealed.len(), 1);
    assert_eq!(
        store.credential_key_ids().await.expect("ids"),
        vec!["k1".to_owned()]
    );
    assert!(
        store
            .reseal_credential(&sealed[0], "k2", &[7, 7])
            .await
            .expect("reseal")
    );
    // The same expectation again is stale now: nothing changes.
    assert!(
        !store
            .reseal_credential(&sealed[0], "k3", &[8])
            .await
            .expect("stale")
    );
    let now = store.account(&a, &row.id).await.expect("get").expect("row");
    assert_eq!(
        (
            now.credentials_key_id.as_str(),
            now.credentials_sealed.as_slice()
        ),
        ("k2", &[7u8, 7][..])
    );
    assert_eq!(
        store.credential_key_ids().await.expect("ids"),
        vec!["k2".to_owned()]
    );
}

pub async fn audit_rows_append_and_read_newest_first(store: &dyn Store) {
    let (a, b) = two_tenants(store).await;
    for (i, tenant) in [&a, &a, &b].into_iter().enumerate() {
        store
            .append_audit(&AuditRow {
                id: format!("au_{i:03}"),
                tenant_id: tenant.clone(),
                at: 100 + i as i64,
                actor: "key:x".into(),
                action: "integrated_account.created".into(),
                target_type: "integrated_account".into(),
                target_id: format!("acct_{i}"),
                request_id: Some("req".into()),
                before_json: None,
                after_json: Some("{}".into()),
                outcome: AuditOutcome::Success,
                detail: None,
            })
            .await
            .expect("append");
    }
    let rows = store
        .list_audit(&a, &AuditFilter::default(), None, 10)
        .await
        .expect("recent");
    assert_eq!(
        rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["au_001", "au_000"]
    );
}

pub async fn link_tokens_are_spent_once_with_the_account(store: &dyn Store) {
    let (a, _) = two_tenants(store).await;
    let token = LinkTokenRow {
        token_sha256: [3; 32],
        tenant_id: a.clone(),
        tenant_ref: Some("cust-9".into()),
        created_by: "key:x".into(),
        created_at: 100,
        expires_at: 200,
        used_at: None,
        account_id: None,
    };
    store.insert_link_token(&token).await.expect("insert");
    assert_eq!(
        store.link_token(&[3; 32]).await.expect("get"),
        Some(token.clone())
    );

    let first = account(&a, Provider::Mode, Some("cust-9"));
    assert!(
        !store
            .insert_account_via_link(&first, &[3; 32], 200)
            .await
            .expect("expired")
    );
    assert_eq!(
        store.account(&a, &first.id).await.expect("get"),
        None,
        "nothing written"
    );
    assert!(
        store
            .insert_account_via_link(&first, &[3; 32], 150)
            .await
            .expect("spend")
    );
    let second = account(&a, Provider::Mode, Some("cust-9"));
    assert!(
        !store
            .insert_account_via_link(&second, &[3; 32], 151)
            .await
            .expect("spent")
    );
    assert_eq!(store.account(&a, &second.id).await.expect("get"), None);
    let spent = store.link_token(&[3; 32]).await.expect("get").expect("row");
    assert_eq!(
        (spent.used_at, spent.account_id),
        (Some(150), Some(first.id))
    );
}

pub async fn idempotency_keys_claim_replay_and_expire(store: &dyn Store) {
    let (a, b) = two_tenants(store).await;
    let claim = |tenant: TenantId, hash: [u8; 32], now: i64| async move {
        store
            .claim_idempotency_key(&tenant, "k-1", &hash, now, now - 1_000)
            .await
            .expect("claim")
    };
    assert_eq!(
        claim(a.clone(), [1; 32], 100).await,
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        claim(a.clone(), [1; 32], 101).await,
        IdempotencyClaim::InProgress
    );
    assert_eq!(
        claim(a.clone(), [2; 32], 101).await,
        IdempotencyClaim::Mismatch
    );
    assert_eq!(
        claim(b.clone(), [2; 32], 101).await,
        IdempotencyClaim::Claimed,
        "keys are per tenant"
    );
    store
        .finish_idempotency_key(&a, "k-1", 201, b"{\"id\":1}")
        .await
        .expect("finish");
    assert_eq!(
        claim(a.clone(), [1; 32], 102).await,
        IdempotencyClaim::Replay {
            status: 201,
            body: b"{\"id\":1}".to_vec()
        }
    );
    // Abandoning only releases pending keys.
    store
        .abandon_idempotency_key(&a, "k-1")
        .await
        .expect("abandon");
    assert!(matches!(
        claim(a.clone(), [1; 32], 103).await,
        IdempotencyClaim::Replay { .. }
    ));
    store
        .abandon_idempotency_key(&b, "k-1")
        .await
        .expect("abandon");
    assert_eq!(
        claim(b.clone(), [3; 32], 104).await,
        IdempotencyClaim::Claimed
    );
    // Old keys are forgotten.
    assert_eq!(claim(a, [9; 32], 5_000).await, IdempotencyClaim::Claimed);
}

pub async fn audit_rows_filter_and_page_newest_first(store: &dyn Store) {
    let (a, _) = two_tenants(store).await;
    for i in 0..10 {
        store
            .append_audit(&AuditRow {
                id: format!("au_{i:03}"),
                tenant_id: a.clone(),
                at: 1_000 + i,
                actor: if i % 2 == 0 {
                    "key:even".into()
                } else {
                    "key:odd".into()
                },
                action: if i < 5 {
                    "user.created".into()
                } else {
                    "group.deleted".into()
                },
                target_type: "user".into(),
                target_id: format!("acct_{}/u{i}", i % 3),
                request_id: None,
                before_json: None,
                after_json: None,
                outcome: if i == 9 {
                    AuditOutcome::Failure
                } else {
                    AuditOutcome::Success
                },
                detail: None,
            })
            .await
            .expect("append");
    }
    let ids = |rows: Vec<AuditRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let all = AuditFilter::default();
    let first = store.list_audit(&a, &all, None, 4).await.expect("page");
    assert_eq!(
        ids(first.clone()),
        vec!["au_009", "au_008", "au_007", "au_006"]
    );
    let next = store
        .list_audit(&a, &all, Some(&first[3].id), 4)
        .await
        .expect("page");
    assert_eq!(ids(next), vec!["au_005", "au_004", "au_003", "au_002"]);
    let filter = AuditFilter {
        action: Some("user.created".into()),
        actor: Some("key:even".into()),
        ..AuditFilter::default()
    };
    assert_eq!(
        ids(store.list_audit(&a, &filter, None, 10).await.expect("f")),
        vec!["au_004", "au_002", "au_000"]
    );
    let filter = AuditFilter {
        target_prefix: Some("acct_0/".into()),
        since: Some(1_003),
        until: Some(1_009),
        ..AuditFilter::default()
    };
    assert_eq!(
        ids(store.list_audit(&a, &filter, None, 10).await.expect("f")),
        vec!["au_006", "au_003"]
    );
    let failures = AuditFilter {
        outcome: Some(AuditOutcome::Failure),
        ..AuditFilter::default()
    };
    assert_eq!(
        ids(store.list_audit(&a, &failures, None, 10).await.expect("f")),
        vec!["au_009"]
    );
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
            accounts_are_visible_only_to_their_tenant,
            accounts_list_in_pages_with_filters,
            account_updates_and_status_changes,
            resealing_is_compare_and_set,
            audit_rows_append_and_read_newest_first,
            link_tokens_are_spent_once_with_the_account,
            idempotency_keys_claim_replay_and_expire,
            audit_rows_filter_and_page_newest_first,
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
