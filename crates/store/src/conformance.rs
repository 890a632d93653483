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

    let as_read = |status, updated_at| AccountRow {
        status,
        updated_at,
        ..row.clone()
    };
    // A verdict on the row as it was before the last update (other
    // credentials, say) changes nothing.
    let before_update = store
        .set_account_status(
            &as_read(AccountStatus::Active, 10),
            AccountStatus::NeedsReauth,
            Some("Unauthenticated"),
            29,
        )
        .await
        .expect("status");
    assert!(!before_update, "only on the row as it was read");
    let changed = store
        .set_account_status(
            &row,
            AccountStatus::NeedsReauth,
            Some("Unauthenticated"),
            30,
        )
        .await
        .expect("status");
    assert!(changed);
    let again = store
        .set_account_status(
            &row,
            AccountStatus::NeedsReauth,
            Some("Unauthenticated"),
            31,
        )
        .await
        .expect("status");
    assert!(!again, "no longer active: a stale verdict changes nothing");
    let disabled_meanwhile = store
        .set_account_status(
            &as_read(AccountStatus::Disabled, 30),
            AccountStatus::Active,
            None,
            32,
        )
        .await
        .expect("status");
    assert!(!disabled_meanwhile, "only from the status it was read with");
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

// ---- background work: jobs, syncs, snapshots, events, webhooks ----

fn job(kind: &str, account: Option<&AccountRow>, run_at: i64) -> crate::JobRow {
    crate::JobRow {
        id: format!("job_{}", uuid::Uuid::now_v7().simple()),
        kind: kind.into(),
        tenant_id: account.map(|a| a.tenant_id.clone()),
        account_id: account.map(|a| a.id.clone()),
        payload_json: "{}".into(),
        status: crate::JobStatus::Queued,
        run_at,
        attempts: 0,
        max_attempts: 3,
        lease_owner: None,
        lease_until: None,
        last_error: None,
        created_at: run_at,
        updated_at: run_at,
    }
}

fn sync_run(account: &AccountRow) -> crate::SyncRunRow {
    crate::SyncRunRow {
        id: format!("sync_{}", uuid::Uuid::now_v7().simple()),
        tenant_id: account.tenant_id.clone(),
        account_id: account.id.clone(),
        trigger: "api".into(),
        status: crate::SyncStatus::Queued,
        phase: None,
        progress_json: None,
        counts_json: None,
        error: None,
        attempts: 0,
        created_at: 100,
        started_at: None,
        finished_at: None,
    }
}

fn sync_job(account: &AccountRow, run: &crate::SyncRunRow) -> crate::JobRow {
    crate::JobRow {
        payload_json: format!(r#"{{"sync_run_id":"{}"}}"#, run.id),
        ..job("sync", Some(account), 100)
    }
}

fn event(tenant: &TenantId, account: Option<&AccountId>, kind: &str) -> crate::EventRow {
    crate::EventRow {
        seq: 0,
        id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
        tenant_id: tenant.clone(),
        account_id: account.cloned(),
        event_type: kind.into(),
        occurred_at: 100,
        data_json: "{}".into(),
    }
}

async fn linked(store: &dyn Store) -> AccountRow {
    let t = tenant("acme");
    store.insert_tenant(&t).await.expect("tenant");
    let a = account(&t.id, Provider::Mode, None);
    store.insert_account(&a).await.expect("account");
    a
}

pub async fn jobs_are_claimed_once_and_reclaimed_after_their_lease(store: &dyn Store) {
    let a = linked(store).await;
    store
        .insert_job(&job("sync", Some(&a), 100))
        .await
        .expect("job");
    store
        .insert_job(&job("other", None, 5_000))
        .await
        .expect("later job");
    assert_eq!(
        store.claim_job("n1", 50, 150).await.expect("claim"),
        None,
        "not due yet"
    );
    let claimed = store
        .claim_job("n1", 100, 1_000)
        .await
        .expect("claim")
        .expect("due");
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.lease_owner.as_deref(), Some("n1"));
    assert_eq!(
        store.claim_job("n2", 500, 1_500).await.expect("claim"),
        None,
        "leased"
    );
    let lease = crate::Lease {
        job_id: claimed.id.clone(),
        owner: "n1".into(),
    };
    assert!(store.renew_lease(&lease, 2_000).await.expect("renew"));
    assert_eq!(
        store.claim_job("n2", 1_500, 2_500).await.expect("claim"),
        None
    );
    // n1 dies: after its lease, n2 takes the job over and n1 can no longer end it.
    let taken = store
        .claim_job("n2", 2_001, 3_000)
        .await
        .expect("claim")
        .expect("expired");
    assert_eq!(taken.id, claimed.id);
    assert_eq!(taken.attempts, 2);
    assert!(!store.renew_lease(&lease, 9_000).await.expect("renew"));
    assert!(
        !store
            .finish_job(&lease, crate::JobStatus::Done, None, 2_100)
            .await
            .expect("finish")
    );
    let lease2 = crate::Lease {
        job_id: taken.id.clone(),
        owner: "n2".into(),
    };
    assert!(
        store
            .retry_job(&lease2, 2_500, "vendor down", 2_100)
            .await
            .expect("retry")
    );
    let again = store
        .claim_job("n3", 2_500, 3_000)
        .await
        .expect("claim")
        .expect("requeued");
    assert_eq!(again.last_error.as_deref(), Some("vendor down"));
    let lease3 = crate::Lease {
        job_id: again.id.clone(),
        owner: "n3".into(),
    };
    assert!(
        store
            .finish_job(&lease3, crate::JobStatus::Done, None, 2_600)
            .await
            .expect("finish")
    );
    assert_eq!(
        store
            .job(&again.id)
            .await
            .expect("job")
            .expect("row")
            .status,
        crate::JobStatus::Done
    );
    assert_eq!(
        store.claim_job("n3", 4_000, 5_000).await.expect("claim"),
        None
    );
    // Finished jobs are forgotten after their time; queued ones never.
    assert_eq!(
        store.prune_finished(2_000, 0).await.expect("prune"),
        0,
        "too recent"
    );
    assert_eq!(store.prune_finished(3_000, 0).await.expect("prune"), 1);
    assert_eq!(store.job(&again.id).await.expect("job"), None);
    assert_eq!(
        store
            .claim_job("n3", 5_000, 6_000)
            .await
            .expect("claim")
            .map(|j| j.kind),
        Some("other".into())
    );
}

pub async fn one_sync_per_account_is_queued_at_a_time(store: &dyn Store) {
    let a = linked(store).await;
    assert_eq!(
        store.due_accounts(100, 10).await.expect("due").len(),
        1,
        "never synced"
    );
    let first = sync_run(&a);
    assert_eq!(
        store
            .enqueue_sync(&first, &sync_job(&a, &first), 900_100)
            .await
            .expect("enqueue"),
        crate::Enqueued::Created
    );
    assert!(
        store.due_accounts(100, 10).await.expect("due").is_empty(),
        "queued"
    );
    let second = sync_run(&a);
    assert_eq!(
        store
            .enqueue_sync(&second, &sync_job(&a, &second), 900_100)
            .await
            .expect("enqueue"),
        crate::Enqueued::AlreadyQueued(first.id.clone())
    );
    assert_eq!(
        store.sync_run(&a.tenant_id, &second.id).await.expect("run"),
        None,
        "nothing written"
    );
    assert_eq!(
        store
            .sync_run(&a.tenant_id, &first.id)
            .await
            .expect("run")
            .map(|r| r.status),
        Some(crate::SyncStatus::Queued)
    );
    assert_eq!(
        store
            .sync_run(&TenantId::generate(), &first.id)
            .await
            .expect("run"),
        None
    );
    // Once it ends, the account is due again at its next time.
    let claimed = store
        .claim_job("n1", 100, 1_000)
        .await
        .expect("claim")
        .expect("job");
    let lease = crate::Lease {
        job_id: claimed.id,
        owner: "n1".into(),
    };
    let failed = event(&a.tenant_id, Some(&a.id), "sync_run.failed");
    assert!(
        store
            .fail_sync(Some(&lease), &first.id, "boom", &failed, 200)
            .await
            .expect("fail")
    );
    assert!(
        store.due_accounts(200, 10).await.expect("due").is_empty(),
        "not yet due"
    );
    assert_eq!(store.due_accounts(900_100, 10).await.expect("due").len(), 1);
    let run = store
        .last_finished_sync(&a.id)
        .await
        .expect("last")
        .expect("run");
    assert_eq!(
        (run.status, run.error.as_deref()),
        (crate::SyncStatus::Failed, Some("boom"))
    );
    assert_eq!(store.last_good_sync_at(&a.id).await.expect("good"), None);
}

fn user_row(id: &str, status: &str, admin: bool) -> crate::CachedUserRow {
    crate::CachedUserRow {
        user_id: id.into(),
        email: Some(format!("{id}@example.com")),
        status: status.into(),
        is_admin: admin,
        data_json: format!(r#"{{"id":"{id}"}}"#),
    }
}

pub async fn sync_commits_are_atomic_and_need_the_lease(store: &dyn Store) {
    let a = linked(store).await;
    let run = sync_run(&a);
    store
        .enqueue_sync(&run, &sync_job(&a, &run), 1_000)
        .await
        .expect("enqueue");
    let claimed = store
        .claim_job("n1", 100, 1_000)
        .await
        .expect("claim")
        .expect("job");
    let commit = crate::SyncCommit {
        lease: Some(crate::Lease {
            job_id: claimed.id.clone(),
            owner: "n1".into(),
        }),
        run_id: run.id.clone(),
        account_id: Some(a.id.clone()),
        upsert_users: vec![
            user_row("u1", "active", true).with_content_hash(),
            user_row("u2", "active", false).with_content_hash(),
        ],
        upsert_groups: vec![crate::CachedGroupRow {
            group_id: "g1".into(),
            name: "Eng".into(),
            data_json: "{}".into(),
        }],
        add_memberships: vec![("g1".into(), "u2".into())],
        roles: vec![crate::CachedRoleRow {
            role_id: "admin".into(),
            data_json: "{}".into(),
        }],
        events: vec![event(&a.tenant_id, Some(&a.id), "sync_run.completed")],
        counts_json: "{}".into(),
        finished_at: 500,
        ..crate::SyncCommit::default()
    };
    // Another node took the job over: the stale commit writes nothing.
    let stale = crate::SyncCommit {
        lease: Some(crate::Lease {
            job_id: claimed.id.clone(),
            owner: "elsewhere".into(),
        }),
        ..commit.clone()
    };
    assert!(!store.commit_sync(&stale).await.expect("stale commit"));
    assert!(store.snapshot_users(&a.id).await.expect("users").is_empty());
    assert!(
        store
            .list_events(&a.tenant_id, None, 0, 10)
            .await
            .expect("events")
            .is_empty()
    );
    assert!(store.commit_sync(&commit).await.expect("commit"));
    assert_eq!(store.last_full_read_at(&a.id).await.expect("full"), None);
    assert_eq!(store.snapshot_users(&a.id).await.expect("users").len(), 2);
    // Each user is stored with its content hash, and read back by id.
    assert_eq!(
        store.snapshot_user_hashes(&a.id).await.expect("hashes"),
        commit
            .upsert_users
            .iter()
            .map(|(u, hash)| (u.user_id.clone(), Some(*hash)))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        store
            .snapshot_users_by_id(&a.id, &["u2".into(), "nobody".into()])
            .await
            .expect("by id"),
        vec![commit.upsert_users[1].0.clone()]
    );
    assert_eq!(
        store.snapshot_memberships(&a.id).await.expect("m"),
        vec![("g1".to_owned(), "u2".to_owned())]
    );
    assert_eq!(store.snapshot_roles(&a.id).await.expect("roles").len(), 1);
    assert_eq!(
        store.last_good_sync_at(&a.id).await.expect("good"),
        Some(500)
    );
    assert_eq!(
        store
            .sync_run(&a.tenant_id, &run.id)
            .await
            .expect("run")
            .map(|r| r.status),
        Some(crate::SyncStatus::Succeeded)
    );
    assert_eq!(
        store.job(&claimed.id).await.expect("job").map(|j| j.status),
        Some(crate::JobStatus::Done)
    );
    // Committing twice (a retried write) neither doubles rows nor events.
    let second = crate::SyncCommit {
        lease: None,
        full_read: true,
        finished_at: 600,
        ..commit.clone()
    };
    assert!(store.commit_sync(&second).await.expect("again"));
    assert_eq!(
        store
            .list_events(&a.tenant_id, None, 0, 10)
            .await
            .expect("events")
            .len(),
        1
    );
    // Deletions and removals apply.
    let next = crate::SyncCommit {
        lease: None,
        upsert_users: vec![],
        delete_users: vec!["u1".into()],
        remove_memberships: vec![("g1".into(), "u2".into())],
        delete_groups: vec!["g1".into()],
        upsert_groups: vec![],
        add_memberships: vec![],
        events: vec![],
        ..commit
    };
    assert!(store.commit_sync(&next).await.expect("next"));
    // A later partial read keeps the time of the last full one.
    assert_eq!(
        store.last_full_read_at(&a.id).await.expect("full"),
        Some(600)
    );
    let users = store.snapshot_users(&a.id).await.expect("users");
    assert_eq!(
        users.iter().map(|u| u.user_id.as_str()).collect::<Vec<_>>(),
        vec!["u2"]
    );
    assert!(
        store
            .snapshot_groups(&a.id)
            .await
            .expect("groups")
            .is_empty()
    );
    assert!(
        store
            .snapshot_memberships(&a.id)
            .await
            .expect("m")
            .is_empty()
    );
}

/// A commit larger than any one statement the backend writes it in (and
/// not a multiple of it) stores every user exactly as given, and a second
/// commit of the same users updates them in place.
pub async fn large_sync_commits_store_every_user_as_given(store: &dyn Store) {
    let a = linked(store).await;
    let run = sync_run(&a);
    store
        .enqueue_sync(&run, &sync_job(&a, &run), 1_000)
        .await
        .expect("enqueue");
    let users = |round: u32| -> Vec<(crate::CachedUserRow, i64)> {
        (0..9_001)
            .map(|n| {
                let id = format!("u{n:05}");
                let row = crate::CachedUserRow {
                    email: (n % 7 != 0).then(|| format!("{id}@example.com")),
                    status: if n % 3 == round % 3 {
                        "deactivated"
                    } else {
                        "active"
                    }
                    .into(),
                    is_admin: n % 11 == 0,
                    data_json: format!(
                        r#"{{"id":"{id}","round":{round},"name":"Zoë \"quoted\" {n}"}}"#
                    ),
                    user_id: id,
                };
                let hash = i64::from(round) << 40 | i64::from(n);
                (row, hash)
            })
            .collect()
    };
    let commit = |round: u32, finished_at: i64| crate::SyncCommit {
        run_id: run.id.clone(),
        account_id: Some(a.id.clone()),
        upsert_users: users(round),
        counts_json: "{}".into(),
        finished_at,
        ..crate::SyncCommit::default()
    };
    for (round, at) in [(0, 500), (1, 600)] {
        assert!(store.commit_sync(&commit(round, at)).await.expect("commit"));
        let expected = users(round);
        let stored = store.snapshot_users(&a.id).await.expect("users");
        assert_eq!(stored.len(), expected.len(), "round {round}");
        for (got, (want, _)) in stored.iter().zip(&expected) {
            assert_eq!(got, want, "round {round}");
        }
        assert_eq!(
            store.snapshot_user_hashes(&a.id).await.expect("hashes"),
            expected
                .iter()
                .map(|(u, hash)| (u.user_id.clone(), Some(*hash)))
                .collect::<Vec<_>>(),
            "round {round}"
        );
    }
}

pub async fn cached_users_page_by_keyset_with_filters(store: &dyn Store) {
    let a = linked(store).await;
    let users: Vec<_> = (0..25)
        .map(|i| {
            user_row(
                &format!("u{i:02}"),
                if i % 5 == 0 { "inactive" } else { "active" },
                i % 4 == 0,
            )
        })
        .collect();
    let memberships = vec![
        ("g1".to_owned(), "u03".to_owned()),
        ("g1".to_owned(), "u07".to_owned()),
        ("g2".to_owned(), "u03".to_owned()),
    ];
    let commit = crate::SyncCommit {
        run_id: "r".into(),
        account_id: Some(a.id.clone()),
        upsert_users: users
            .into_iter()
            .map(crate::CachedUserRow::with_content_hash)
            .collect(),
        upsert_groups: vec![
            crate::CachedGroupRow {
                group_id: "g1".into(),
                name: "One".into(),
                data_json: "{}".into(),
            },
            crate::CachedGroupRow {
                group_id: "g2".into(),
                name: "Two".into(),
                data_json: "{}".into(),
            },
        ],
        add_memberships: memberships,
        counts_json: "{}".into(),
        ..crate::SyncCommit::default()
    };
    assert!(store.commit_sync(&commit).await.expect("commit"));
    let active = crate::CachedUserFilter {
        status: Some("active".into()),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .cached_users(&a.id, &active, after.as_deref(), 7)
            .await
            .expect("page");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|u| u.user_id.clone());
        seen.extend(page.into_iter().map(|u| u.user_id));
    }
    assert_eq!(seen.len(), 20);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, no repeats");
    let admins = crate::CachedUserFilter {
        status: Some("active".into()),
        is_admin: Some(true),
        ..Default::default()
    };
    let ids: Vec<_> = store
        .cached_users(&a.id, &admins, None, 100)
        .await
        .expect("admins")
        .into_iter()
        .map(|u| u.user_id)
        .collect();
    assert_eq!(ids, vec!["u04", "u08", "u12", "u16", "u24"]);
    let by_email = crate::CachedUserFilter {
        email: Some("u07@example.com".into()),
        ..Default::default()
    };
    assert_eq!(
        store
            .cached_users(&a.id, &by_email, None, 100)
            .await
            .expect("email")
            .len(),
        1
    );
    let in_group = crate::CachedUserFilter {
        status: Some("active".into()),
        group_id: Some("g1".into()),
        ..Default::default()
    };
    let ids: Vec<_> = store
        .cached_users(&a.id, &in_group, None, 100)
        .await
        .expect("group")
        .into_iter()
        .map(|u| u.user_id)
        .collect();
    assert_eq!(ids, vec!["u03", "u07"]);
    let groups = store
        .cached_user_groups(&a.id, &["u03".into(), "u07".into(), "u09".into()])
        .await
        .expect("groups");
    assert_eq!(
        groups,
        vec![
            ("u03".to_owned(), "g1".to_owned(), "One".to_owned()),
            ("u03".to_owned(), "g2".to_owned(), "Two".to_owned()),
            ("u07".to_owned(), "g1".to_owned(), "One".to_owned()),
        ]
    );
    assert!(
        store
            .cached_user(&a.id, "u03")
            .await
            .expect("one")
            .is_some()
    );
    assert!(
        store
            .cached_user(&a.id, "nobody")
            .await
            .expect("one")
            .is_none()
    );
    let page = store
        .cached_memberships(&a.id, None, None, Some(("g1", "u03")), 10)
        .await
        .expect("m");
    assert_eq!(
        page,
        vec![
            ("g1".to_owned(), "u07".to_owned()),
            ("g2".to_owned(), "u03".to_owned())
        ]
    );
    let of_user = store
        .cached_memberships(&a.id, None, Some("u03"), None, 10)
        .await
        .expect("m");
    assert_eq!(of_user.len(), 2);
    let groups = store
        .cached_groups(&a.id, Some("g1"), 10)
        .await
        .expect("groups");
    assert_eq!(
        groups
            .iter()
            .map(|g| g.group_id.as_str())
            .collect::<Vec<_>>(),
        vec!["g2"]
    );
    assert_eq!(
        store
            .cached_group(&a.id, "g1")
            .await
            .expect("g")
            .map(|g| g.name),
        Some("One".into())
    );
}

pub async fn events_read_in_order_per_tenant(store: &dyn Store) {
    let (t1, t2) = two_tenants(store).await;
    let a = account(&t1, Provider::Mode, None);
    store.insert_account(&a).await.expect("account");
    let batch: Vec<_> = (0..5)
        .map(|i| event(&t1, Some(&a.id), &format!("user.e{i}")))
        .collect();
    store.append_events(&batch).await.expect("append");
    store
        .append_events(&[event(&t2, None, "user.other")])
        .await
        .expect("append");
    store
        .append_events(&batch[..1])
        .await
        .expect("the same event again is ignored");
    let first = store.list_events(&t1, None, 0, 3).await.expect("list");
    assert_eq!(
        first
            .iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        vec!["user.e0", "user.e1", "user.e2"]
    );
    let rest = store
        .list_events(&t1, None, first[2].seq, 10)
        .await
        .expect("list");
    assert_eq!(rest.len(), 2);
    assert!(rest[0].seq > first[2].seq);
    assert_eq!(
        store
            .list_events(&t2, None, 0, 10)
            .await
            .expect("list")
            .len(),
        1
    );
    assert_eq!(
        store
            .list_events(&t1, Some(&a.id), 0, 10)
            .await
            .expect("list")
            .len(),
        5
    );
    assert!(store.last_event_seq().await.expect("seq") >= rest[1].seq);
}

pub async fn webhook_deliveries_queue_claim_and_retry(store: &dyn Store) {
    let (t1, t2) = two_tenants(store).await;
    store
        .append_events(&[event(&t1, None, "user.created")])
        .await
        .expect("old event");
    let hook = crate::WebhookRow {
        id: "wh_1".into(),
        tenant_id: t1.clone(),
        url: "http://127.0.0.1:9/hook".into(),
        events: vec!["user.*".into()],
        secret_key_id: "k1".into(),
        secret_sealed: vec![9, 9],
        last_event_seq: store.last_event_seq().await.expect("seq"),
        created_at: 100,
    };
    assert!(store.insert_webhook(&hook, 1).await.expect("insert"));
    let second = crate::WebhookRow {
        id: "wh_2".into(),
        ..hook.clone()
    };
    assert!(
        !store.insert_webhook(&second, 1).await.expect("capped"),
        "the tenant's cap"
    );
    assert_eq!(
        store.webhook(&t2, "wh_1").await.expect("get"),
        None,
        "tenant-bound"
    );
    assert_eq!(store.list_webhooks(&t1).await.expect("list").len(), 1);
    store
        .append_events(&[
            event(&t1, None, "user.deleted"),
            event(&t1, None, "group.created"),
            event(&t2, None, "user.created"),
        ])
        .await
        .expect("events");
    assert_eq!(
        store.queue_deliveries(200, 100).await.expect("queue"),
        1,
        "only new, wanted, own events"
    );
    assert_eq!(
        store.queue_deliveries(200, 100).await.expect("queue"),
        0,
        "queued once"
    );
    let due = store.claim_deliveries(200, 1_200, 10).await.expect("claim");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].event.event_type, "user.deleted");
    assert_eq!(due[0].webhook.secret_sealed, vec![9, 9]);
    assert!(
        store
            .claim_deliveries(300, 1_300, 10)
            .await
            .expect("claim")
            .is_empty(),
        "leased"
    );
    let id = due[0].delivery.id.clone();
    let retry = crate::DeliveryOutcome::Failed {
        status: Some(500),
        error: "HTTP 500".into(),
        retry_at: Some(400),
    };
    assert!(
        !store
            .finish_delivery(&id, 999, &retry, 300)
            .await
            .expect("finish"),
        "not the claim that holds it"
    );
    assert!(
        store
            .finish_delivery(&id, 1_200, &retry, 300)
            .await
            .expect("finish")
    );
    assert!(
        store
            .claim_deliveries(350, 1_350, 10)
            .await
            .expect("claim")
            .is_empty(),
        "backing off"
    );
    let again = store.claim_deliveries(400, 1_400, 10).await.expect("claim");
    assert_eq!(again.len(), 1);
    let ok = crate::DeliveryOutcome::Succeeded { status: 204 };
    assert!(
        store
            .finish_delivery(&id, 1_400, &ok, 450)
            .await
            .expect("finish")
    );
    // A late answer to the first attempt changes nothing now.
    assert!(
        !store
            .finish_delivery(&id, 1_200, &retry, 460)
            .await
            .expect("late")
    );
    let rows = store
        .list_deliveries("wh_1", None, 10)
        .await
        .expect("deliveries");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].status, rows[0].attempts, rows[0].last_status),
        (crate::DeliveryStatus::Succeeded, 2, Some(204))
    );
    assert_eq!(
        store.prune_finished(0, 449).await.expect("prune"),
        0,
        "too recent"
    );
    assert_eq!(store.prune_finished(0, 451).await.expect("prune"), 1);
    assert!(
        store
            .list_deliveries("wh_1", None, 10)
            .await
            .expect("deliveries")
            .is_empty()
    );
    assert!(
        store
            .claim_deliveries(10_000, 11_000, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    assert!(
        store
            .credential_key_ids()
            .await
            .expect("ids")
            .contains(&"k1".to_owned())
    );
    assert!(store.delete_webhook(&t1, "wh_1").await.expect("delete"));
    assert!(
        store
            .list_deliveries("wh_1", None, 10)
            .await
            .expect("deliveries")
            .is_empty()
    );
}

pub async fn vendor_sends_keep_a_sliding_window(store: &dyn Store) {
    let send = |at: i64| async move {
        store
            .record_vendor_send("cred", 2, 1_000, &move || at)
            .await
    };
    assert_eq!(send(0).await.expect("send"), None);
    assert_eq!(send(10).await.expect("send"), None);
    // Full until the first send leaves the window.
    assert_eq!(send(20).await.expect("send"), Some(1_000));
    assert_eq!(
        store
            .record_vendor_send("other", 2, 1_000, &|| 20)
            .await
            .expect("send"),
        None,
        "each credential has its own window"
    );
    assert_eq!(send(1_000).await.expect("send"), None);
    assert_eq!(send(1_005).await.expect("send"), Some(1_010));
}

// ---- governance: grants, plans, reports ----

fn grant(account: &AccountRow, id: &str, job_id: &str, preexisting: bool) -> crate::GrantRow {
    crate::GrantRow {
        id: id.into(),
        tenant_id: account.tenant_id.clone(),
        account_id: account.id.clone(),
        user_id: "u1".into(),
        group_id: "g1".into(),
        reason: Some("on call".into()),
        status: crate::GrantStatus::Active,
        preexisting,
        created_by: "key:k1".into(),
        job_id: job_id.into(),
        created_at: 100,
        expires_at: 1_000,
        ended_at: None,
        last_error: None,
        updated_at: 100,
    }
}

/// Commits a sync that writes `users` (a first one if there was none).
async fn commit_users(
    store: &dyn Store,
    a: &AccountRow,
    users: Vec<crate::CachedUserRow>,
    changed: bool,
) {
    let run = sync_run(a);
    store
        .enqueue_sync(&run, &sync_job(a, &run), 1_000)
        .await
        .expect("enqueue");
    let claimed = store
        .claim_job("n1", 100, 1_000)
        .await
        .expect("claim")
        .expect("job");
    let commit = crate::SyncCommit {
        lease: Some(crate::Lease {
            job_id: claimed.id,
            owner: "n1".into(),
        }),
        run_id: run.id,
        account_id: Some(a.id.clone()),
        upsert_users: users
            .into_iter()
            .map(crate::CachedUserRow::with_content_hash)
            .collect(),
        counts_json: "{}".into(),
        finished_at: 500,
        activity_exposed: true,
        snapshot_changed: changed,
        ..crate::SyncCommit::default()
    };
    assert!(store.commit_sync(&commit).await.expect("commit"));
}

pub async fn grants_end_once_with_their_job_and_event(store: &dyn Store) {
    let a = linked(store).await;
    let expiry = job("grant_expiry", Some(&a), 1_000);
    let g = grant(&a, "ag_1", &expiry.id, false);
    store
        .insert_grant(
            &g,
            &expiry,
            Some(&event(&a.tenant_id, Some(&a.id), "access_grant.activated")),
        )
        .await
        .expect("grant");
    let other_tenant = tenant("other");
    store.insert_tenant(&other_tenant).await.expect("tenant");
    assert_eq!(
        store.grant(&a.tenant_id, "ag_1").await.expect("read"),
        Some(g.clone())
    );
    assert_eq!(
        store.grant(&other_tenant.id, "ag_1").await.expect("read"),
        None
    );
    assert_eq!(
        store
            .live_grants_on(&a.id, "g1", "u1")
            .await
            .expect("live")
            .len(),
        1
    );

    // Not due yet; then due, claimed, and ended under the lease.
    assert!(
        store
            .claim_job("n1", 999, 2_000)
            .await
            .expect("claim")
            .is_none()
    );
    let claimed = store
        .claim_job("n1", 1_000, 2_000)
        .await
        .expect("claim")
        .expect("due");
    assert_eq!(claimed.id, expiry.id);
    store
        .note_grant_error("ag_1", "vendor down", 1_001)
        .await
        .expect("note");
    let noted = store
        .grant(&a.tenant_id, "ag_1")
        .await
        .expect("read")
        .expect("grant");
    assert_eq!(noted.status, crate::GrantStatus::Expiring);
    assert_eq!(noted.last_error.as_deref(), Some("vendor down"));

    let expired = event(&a.tenant_id, Some(&a.id), "access_grant.expired");
    let wrong_lease = crate::Lease {
        job_id: expiry.id.clone(),
        owner: "n2".into(),
    };
    let end = |lease| crate::GrantEnd {
        grant_id: "ag_1",
        to: crate::GrantStatus::Expired,
        event: &expired,
        lease,
        now: 1_002,
    };
    assert!(
        !store
            .end_grant(&end(Some(&wrong_lease)))
            .await
            .expect("end")
    );
    let lease = crate::Lease {
        job_id: expiry.id.clone(),
        owner: "n1".into(),
    };
    assert!(store.end_grant(&end(Some(&lease))).await.expect("end"));
    // Ending twice does nothing (and writes no second event).
    assert!(!store.end_grant(&end(None)).await.expect("end again"));
    let ended = store
        .grant(&a.tenant_id, "ag_1")
        .await
        .expect("read")
        .expect("grant");
    assert_eq!(ended.status, crate::GrantStatus::Expired);
    assert_eq!(ended.ended_at, Some(1_002));
    assert_eq!(ended.last_error, None);
    assert_eq!(
        store
            .job(&expiry.id)
            .await
            .expect("job")
            .expect("job")
            .status,
        crate::JobStatus::Done
    );
    assert!(
        store
            .live_grants_on(&a.id, "g1", "u1")
            .await
            .expect("live")
            .is_empty()
    );
    let kinds: Vec<String> = store
        .list_events(&a.tenant_id, None, 0, 10)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        kinds,
        vec!["access_grant.activated", "access_grant.expired"]
    );
}

fn ending(others_active: bool, was_expiring: bool) -> Option<crate::GrantEnding> {
    Some(crate::GrantEnding {
        others_active,
        was_expiring,
    })
}

pub async fn of_two_grants_ending_at_once_the_later_removes_the_membership(store: &dyn Store) {
    let a = linked(store).await;
    for id in ["ag_a", "ag_b"] {
        let expiry = job("grant_expiry", Some(&a), 1_000);
        store
            .insert_grant(
                &grant(&a, id, &expiry.id, false),
                &expiry,
                Some(&event(&a.tenant_id, Some(&a.id), "access_grant.activated")),
            )
            .await
            .expect("grant");
    }
    // The first to end sees the other still active: the membership stays.
    assert_eq!(
        store
            .begin_grant_end("ag_a", 1_000, false)
            .await
            .expect("begin"),
        ending(true, false)
    );
    // The second sees only a grant on its way out: it removes it.
    assert_eq!(
        store
            .begin_grant_end("ag_b", 1_000, true)
            .await
            .expect("begin"),
        ending(false, false)
    );
    // A second try at ending it (after a failure) knows it began before.
    assert_eq!(
        store
            .begin_grant_end("ag_b", 1_000, true)
            .await
            .expect("begin"),
        ending(false, true)
    );
    assert_eq!(
        store
            .grant(&a.tenant_id, "ag_b")
            .await
            .expect("read")
            .expect("grant")
            .status,
        crate::GrantStatus::Expiring
    );
    let revoked = event(&a.tenant_id, Some(&a.id), "access_grant.revoked");
    let end = crate::GrantEnd {
        grant_id: "ag_b",
        to: crate::GrantStatus::Revoked,
        event: &revoked,
        lease: None,
        now: 1_001,
    };
    assert!(store.end_grant(&end).await.expect("end"));
    assert_eq!(
        store
            .begin_grant_end("ag_b", 1_002, false)
            .await
            .expect("begin"),
        None
    );
}

pub async fn revoking_a_grant_cancels_its_expiry(store: &dyn Store) {
    let a = linked(store).await;
    let expiry = job("grant_expiry", Some(&a), 5_000);
    store
        .insert_grant(
            &grant(&a, "ag_2", &expiry.id, true),
            &expiry,
            Some(&event(&a.tenant_id, Some(&a.id), "access_grant.activated")),
        )
        .await
        .expect("grant");
    let revoked = event(&a.tenant_id, Some(&a.id), "access_grant.revoked");
    let end = crate::GrantEnd {
        grant_id: "ag_2",
        to: crate::GrantStatus::Revoked,
        event: &revoked,
        lease: None,
        now: 200,
    };
    assert!(store.end_grant(&end).await.expect("revoke"));
    assert_eq!(
        store
            .job(&expiry.id)
            .await
            .expect("job")
            .expect("job")
            .status,
        crate::JobStatus::Done
    );
    assert!(
        store
            .claim_job("n1", 9_000, 10_000)
            .await
            .expect("claim")
            .is_none()
    );
    let listed = store
        .list_grants(
            &a.tenant_id,
            &crate::GrantFilter {
                status: Some(crate::GrantStatus::Revoked),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert!(listed[0].preexisting);
    assert!(
        store
            .list_grants(
                &a.tenant_id,
                &crate::GrantFilter::default(),
                Some("ag_2"),
                10
            )
            .await
            .expect("after")
            .is_empty()
    );

    // A grant the vendor refused is dropped with its job, leaving nothing.
    let refused = job("grant_expiry", Some(&a), 5_000);
    store
        .insert_grant(&grant(&a, "ag_3", &refused.id, false), &refused, None)
        .await
        .expect("grant");
    store.discard_grant("ag_3").await.expect("discard");
    assert_eq!(store.grant(&a.tenant_id, "ag_3").await.expect("read"), None);
    assert_eq!(store.job(&refused.id).await.expect("job"), None);
}

pub async fn plans_apply_once_and_go_stale_with_the_snapshot(store: &dyn Store) {
    let a = linked(store).await;
    assert_eq!(store.snapshot_state(&a.id).await.expect("state"), None);
    commit_users(store, &a, vec![user_row("u1", "active", false)], false).await;
    let state = store
        .snapshot_state(&a.id)
        .await
        .expect("state")
        .expect("synced");
    assert!(state.activity_exposed);
    let plan = |id: &str, version: i64| crate::PlanRow {
        id: id.into(),
        tenant_id: a.tenant_id.clone(),
        account_id: a.id.clone(),
        kind: "group_sync".into(),
        request_json: "{}".into(),
        changes_json: "[]".into(),
        snapshot_version: version,
        status: crate::PlanStatus::Planned,
        results_json: None,
        created_by: "key:k1".into(),
        created_at: 100,
        updated_at: 100,
        applied_at: None,
    };
    store
        .insert_plan(&plan("plan_1", state.version))
        .await
        .expect("plan");
    store
        .insert_plan(&plan("plan_2", state.version))
        .await
        .expect("plan");
    assert_eq!(
        store
            .list_plans(&a.tenant_id, None, 10)
            .await
            .expect("list")
            .len(),
        2
    );

    let claim = store
        .claim_plan(&a.tenant_id, "plan_1", 200, 0)
        .await
        .expect("claim")
        .expect("plan");
    assert!(
        matches!(claim, crate::PlanClaim::Claimed(ref p) if p.status == crate::PlanStatus::Applying)
    );
    // A second apply while the first runs is busy; once finished it replays.
    assert_eq!(
        store
            .claim_plan(&a.tenant_id, "plan_1", 201, 0)
            .await
            .expect("claim"),
        Some(crate::PlanClaim::Busy)
    );
    store
        .finish_plan("plan_1", crate::PlanStatus::Applied, "[]", 300)
        .await
        .expect("finish");
    assert!(matches!(
        store
            .claim_plan(&a.tenant_id, "plan_1", 400, 0)
            .await
            .expect("claim"),
        Some(crate::PlanClaim::Finished(_))
    ));

    // A sync that only moved activity leaves plans fresh; a real change
    // makes them stale.
    commit_users(store, &a, vec![user_row("u1", "active", false)], false).await;
    assert_eq!(
        store
            .snapshot_state(&a.id)
            .await
            .expect("state")
            .expect("synced")
            .version,
        state.version
    );
    commit_users(store, &a, vec![user_row("u2", "active", false)], true).await;
    assert!(matches!(
        store.claim_plan(&a.tenant_id, "plan_2", 500, 0).await.expect("claim"),
        Some(crate::PlanClaim::Stale { current_version }) if current_version == state.version + 1
    ));
    assert_eq!(
        store
            .claim_plan(&a.tenant_id, "plan_9", 500, 0)
            .await
            .expect("claim"),
        None
    );
}

pub async fn report_reads_join_a_tenants_accounts_by_email(store: &dyn Store) {
    let a = linked(store).await;
    let b = account(&a.tenant_id, Provider::Metabase, None);
    store.insert_account(&b).await.expect("account");
    let other = tenant("globex");
    store.insert_tenant(&other).await.expect("tenant");
    let c = account(&other.id, Provider::Mode, None);
    store.insert_account(&c).await.expect("account");
    commit_users(
        store,
        &a,
        vec![
            user_row("ada", "active", true),
            user_row("bob", "active", false),
        ],
        true,
    )
    .await;
    commit_users(
        store,
        &b,
        vec![
            user_row("ada", "inactive", false),
            user_row("cy", "active", false),
        ],
        true,
    )
    .await;
    commit_users(store, &c, vec![user_row("dee", "active", false)], true).await;

    let first = store
        .report_emails(&a.tenant_id, None, 2)
        .await
        .expect("emails");
    assert_eq!(first, vec!["ada@example.com", "bob@example.com"]);
    let rest = store
        .report_emails(&a.tenant_id, Some("bob@example.com"), 2)
        .await
        .expect("emails");
    assert_eq!(rest, vec!["cy@example.com"]);
    let rows = store
        .users_with_emails(&a.tenant_id, &first)
        .await
        .expect("users");
    let seen: Vec<(bool, String)> = rows
        .iter()
        .map(|(acct, u)| (*acct == a.id, u.user_id.clone()))
        .collect();
    assert_eq!(seen.len(), 3);
    assert!(seen.contains(&(true, "ada".into())));
    assert!(seen.contains(&(false, "ada".into())));
    assert!(seen.contains(&(true, "bob".into())));
    // Another tenant's people never show up.
    assert!(
        store
            .users_with_emails(&a.tenant_id, &["dee@example.com".into()])
            .await
            .expect("users")
            .is_empty()
    );
}

/// Instantiates every conformance case as a `#[tokio::test]` against a
/// backend. `$make` is an async expression giving a fresh, migrated store
/// behind something that derefs to it (so it can own its temp files); with
/// `optional`, it gives an `Option` of one, and `None` (a backend that was
/// not asked for, which `$make` says) passes every case without running it.
#[macro_export]
macro_rules! store_conformance_suite {
    (optional $make:expr) => {
        $crate::store_conformance_suite!(@with optional $make);
    };
    ($make:expr) => {
        $crate::store_conformance_suite!(@with required $make);
    };
    (@with $mode:ident $make:expr) => {
        $crate::store_conformance_suite!(@cases $mode $make;
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
            jobs_are_claimed_once_and_reclaimed_after_their_lease,
            one_sync_per_account_is_queued_at_a_time,
            sync_commits_are_atomic_and_need_the_lease,
            large_sync_commits_store_every_user_as_given,
            cached_users_page_by_keyset_with_filters,
            events_read_in_order_per_tenant,
            webhook_deliveries_queue_claim_and_retry,
            grants_end_once_with_their_job_and_event,
            revoking_a_grant_cancels_its_expiry,
            of_two_grants_ending_at_once_the_later_removes_the_membership,
            plans_apply_once_and_go_stale_with_the_snapshot,
            report_reads_join_a_tenants_accounts_by_email,
            vendor_sends_keep_a_sliding_window,
        );
    };
    (@cases required $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store = $make.await;
                $crate::conformance::$case(&*store).await;
            }
        )*
    };
    (@cases optional $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                if let Some(store) = $make.await {
                    $crate::conformance::$case(&*store).await;
                }
            }
        )*
    };
}
