//! The Metabase connector of the unified User Directory, over real HTTP
//! against the in-process Metabase simulator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rollcall_connectors::RetryPolicy;
use rollcall_connectors::metabase::MetabaseDirectory;
use rollcall_connectors::{
    AccountConfig, Added, BaseUrl, ConnectorError, Credentials, Directory, DirectoryError,
    DirectorySnapshot, GroupPatch, KnownFingerprints, KnownUsers, LinkedAccount, Listed,
    MembershipQuery, MetabaseConfig, NewGroup, NewUser, PageRequest, ProgressSink,
    SnapshotProgress, UserPatch, UserQuery, VendorGuards, VendorHttp, VendorRequest,
};
use rollcall_core::unified::{GroupMembership, RoleScope, RoleType, User, UserStatus};
use rollcall_core::{Provider, SystemClock};
use rollcall_sim_metabase::{MetabaseSim, MetabaseSimConfig, RunningMetabaseSim};
use serde_json::{Value, json};

const LAST_ADMIN: &str = "You cannot remove the last member of the 'Admin' group!";

async fn start(users: usize) -> RunningMetabaseSim {
    MetabaseSim::new(MetabaseSimConfig {
        users,
        login_throttle: false,
        ..MetabaseSimConfig::default()
    })
    .unwrap()
    .start("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap()
}

fn account(sim: &RunningMetabaseSim, credentials: Value) -> LinkedAccount {
    LinkedAccount::new(
        "acct_test#1",
        AccountConfig::Metabase(MetabaseConfig {
            base_url: BaseUrl::parse(&sim.base_url()).unwrap(),
            session_max_age_minutes: None,
            rate_limit: None,
            sync_interval_minutes: None,
        }),
        Credentials::parse(Provider::Metabase, credentials).unwrap(),
        VendorHttp::new(Duration::from_secs(30)).unwrap(),
        // No retries: these tests check how each vendor answer maps.
        &VendorGuards::new(RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }),
        Arc::new(SystemClock),
    )
}

fn admin_key(sim: &RunningMetabaseSim) -> LinkedAccount {
    account(sim, json!({ "api_key": sim.fixtures().admin_api_key }))
}

fn admin_session(sim: &RunningMetabaseSim) -> LinkedAccount {
    let f = sim.fixtures();
    account(
        sim,
        json!({ "username": f.admin_email, "password": f.admin_password }),
    )
}

fn page(limit: u32, position: Option<String>) -> PageRequest {
    PageRequest {
        position,
        limit,
        include_remote_data: false,
    }
}

/// The vendor's own answer, for comparing against.
async fn raw(account: &LinkedAccount, path: &str) -> Value {
    let answer = account.exchange(VendorRequest::get(path)).await.unwrap();
    assert!(answer.is_success(), "{path}: {}", answer.text());
    answer.json().unwrap()
}

async fn add_fault(sim: &RunningMetabaseSim, spec: &str) {
    let response = reqwest::Client::new()
        .post(format!("{}/_sim/faults", sim.base_url()))
        .json(&json!({ "spec": spec }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

/// The simulator's check of Metabase's state rules (spec §9).
async fn assert_invariants(sim: &RunningMetabaseSim) {
    let report: Value = reqwest::get(format!("{}/_sim/metabase/invariants", sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["ok"], json!(true), "{report}");
}

/// Walks every page of a user query; asserts each page respects the limit.
async fn walk_users(dir: &MetabaseDirectory<'_>, query: &UserQuery, limit: u32) -> Vec<User> {
    let mut all = Vec::new();
    let mut position = None;
    loop {
        let got = dir.list_users(query, &page(limit, position)).await.unwrap();
        assert!(got.items.len() <= limit as usize);
        assert!(!got.is_partial_response);
        all.extend(got.items);
        match got.next_position {
            Some(next) => position = Some(next),
            None => return all,
        }
    }
}

fn ids(users: &[User]) -> Vec<String> {
    users.iter().map(|u| u.id.clone()).collect()
}

fn assert_conflict_with(err: DirectoryError, vendor_text: &str) {
    match err {
        DirectoryError::Conflict { message, remote } => {
            assert!(message.contains(vendor_text), "{message}");
            let remote = remote.expect("the vendor's answer");
            assert_eq!(remote.status, 400);
            assert!(remote.summary().contains(vendor_text), "{remote:?}");
        }
        other => panic!("expected a conflict carrying `{vendor_text}`, got {other:?}"),
    }
}

fn assert_not_found(err: DirectoryError) {
    assert!(
        matches!(err, DirectoryError::NotFound { .. }),
        "expected NotFound, got {err:?}"
    );
}

#[tokio::test]
async fn users_map_field_by_field() {
    let sim = start(50).await;
    let account = admin_key(&sim);
    let dir = MetabaseDirectory::new(&account);
    assert_eq!(dir.provider(), Provider::Metabase);

    let vendor = raw(&account, "/api/user?status=active").await;
    let listed = walk_users(&dir, &UserQuery::default(), 1000).await;
    assert_eq!(listed.len() as u64, vendor["total"].as_u64().unwrap());
    // API-key users never appear.
    assert!(
        listed
            .iter()
            .all(|u| !u.email.as_deref().unwrap().ends_with("@api-key.invalid"))
    );

    let ada = listed.iter().find(|u| u.id == "1").unwrap();
    let v = vendor["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == 1)
        .unwrap();
    assert_eq!(ada.username.as_deref(), Some("admin@example.com"));
    assert_eq!(ada.email.as_deref(), Some("admin@example.com"));
    assert_eq!(ada.first_name.as_deref(), Some("Ada"));
    assert_eq!(ada.last_name.as_deref(), Some("Admin"));
    assert_eq!(ada.name.as_deref(), Some("Ada Admin"));
    assert_eq!(ada.status, UserStatus::Active);
    assert!(ada.is_admin);
    assert_eq!(ada.roles.len(), 1);
    assert_eq!(ada.roles[0].id, "admin");
    let groups = ada.groups.as_ref().unwrap();
    let names: BTreeSet<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["Administrators", "All Users"]));
    assert_eq!(ada.last_active_at.as_deref(), v["last_login"].as_str());
    assert_eq!(ada.created_at.as_deref(), v["date_joined"].as_str());
    assert_eq!(ada.updated_at.as_deref(), v["updated_at"].as_str());
    assert_eq!(ada.remote_data, None);

    // The user without names: name is Metabase's common_name (the email).
    let nameless = dir.get_user("6", false).await.unwrap();
    assert_eq!(nameless.first_name, None);
    assert_eq!(nameless.name, nameless.email);
    // A never-logged-in user.
    assert_eq!(dir.get_user("7", false).await.unwrap().last_active_at, None);

    // remote_data on request: the vendor's own list item.
    let with_remote = dir
        .list_users(
            &UserQuery::default(),
            &PageRequest {
                position: None,
                limit: 3,
                include_remote_data: true,
            },
        )
        .await
        .unwrap();
    let first = &with_remote.items[0];
    let remote = first.remote_data.as_ref().unwrap();
    assert_eq!(remote["id"].to_string(), first.id);
    assert!(remote["group_ids"].is_array());

    // get: the member fixture with its custom group, named.
    let maya = dir.get_user("2", true).await.unwrap();
    assert_eq!(maya.email.as_deref(), Some("member@example.com"));
    assert!(!maya.is_admin);
    assert_eq!(maya.roles[0].id, "member");
    let custom: Vec<_> = maya
        .groups
        .as_ref()
        .unwrap()
        .iter()
        .filter(|g| g.name != "All Users")
        .collect();
    assert_eq!(custom.len(), 1);
    let group = dir.get_group(&custom[0].id, false).await.unwrap();
    assert_eq!(group.name, custom[0].name);
    assert!(
        maya.remote_data.as_ref().unwrap()["user_group_memberships"].is_array(),
        "get's remote_data is GET /api/user/:id"
    );

    // The seeded deactivated user.
    let gone = dir.get_user("4", false).await.unwrap();
    assert_eq!(gone.status, UserStatus::Inactive);

    // Unknown and malformed ids.
    match dir.get_user("999999", false).await.unwrap_err() {
        DirectoryError::NotFound { remote, .. } => assert_eq!(remote.unwrap().status, 404),
        other => panic!("{other:?}"),
    }
    assert_not_found(dir.get_user("not-a-number", false).await.unwrap_err());
    assert_not_found(dir.get_user("0", false).await.unwrap_err());
}

#[tokio::test]
async fn user_filters() {
    let sim = start(200).await;
    let account = admin_key(&sim);
    let dir = MetabaseDirectory::new(&account);

    let inactive_total = raw(&account, "/api/user?status=deactivated&limit=1").await["total"]
        .as_u64()
        .unwrap();
    let inactive = walk_users(
        &dir,
        &UserQuery {
            status: Some(UserStatus::Inactive),
            ..UserQuery::default()
        },
        50,
    )
    .await;
    assert_eq!(inactive.len() as u64, inactive_total);
    assert!(inactive.iter().all(|u| u.status == UserStatus::Inactive));
    assert!(inactive.iter().any(|u| u.id == "4"));

    // No invited state in Metabase: nobody.
    let invited = dir
        .list_users(
            &UserQuery {
                status: Some(UserStatus::Invited),
                ..UserQuery::default()
            },
            &page(100, None),
        )
        .await
        .unwrap();
    assert!(invited.items.is_empty() && invited.next_position.is_none());

    // Email: exact and case-insensitive, not Metabase's substring search.
    let by_email = |email: &str| UserQuery {
        email: Some(email.into()),
        ..UserQuery::default()
    };
    let maya = walk_users(&dir, &by_email("MEMBER@Example.com"), 10).await;
    assert_eq!(ids(&maya), vec!["2"]);
    assert!(
        walk_users(&dir, &by_email("ember@example.com"), 10)
            .await
            .is_empty()
    );
    assert!(
        walk_users(&dir, &by_email("example.com"), 10)
            .await
            .is_empty()
    );
    // An inactive user's email only with status=inactive.
    let gone_email = dir.get_user("4", false).await.unwrap().email.unwrap();
    assert!(
        walk_users(&dir, &by_email(&gone_email), 10)
            .await
            .is_empty()
    );
    let gone = walk_users(
        &dir,
        &UserQuery {
            status: Some(UserStatus::Inactive),
            email: Some(gone_email.to_uppercase()),
            ..UserQuery::default()
        },
        10,
    )
    .await;
    assert_eq!(ids(&gone), vec!["4"]);

    // Admins through the Administrators group, non-admins client-side.
    let everyone = walk_users(&dir, &UserQuery::default(), 1000).await;
    let admin_ids: BTreeSet<String> = everyone
        .iter()
        .filter(|u| u.is_admin)
        .map(|u| u.id.clone())
        .collect();
    assert!(admin_ids.contains("1") && admin_ids.contains("3"));
    let admins = walk_users(
        &dir,
        &UserQuery {
            is_admin: Some(true),
            ..UserQuery::default()
        },
        1,
    )
    .await;
    assert_eq!(ids(&admins).into_iter().collect::<BTreeSet<_>>(), admin_ids);
    let members = walk_users(
        &dir,
        &UserQuery {
            is_admin: Some(false),
            ..UserQuery::default()
        },
        7,
    )
    .await;
    assert_eq!(members.len() + admins.len(), everyone.len());
    assert!(members.iter().all(|u| !u.is_admin));
    let member_ids: HashSet<String> = ids(&members).into_iter().collect();
    assert_eq!(member_ids.len(), members.len(), "no duplicates");

    // Group filter, alone and with is_admin.
    let group = everyone
        .iter()
        .find(|u| u.id == "2")
        .unwrap()
        .groups
        .as_ref()
        .unwrap()
        .iter()
        .find(|g| g.name != "All Users")
        .unwrap()
        .clone();
    let in_group = walk_users(
        &dir,
        &UserQuery {
            group_id: Some(group.id.clone()),
            ..UserQuery::default()
        },
        10,
    )
    .await;
    let expected: BTreeSet<String> = everyone
        .iter()
        .filter(|u| u.groups.as_ref().unwrap().contains(&group))
        .map(|u| u.id.clone())
        .collect();
    assert!(expected.len() > 1);
    assert_eq!(
        ids(&in_group).into_iter().collect::<BTreeSet<_>>(),
        expected
    );
    let admins_in_group = walk_users(
        &dir,
        &UserQuery {
            group_id: Some(group.id.clone()),
            is_admin: Some(true),
            ..UserQuery::default()
        },
        10,
    )
    .await;
    assert!(
        admins_in_group
            .iter()
            .all(|u| u.is_admin && expected.contains(&u.id))
    );
    assert!(
        walk_users(
            &dir,
            &UserQuery {
                group_id: Some("nope".into()),
                ..UserQuery::default()
            },
            10
        )
        .await
        .is_empty()
    );

    // A position that is not one.
    assert!(matches!(
        dir.list_users(&UserQuery::default(), &page(10, Some("x".into())))
            .await
            .unwrap_err(),
        DirectoryError::Invalid { .. }
    ));
}

#[tokio::test]
async fn paging_walks_ten_thousand_users_exactly_once() {
    let sim = start(10_000).await;
    let account = admin_key(&sim);
    let dir = MetabaseDirectory::new(&account);
    let active_total = raw(&account, "/api/user?status=active&limit=1").await["total"]
        .as_u64()
        .unwrap() as usize;
    let inactive_total = raw(&account, "/api/user?status=deactivated&limit=1").await["total"]
        .as_u64()
        .unwrap() as usize;
    assert_eq!(active_total + inactive_total, 10_000);

    let mut reference: Option<Vec<String>> = None;
    for limit in [1000, 100, 7] {
        let users = walk_users(&dir, &UserQuery::default(), limit).await;
        let walked = ids(&users);
        assert_eq!(walked.len(), active_total, "limit {limit}");
        let unique: HashSet<&String> = walked.iter().collect();
        assert_eq!(unique.len(), active_total, "limit {limit}: duplicates");
        assert!(users.iter().all(|u| u.status == UserStatus::Active));
        match &reference {
            None => reference = Some(walked),
            Some(first) => assert_eq!(first, &walked, "limit {limit}: same order"),
        }
    }

    let inactive_query = UserQuery {
        status: Some(UserStatus::Inactive),
        ..UserQuery::default()
    };
    for limit in [1000, 7] {
        let users = walk_users(&dir, &inactive_query, limit).await;
        let unique: HashSet<String> = ids(&users).into_iter().collect();
        assert_eq!(users.len(), inactive_total, "limit {limit}");
        assert_eq!(unique.len(), inactive_total, "limit {limit}: duplicates");
        assert!(users.iter().all(|u| u.status == UserStatus::Inactive));
        assert!(unique.is_disjoint(&reference.iter().flatten().cloned().collect()));
    }
}

#[tokio::test]
async fn create_user_and_duplicate_email() {
    let sim = start(30).await;
    let account = admin_key(&sim);
    let dir = MetabaseDirectory::new(&account);
    let custom = dir
        .list_groups(&page(100, None))
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|g| !g.is_builtin)
        .unwrap();

    let created = dir
        .create_user(&NewUser {
            email: "Grace.Hopper@Example.com".into(),
            first_name: Some("Grace".into()),
            last_name: Some("Hopper".into()),
            is_admin: true,
            group_ids: vec![custom.id.clone()],
            message: Some("ignored by Metabase".into()),
        })
        .await
        .unwrap();
    assert_eq!(created.email.as_deref(), Some("grace.hopper@example.com"));
    assert_eq!(created.name.as_deref(), Some("Grace Hopper"));
    assert_eq!(created.status, UserStatus::Active);
    assert!(created.is_admin);
    let names: BTreeSet<String> = created
        .groups
        .as_ref()
        .unwrap()
        .iter()
        .map(|g| g.name.clone())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "All Users".to_owned(),
            "Administrators".to_owned(),
            custom.name.clone()
        ])
    );
    assert_eq!(dir.get_user(&created.id, false).await.unwrap(), created);

    let plain = dir
        .create_user(&NewUser {
            email: "linus@example.com".into(),
            ..NewUser::default()
        })
        .await
        .unwrap();
    assert!(!plain.is_admin);
    assert_eq!(plain.first_name, None);
    assert_eq!(plain.groups.as_ref().unwrap().len(), 1);

    // Duplicate email, any case: a conflict carrying Metabase's answer.
    match dir
        .create_user(&NewUser {
            email: "GRACE.hopper@example.com".into(),
            ..NewUser::default()
        })
        .await
        .unwrap_err()
    {
        DirectoryError::Conflict { message, remote } => {
            assert!(
                message.contains("Email address already in use."),
                "{message}"
            );
            assert_eq!(
                remote.unwrap().body,
                json!({"errors": {"email": "Email address already in use."}})
            );
        }
        other => panic!("{other:?}"),
    }

    // Bad input is Invalid, with the vendor's words when it answered.
    assert!(matches!(
        dir.create_user(&NewUser {
            email: "not-an-email".into(),
            ..NewUser::default()
        })
        .await
        .unwrap_err(),
        DirectoryError::Invalid {
            remote: Some(_),
            ..
        }
    ));
    assert!(matches!(
        dir.create_user(&NewUser {
            email: "x@example.com".into(),
            group_ids: vec!["4242".into()],
            ..NewUser::default()
        })
        .await
        .unwrap_err(),
        DirectoryError::Invalid { .. }
    ));
}

#[tokio::test]
async fn update_and_delete_users() {
    let sim = start(30).await;
    let account = admin_key(&sim);
    let dir = MetabaseDirectory::new(&account);
    let user = dir
        .create_user(&NewUser {
            email: "ken@example.com".into(),
            first_name: Some("Ken".into()),
            ..NewUser::default()
        })
        .await
        .unwrap();

    let renamed = dir
        .update_user(
            &user.id,
            &UserPatch {
                first_name: Some("Kenneth".into()),
                last_name: Some("Thompson".into()),
                email: Some("ken.thompson@example.com".into()),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name.as_deref(), Some("Kenneth Thompson"));
    assert_eq!(renamed.email.as_deref(), Some("ken.thompson@example.com"));

    let promoted = dir
        .update_user(
            &user.id,
            &UserPatch {
                is_admin: Some(true),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(promoted.is_admin);
    assert_eq!(promoted.roles[0].id, "admin");
    assert!(
        promoted
            .groups
            .as_ref()
            .unwrap()
            .iter()
            .any(|g| g.name == "Administrators")
    );

    // Already active: fine, the user comes back unchanged.
    let same = dir
        .update_user(
            &user.id,
            &UserPatch {
                status: Some(UserStatus::Active),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(same.is_admin);

    let deactivated = dir
        .update_user(
            &user.id,
            &UserPatch {
                status: Some(UserStatus::Inactive),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(deactivated.status, UserStatus::Inactive);

    // A deactivated user cannot be edited without reactivating it.
    assert!(matches!(
        dir.update_user(
            &user.id,
            &UserPatch {
                last_name: Some("T".into()),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap_err(),
        DirectoryError::Conflict { .. }
    ));

    // Reactivating (Metabase clears is_superuser) and editing in one go.
    let back = dir
        .update_user(
            &user.id,
            &UserPatch {
                status: Some(UserStatus::Active),
                last_name: Some("T".into()),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(back.status, UserStatus::Active);
    assert_eq!(back.last_name.as_deref(), Some("T"));
    assert!(!back.is_admin);

    assert!(matches!(
        dir.update_user(
            &user.id,
            &UserPatch {
                status: Some(UserStatus::Invited),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap_err(),
        DirectoryError::Invalid { .. }
    ));
    // Another user's email.
    assert_conflict_with(
        dir.update_user(
            &user.id,
            &UserPatch {
                email: Some("Admin@example.com".into()),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap_err(),
        "Email address already associated to another user.",
    );
    assert_not_found(
        dir.update_user("999999", &UserPatch::default())
            .await
            .unwrap_err(),
    );

    // Delete deactivates; deleting again is fine; unknown is NotFound.
    dir.delete_user(&user.id).await.unwrap();
    assert_eq!(
        dir.get_user(&user.id, false).await.unwrap().status,
        UserStatus::Inactive
    );
    dir.delete_user(&user.id).await.unwrap();
    assert_not_found(dir.delete_user("999999").await.unwrap_err());
    assert_not_found(dir.delete_user("abc").await.unwrap_err());
    assert_invariants(&sim).await;
}

#[tokio::test]
async fn the_last_admin_is_a_conflict_with_metabases_words() {
    let sim = start(10).await;
    // A session of the admin fixture: the admin API key's user is demoted below.
    let account = admin_session(&sim);
    let dir = MetabaseDirectory::new(&account);
    let groups = dir.list_groups(&page(100, None)).await.unwrap().items;
    let admins = groups
        .iter()
        .find(|g| g.is_builtin && g.name == "Administrators")
        .unwrap();
    let members = dir
        .list_group_memberships(
            &MembershipQuery {
                group_id: Some(admins.id.clone()),
                user_id: None,
            },
            &page(1000, None),
        )
        .await
        .unwrap()
        .items;
    assert!(members.len() >= 3, "two admins and the admin key's user");
    for m in members.iter().filter(|m| m.user_id != "1") {
        let demoted = dir
            .update_user(
                &m.user_id,
                &UserPatch {
                    is_admin: Some(false),
                    ..UserPatch::default()
                },
            )
            .await
            .unwrap();
        assert!(!demoted.is_admin);
    }

    let demote = UserPatch {
        is_admin: Some(false),
        ..UserPatch::default()
    };
    assert_conflict_with(dir.update_user("1", &demote).await.unwrap_err(), LAST_ADMIN);
    let deactivate = UserPatch {
        status: Some(UserStatus::Inactive),
        ..UserPatch::default()
    };
    assert_conflict_with(
        dir.update_user("1", &deactivate).await.unwrap_err(),
        LAST_ADMIN,
    );
    assert_conflict_with(dir.delete_user("1").await.unwrap_err(), LAST_ADMIN);
    assert_conflict_with(
        dir.remove_group_membership(&GroupMembership::id_for(&admins.id, "1"))
            .await
            .unwrap_err(),
        LAST_ADMIN,
    );
    let me = dir.me().await.unwrap();
    assert!(me.is_admin);
    assert_eq!(me.kind, "user");
    assert_invariants(&sim).await;
}

#[tokio::test]
async fn groups() {
    let sim = start(100).await;
    let account = admin_key(&sim);
    let dir = MetabaseDirectory::new(&account);
    let vendor = raw(&account, "/api/permissions/group").await;
    let vendor = vendor.as_array().unwrap();

    // Paging: every group once, in Metabase's order, no trailing empty page.
    let mut walked = Vec::new();
    let mut position = None;
    loop {
        let got = dir.list_groups(&page(2, position)).await.unwrap();
        assert!(!got.items.is_empty() && got.items.len() <= 2);
        walked.extend(got.items);
        match got.next_position {
            Some(next) => position = Some(next),
            None => break,
        }
    }
    let vendor_ids: Vec<String> = vendor.iter().map(|g| g["id"].to_string()).collect();
    assert_eq!(
        walked.iter().map(|g| g.id.clone()).collect::<Vec<_>>(),
        vendor_ids
    );
    for (group, v) in walked.iter().zip(vendor) {
        assert_eq!(group.name, v["name"].as_str().unwrap());
        assert_eq!(group.member_count, v["member_count"].as_u64());
        assert_eq!(group.is_builtin, !v["magic_group_type"].is_null());
        assert_eq!(group.description, None);
    }
    let builtin: BTreeSet<&str> = walked
        .iter()
        .filter(|g| g.is_builtin)
        .map(|g| g.name.as_str())
        .collect();
    assert_eq!(builtin, BTreeSet::from(["Administrators", "All Users"]));
    let all_users = walked.iter().find(|g| g.name == "All Users").unwrap();
    let admins = walked.iter().find(|g| g.name == "Administrators").unwrap();

    // get: the count from its members, same as the list's.
    let fetched = dir.get_group(&all_users.id, true).await.unwrap();
    assert_eq!(fetched.member_count, all_users.member_count);
    assert!(fetched.remote_data.unwrap()["members"].is_array());
    assert_not_found(dir.get_group("424242", false).await.unwrap_err());
    assert_not_found(dir.get_group("x", false).await.unwrap_err());

    // create / update / delete.
    let created = dir
        .create_group(&NewGroup {
            name: "Data Team".into(),
            description: None,
        })
        .await
        .unwrap();
    assert_eq!(created.name, "Data Team");
    assert_eq!(created.member_count, Some(0));
    assert!(!created.is_builtin);
    assert_conflict_with(
        dir.create_group(&NewGroup {
            name: "data team".into(),
            description: None,
        })
        .await
        .unwrap_err(),
        "A group with that name already exists.",
    );
    let described = NewGroup {
        name: "Described".into(),
        description: Some("has a description".into()),
    };
    match dir.create_group(&described).await.unwrap_err() {
        DirectoryError::Unsupported(message) => {
            assert!(message.contains("no description"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        dir.create_group(&NewGroup {
            name: "  ".into(),
            description: None
        })
        .await
        .unwrap_err(),
        DirectoryError::Invalid { .. }
    ));

    let renamed = dir
        .update_group(
            &created.id,
            &GroupPatch {
                name: Some("Data Platform".into()),
                description: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "Data Platform");
    assert_eq!(renamed.id, created.id);
    assert!(matches!(
        dir.update_group(
            &created.id,
            &GroupPatch {
                name: None,
                description: Some("x".into())
            }
        )
        .await
        .unwrap_err(),
        DirectoryError::Unsupported(_)
    ));
    assert_conflict_with(
        dir.update_group(
            &admins.id,
            &GroupPatch {
                name: Some("Bosses".into()),
                description: None,
            },
        )
        .await
        .unwrap_err(),
        "You cannot edit or delete the 'Administrators' permissions group!",
    );
    assert_not_found(
        dir.update_group(
            "424242",
            &GroupPatch {
                name: Some("Ghost".into()),
                description: None,
            },
        )
        .await
        .unwrap_err(),
    );
    assert_conflict_with(
        dir.delete_group(&all_users.id).await.unwrap_err(),
        "You cannot edit or delete the 'All Users' permissions group!",
    );

    dir.delete_group(&created.id).await.unwrap();
    assert_not_found(dir.get_group(&created.id, false).await.unwrap_err());
    assert_not_found(dir.delete_group(&created.id).await.unwrap_err());
    assert_invariants(&sim).await;
}

#[tokio::test]
async fn group_memberships() {
    let sim = start(60).await;
    let account = admin_key(&sim);
    let dir = MetabaseDirectory::new(&account);

    // The walk equals Metabase's membership map, flattened and sorted.
    let vendor = raw(&account, "/api/permissions/membership").await;
    let mut expected: Vec<(u64, u64)> = vendor
        .as_object()
        .unwrap()
        .values()
        .flat_map(|ms| ms.as_array().unwrap().iter())
        .map(|m| {
            (
                m["group_id"].as_u64().unwrap(),
                m["user_id"].as_u64().unwrap(),
            )
        })
        .collect();
    expected.sort_unstable();
    let mut walked = Vec::new();
    let mut position = None;
    loop {
        let got = dir
            .list_group_memberships(&MembershipQuery::default(), &page(13, position))
            .await
            .unwrap();
        assert!(got.items.len() <= 13);
        walked.extend(got.items);
        match got.next_position {
            Some(next) => position = Some(next),
            None => break,
        }
    }
    let walked_pairs: Vec<(u64, u64)> = walked
        .iter()
        .map(|m| (m.group_id.parse().unwrap(), m.user_id.parse().unwrap()))
        .collect();
    assert_eq!(walked_pairs, expected);
    assert!(
        walked
            .iter()
            .all(|m| m.id == format!("{}:{}", m.group_id, m.user_id) && m.created_at.is_none())
    );

    // Filters.
    let of_user = dir
        .list_group_memberships(
            &MembershipQuery {
                user_id: Some("2".into()),
                group_id: None,
            },
            &page(100, None),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(of_user.len(), 2, "All Users and the first custom group");
    let custom = of_user.iter().find(|m| m.group_id != "1").unwrap();
    let in_group = dir
        .list_group_memberships(
            &MembershipQuery {
                group_id: Some(custom.group_id.clone()),
                user_id: None,
            },
            &page(1000, None),
        )
        .await
        .unwrap()
        .items;
    assert!(in_group.iter().all(|m| m.group_id == custom.group_id));
    assert!(in_group.iter().any(|m| m.user_id == "2"));
    assert!(
        dir.list_group_memberships(
            &MembershipQuery {
                user_id: Some("someone".into()),
                group_id: None,
            },
            &page(100, None),
        )
        .await
        .unwrap()
        .items
        .is_empty()
    );

    // Add: created, then idempotent.
    let group = dir
        .create_group(&NewGroup {
            name: "Auditors".into(),
            description: None,
        })
        .await
        .unwrap();
    let (membership, added) = dir.add_group_membership(&group.id, "2").await.unwrap();
    assert_eq!(added, Added::Created);
    assert_eq!(membership.id, format!("{}:2", group.id));
    let (again, added) = dir.add_group_membership(&group.id, "2").await.unwrap();
    assert_eq!(added, Added::AlreadyPresent);
    assert_eq!(again, membership);
    assert_eq!(
        dir.get_group(&group.id, false).await.unwrap().member_count,
        Some(1)
    );
    let maya = dir.get_user("2", false).await.unwrap();
    assert!(
        maya.groups
            .unwrap()
            .iter()
            .any(|g| g.id == group.id && g.name == "Auditors")
    );

    // Unknown user or group.
    assert_not_found(
        dir.add_group_membership(&group.id, "999999")
            .await
            .unwrap_err(),
    );
    assert_not_found(dir.add_group_membership("424242", "2").await.unwrap_err());
    assert_not_found(dir.add_group_membership("x", "2").await.unwrap_err());

    // Remove; a membership that is not there is NotFound.
    dir.remove_group_membership(&membership.id).await.unwrap();
    assert_not_found(
        dir.remove_group_membership(&membership.id)
            .await
            .unwrap_err(),
    );
    assert_not_found(dir.remove_group_membership("nocolon").await.unwrap_err());
    assert_not_found(dir.remove_group_membership("a:b").await.unwrap_err());
    assert_eq!(
        dir.get_group(&group.id, false).await.unwrap().member_count,
        Some(0)
    );

    // All Users cannot be left by hand.
    let all_users = dir
        .list_groups(&page(100, None))
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|g| g.name == "All Users")
        .unwrap();
    assert_conflict_with(
        dir.remove_group_membership(&GroupMembership::id_for(&all_users.id, "2"))
            .await
            .unwrap_err(),
        "You cannot add or remove users to/from the 'All Users' group.",
    );
    // Everyone is in it already, so an add there is idempotent.
    assert_eq!(
        dir.add_group_membership(&all_users.id, "2")
            .await
            .unwrap()
            .1,
        Added::AlreadyPresent
    );

    // Adding to Administrators makes an admin; removing it takes that away.
    let admins = dir
        .list_groups(&page(100, None))
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|g| g.name == "Administrators")
        .unwrap();
    let (made, _) = dir.add_group_membership(&admins.id, "2").await.unwrap();
    assert!(dir.get_user("2", false).await.unwrap().is_admin);
    dir.remove_group_membership(&made.id).await.unwrap();
    assert!(!dir.get_user("2", false).await.unwrap().is_admin);
    assert_invariants(&sim).await;
}

#[tokio::test]
async fn roles_and_me() {
    let sim = start(10).await;
    let key = admin_key(&sim);
    let dir = MetabaseDirectory::new(&key);

    let roles = dir.list_roles().await.unwrap();
    let ids: Vec<&str> = roles.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec!["admin", "member", "group_manager"]);
    let manager = dir.get_role("group_manager").await.unwrap();
    assert_eq!(manager.role_type, RoleType::GroupManager);
    assert_eq!(manager.applicable_in, RoleScope::Group);
    let admin = dir.get_role("admin").await.unwrap();
    assert_eq!(
        (admin.role_type, admin.applicable_in),
        (RoleType::Admin, RoleScope::Workspace)
    );
    assert_not_found(dir.get_role("owner").await.unwrap_err());

    let me = dir.me().await.unwrap();
    assert_eq!(me.kind, "api_key");
    assert!(me.is_admin);
    assert!(me.email.as_deref().unwrap().ends_with("@api-key.invalid"));
    assert_eq!(me.name.as_deref(), Some("Rollcall admin"));
    assert_eq!(me.remote_data, None);

    let session = admin_session(&sim);
    let me = MetabaseDirectory::new(&session).me().await.unwrap();
    assert_eq!(me.kind, "user");
    assert_eq!(me.id, "1");
    assert_eq!(me.username.as_deref(), Some("admin@example.com"));
    assert_eq!(me.name.as_deref(), Some("Ada Admin"));
    assert!(me.is_admin);
}

#[tokio::test]
async fn vendor_failures() {
    let sim = start(10).await;
    let key = admin_key(&sim);
    let dir = MetabaseDirectory::new(&key);

    // A malformed body is a BadResponse, never a panic.
    add_fault(&sim, "malformed@next=1@/api/user").await;
    let err = dir
        .list_users(&UserQuery::default(), &page(10, None))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DirectoryError::Connector(ConnectorError::BadResponse(_))
        ),
        "{err:?}"
    );
    add_fault(&sim, "malformed@next=1@/api/permissions/membership").await;
    assert!(matches!(
        dir.list_group_memberships(&MembershipQuery::default(), &page(10, None))
            .await
            .unwrap_err(),
        DirectoryError::Connector(ConnectorError::BadResponse(_))
    ));
    add_fault(&sim, "truncate@next=1@/api/permissions/group").await;
    assert!(matches!(
        dir.list_groups(&page(10, None)).await.unwrap_err(),
        DirectoryError::Connector(ConnectorError::BadResponse(_))
    ));
    // Back to normal.
    assert!(
        !dir.list_users(&UserQuery::default(), &page(10, None))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // 5xx: the vendor's failure, with its answer.
    add_fault(&sim, "503@next=1@/api/user").await;
    match dir.get_user("1", false).await.unwrap_err() {
        DirectoryError::Connector(ConnectorError::Vendor(remote)) => {
            assert_eq!(remote.status, 503);
        }
        other => panic!("{other:?}"),
    }

    // 403: a credential that is not a Metabase admin.
    let member = account(&sim, json!({ "api_key": sim.fixtures().member_api_key }));
    match MetabaseDirectory::new(&member)
        .list_users(&UserQuery::default(), &page(10, None))
        .await
        .unwrap_err()
    {
        DirectoryError::Connector(ConnectorError::Vendor(remote)) => {
            assert_eq!(remote.status, 403);
            assert_eq!(remote.body, json!("You don't have permissions to do that."));
        }
        other => panic!("{other:?}"),
    }
    // It can still say who it is.
    let me = MetabaseDirectory::new(&member).me().await.unwrap();
    assert_eq!((me.kind.as_str(), me.is_admin), ("api_key", false));

    // 401: refused credentials.
    let wrong = account(
        &sim,
        json!({ "api_key": "mb_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" }),
    );
    assert!(matches!(
        MetabaseDirectory::new(&wrong).me().await.unwrap_err(),
        DirectoryError::Connector(ConnectorError::AuthRejected(_))
    ));
}

// ---- snapshots -------------------------------------------------------------------------

/// Every progress report, in order.
#[derive(Default)]
struct Progress(Mutex<Vec<SnapshotProgress>>);

impl ProgressSink for Progress {
    fn report(&self, progress: SnapshotProgress) {
        self.0.lock().unwrap().push(progress);
    }
}

async fn sim_control(sim: &RunningMetabaseSim, method: reqwest::Method, path: &str) -> Value {
    let response = reqwest::Client::new()
        .request(method, format!("{}{path}", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{path}");
    response.json().await.unwrap_or(Value::Null)
}

/// The snapshot is the vendor's directory as Metabase itself lists it.
async fn assert_is_the_vendors(account: &LinkedAccount, snap: &DirectorySnapshot) {
    let listed = raw(account, "/api/user?status=all").await;
    let mut vendor_users: Vec<&Value> = listed["data"].as_array().unwrap().iter().collect();
    vendor_users.sort_by_key(|u| u["id"].as_u64().unwrap());
    assert_eq!(snap.users.len(), vendor_users.len());
    assert_eq!(snap.users.len() as u64, listed["total"].as_u64().unwrap());
    let mut statuses = BTreeSet::new();
    for (user, v) in snap.users.iter().zip(&vendor_users) {
        assert_eq!(user.id, v["id"].to_string());
        assert_eq!(user.email.as_deref(), v["email"].as_str());
        assert_eq!(user.username.as_deref(), v["email"].as_str());
        assert_eq!(user.first_name.as_deref(), v["first_name"].as_str());
        assert_eq!(user.last_name.as_deref(), v["last_name"].as_str());
        assert_eq!(user.name.as_deref(), v["common_name"].as_str());
        assert_eq!(user.is_admin, v["is_superuser"] == true);
        let status = if v["is_active"] == false {
            UserStatus::Inactive
        } else {
            UserStatus::Active
        };
        assert_eq!(user.status, status, "user {}", user.id);
        assert_eq!(user.last_active_at.as_deref(), v["last_login"].as_str());
        assert_eq!(user.groups, None);
        assert_eq!(user.remote_data, None);
        statuses.insert(user.status.as_str());
    }
    assert_eq!(statuses.len(), 2, "active and deactivated: {statuses:?}");

    let groups = raw(account, "/api/permissions/group").await;
    let mut vendor_groups: Vec<&Value> = groups.as_array().unwrap().iter().collect();
    vendor_groups.sort_by_key(|g| g["id"].as_u64().unwrap());
    assert_eq!(snap.groups.len(), vendor_groups.len());
    for (group, v) in snap.groups.iter().zip(&vendor_groups) {
        assert_eq!(group.id, v["id"].to_string());
        assert_eq!(Some(group.name.as_str()), v["name"].as_str());
        assert_eq!(group.member_count, v["member_count"].as_u64());
        assert_eq!(group.remote_data, None);
    }

    let map = raw(account, "/api/permissions/membership").await;
    let mut pairs: Vec<(u64, u64)> = map
        .as_object()
        .unwrap()
        .values()
        .flat_map(|ms| ms.as_array().unwrap())
        .map(|m| {
            (
                m["group_id"].as_u64().unwrap(),
                m["user_id"].as_u64().unwrap(),
            )
        })
        .collect();
    pairs.sort();
    pairs.dedup();
    // Each once, and sorted as text, as a sync stores them.
    let mut expected: Vec<(String, String)> = pairs
        .iter()
        .map(|(g, u)| (g.to_string(), u.to_string()))
        .collect();
    expected.sort();
    assert_eq!(snap.memberships, expected);
    let roles: Vec<&str> = snap.roles.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(roles, ["admin", "member", "group_manager"]);
}

#[tokio::test]
async fn snapshot_pages_every_user_group_and_membership() {
    let sim = start(2_500).await;
    let account = admin_key(&sim);
    let dir = MetabaseDirectory::new(&account);
    let n = raw(&account, "/api/user?status=all&limit=1").await["total"]
        .as_u64()
        .unwrap();
    assert!(n > 2_000, "{n}");

    sim_control(&sim, reqwest::Method::POST, "/_sim/counters/reset").await;
    let progress = Progress::default();
    let snap = dir.snapshot(&KnownUsers::new(), &progress).await.unwrap();
    let counters = sim_control(&sim, reqwest::Method::GET, "/_sim/counters").await;
    let routes = &counters["by_route"];
    assert_eq!(routes["GET /api/user"], n.div_ceil(1000), "{counters}");
    assert_eq!(routes["GET /api/permissions/group"], 1, "{counters}");
    assert_eq!(routes["GET /api/permissions/membership"], 1, "{counters}");
    assert_eq!(counters["total"], n.div_ceil(1000) + 2, "{counters}");

    assert_is_the_vendors(&account, &snap).await;
    let reports = progress.0.lock().unwrap().clone();
    let users: Vec<(u64, Option<u64>)> = reports
        .iter()
        .filter(|p| p.phase == "users")
        .map(|p| (p.done, p.total))
        .collect();
    let expected: Vec<(u64, Option<u64>)> = (1..=n.div_ceil(1000))
        .map(|page| ((page * 1000).min(n), Some(n)))
        .collect();
    assert_eq!(users, expected);
    let g = snap.groups.len() as u64;
    let m = snap.memberships.len() as u64;
    assert_eq!(
        &reports[reports.len() - 2..],
        [
            SnapshotProgress {
                phase: "groups",
                done: g,
                total: Some(g)
            },
            SnapshotProgress {
                phase: "memberships",
                done: m,
                total: Some(m)
            }
        ]
    );
}

/// After the first page, adds a user who sorts first, so every later page
/// starts one user earlier (offset paging while users are added).
struct AddsAUserAfterThePage {
    url: String,
    key: String,
    added: AtomicBool,
}

impl ProgressSink for AddsAUserAfterThePage {
    fn report(&self, progress: SnapshotProgress) {
        if progress.phase != "users" || self.added.swap(true, Ordering::SeqCst) {
            return;
        }
        // `report` is synchronous: add the user on a thread of its own and
        // wait, while the test runtime's workers keep the simulator serving.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    runtime.block_on(async {
                        let response = reqwest::Client::new()
                            .post(format!("{}/api/user", self.url))
                            .header("x-api-key", &self.key)
                            .json(&json!({
                                "email": "aaaa@example.com",
                                "first_name": "Aaaa",
                                "last_name": "Aaaa",
                            }))
                            .send()
                            .await
                            .unwrap();
                        assert!(response.status().is_success(), "{}", response.status());
                    });
                })
                .join()
                .unwrap();
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_keeps_one_of_a_user_listed_twice() {
    let sim = start(2_500).await;
    let account = admin_key(&sim);
    let dir = MetabaseDirectory::new(&account);
    let before = raw(&account, "/api/user?status=all").await;
    let mut expected: Vec<String> = before["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].to_string())
        .collect();
    expected.sort_by_key(|id| id.parse::<u64>().unwrap());

    let sink = AddsAUserAfterThePage {
        url: sim.base_url(),
        key: sim.fixtures().admin_api_key.clone(),
        added: AtomicBool::new(false),
    };
    let snap = dir.snapshot(&KnownUsers::new(), &sink).await.unwrap();
    assert!(sink.added.load(Ordering::SeqCst));
    // The last user of the first page came again first on the second: kept
    // once. The newcomer sorted before what was read; the next sync has it.
    let got: Vec<String> = snap.users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(got, expected);
    let after = raw(&account, "/api/user?status=all&limit=1").await;
    assert_eq!(after["data"][0]["email"], "aaaa@example.com");
    assert_eq!(after["total"].as_u64().unwrap(), expected.len() as u64 + 1);
}

/// Takes every listed user; knows the fingerprints it is given.
#[derive(Default)]
struct Fingerprints {
    known: HashMap<i64, String>,
    taken: Mutex<Vec<Listed>>,
}

#[async_trait::async_trait]
impl ProgressSink for Fingerprints {
    fn report(&self, _: SnapshotProgress) {}

    async fn known_fingerprints(&self) -> Option<KnownFingerprints> {
        let known = self.known.clone();
        Some(Arc::new(move |fingerprint| {
            known.get(&fingerprint).cloned()
        }))
    }

    fn listed(&self, users: Vec<Listed>) -> Vec<User> {
        self.taken.lock().unwrap().extend(users);
        Vec::new()
    }
}

#[tokio::test]
async fn snapshot_skips_building_users_whose_record_the_sink_knows() {
    let sim = start(2_500).await;
    let account = admin_key(&sim);
    let dir = MetabaseDirectory::new(&account);

    // A sink that knows nothing gets every user built and fingerprinted,
    // and nothing is left in the snapshot.
    let first = Fingerprints::default();
    let snap = dir.snapshot(&KnownUsers::new(), &first).await.unwrap();
    assert!(snap.users.is_empty());
    let mut built: Vec<User> = Vec::new();
    let mut known = HashMap::new();
    for listed in first.taken.into_inner().unwrap() {
        let Listed::User {
            user,
            fingerprint: Some(fingerprint),
        } = listed
        else {
            panic!("not built, or without a fingerprint: {listed:?}");
        };
        assert!(known.insert(fingerprint, user.id.clone()).is_none());
        built.push(user);
    }
    let mut as_read = DirectorySnapshot {
        users: built.clone(),
        ..snap
    };
    as_read.users.sort_by_key(|u| u.id.parse::<u64>().unwrap());
    assert_is_the_vendors(&account, &as_read).await;

    // One user changes at the vendor: only that one is built again.
    let changed = built[7].id.clone();
    dir.update_user(
        &changed,
        &UserPatch {
            first_name: Some("Renamed".into()),
            ..UserPatch::default()
        },
    )
    .await
    .unwrap();
    let second = Fingerprints {
        known: known.clone(),
        ..Fingerprints::default()
    };
    dir.snapshot(&KnownUsers::new(), &second).await.unwrap();
    let taken = second.taken.into_inner().unwrap();
    assert_eq!(taken.len(), built.len());
    let mut rebuilt = Vec::new();
    for listed in taken {
        match listed {
            Listed::Known { id, fingerprint } => assert_eq!(known[&fingerprint], id),
            Listed::User {
                user,
                fingerprint: Some(fingerprint),
            } => {
                assert!(!known.contains_key(&fingerprint));
                rebuilt.push(user);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(rebuilt.len(), 1);
    assert_eq!(rebuilt[0].id, changed);
    assert_eq!(rebuilt[0].first_name.as_deref(), Some("Renamed"));
}

#[tokio::test]
async fn snapshot_fails_as_a_whole_on_a_vendor_error() {
    let sim = start(2_500).await;
    let account = admin_key(&sim);
    let dir = MetabaseDirectory::new(&account);
    for spec in [
        // The second page of users.
        "500@every=2@/api/user",
        "500@next=1@/api/permissions/group",
        "500@next=1@/api/permissions/membership",
        "truncate@next=1@/api/user",
    ] {
        add_fault(&sim, spec).await;
        let err = dir
            .snapshot(&KnownUsers::new(), &Progress::default())
            .await
            .unwrap_err();
        sim_control(&sim, reqwest::Method::DELETE, "/_sim/faults").await;
        match (spec.starts_with("truncate"), &err) {
            (false, DirectoryError::Connector(ConnectorError::Vendor(remote))) => {
                assert_eq!(remote.status, 500, "{spec}");
            }
            (true, DirectoryError::Connector(ConnectorError::BadResponse(_))) => {}
            _ => panic!("{spec}: {err:?}"),
        }
    }
    // And the next one reads everything.
    let snap = dir
        .snapshot(&KnownUsers::new(), &Progress::default())
        .await
        .unwrap();
    assert_is_the_vendors(&account, &snap).await;
}
