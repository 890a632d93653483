//! `ModeDirectory` against the in-process Mode simulator over real HTTP:
//! every Directory method, the mapping, what Mode cannot do, vendor errors
//! and faults, and paging walks over paginated and unpaginated lists.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rollcall_connectors::mode::ModeDirectory;
use rollcall_connectors::{
    AccountConfig, Added, ConnectorError, Credentials, Directory, DirectoryError,
    DirectorySnapshot, GroupPatch, KnownUsers, LinkedAccount, MembershipQuery, ModeConfig,
    NewGroup, NewUser, PageRequest, ProgressSink, SnapshotProgress, UserPatch, UserQuery,
    VendorGuards, VendorHttp,
};
use rollcall_core::unified::{GroupMembership, RoleType, User, UserStatus};
use rollcall_core::{Provider, SystemClock};
use rollcall_sim_mode::{ModeCredential, ModeFixtures, ModeSim, ModeSimConfig, RunningModeSim};
use serde_json::{Value, json};

// ---- harness ------------------------------------------------------------------

struct Harness {
    sim: RunningModeSim,
    fx: ModeFixtures,
    config: ModeConfig,
    http: reqwest::Client,
    /// One vendor client for every account (building one loads TLS roots).
    vendor: VendorHttp,
}

impl Harness {
    async fn start(users: usize, page_size: Option<usize>) -> Self {
        let sim = ModeSim::new(ModeSimConfig {
            users,
            page_size,
            rate_limit: None,
            ..ModeSimConfig::default()
        })
        .unwrap();
        let sim = sim.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let fx = sim.fixtures().clone();
        let config = ModeConfig {
            base_url: rollcall_connectors::BaseUrl::parse(&sim.base_url()).unwrap(),
            workspace: fx.workspace.clone(),
            // The simulator's own limit is set per test; the connector's
            // limiter is exercised by the server's resilience tests.
            rate_limit: Some(rollcall_connectors::config::RateLimit {
                requests: 1_000_000,
                per_seconds: 1,
            }),
            sync_interval_minutes: None,
        };
        Self {
            sim,
            fx,
            config,
            http: reqwest::Client::new(),
            vendor: VendorHttp::new(Duration::from_secs(30)).unwrap(),
        }
    }

    fn account(&self, credential: &ModeCredential) -> LinkedAccount {
        self.account_with(&credential.token, &credential.secret)
    }

    fn account_with(&self, token: &str, secret: &str) -> LinkedAccount {
        LinkedAccount::new(
            "acct#1",
            AccountConfig::Mode(self.config.clone()),
            Credentials::parse(Provider::Mode, json!({"token": token, "secret": secret})).unwrap(),
            self.vendor.clone(),
            &VendorGuards::new(rollcall_connectors::RetryPolicy {
                max_retries: 0,
                ..rollcall_connectors::RetryPolicy::default()
            }),
            Arc::new(SystemClock),
        )
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    /// A vendor GET as alice, straight to the simulator.
    async fn raw(&self, path: &str) -> Value {
        let response = self
            .http
            .get(self.url(path))
            .basic_auth(&self.fx.admin.token, Some(&self.fx.admin.secret))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// Every item of a raw list, read with big pages.
    async fn raw_list(&self, path: &str, key: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for page in 1.. {
            let body = self.raw(&format!("{path}?page={page}&per_page=1000")).await;
            let items = body["_embedded"][key]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let n = items.len();
            out.extend(items);
            if body.get("pagination").is_none() || n < 1000 {
                break;
            }
        }
        out
    }

    async fn raw_memberships(&self) -> Vec<Value> {
        self.raw_list(
            &format!("/api/{}/memberships", self.fx.workspace),
            "memberships",
        )
        .await
    }

    async fn raw_groups(&self) -> Vec<Value> {
        self.raw_list(&format!("/api/{}/groups", self.fx.workspace), "groups")
            .await
    }

    async fn raw_group_members(&self, group: &str) -> Vec<String> {
        self.raw_list(
            &format!("/api/{}/groups/{group}/memberships", self.fx.workspace),
            "group_memberships",
        )
        .await
        .iter()
        .map(|m| m["member_token"].as_str().unwrap().to_owned())
        .collect()
    }

    async fn user_token(&self, username: &str) -> String {
        self.raw(&format!("/api/{username}")).await["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn fault(&self, spec: &str) {
        let r = self
            .http
            .post(self.url("/_sim/faults"))
            .json(&json!({"spec": spec}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }

    async fn reset_counters(&self) {
        self.http
            .post(self.url("/_sim/counters/reset"))
            .send()
            .await
            .unwrap();
    }

    async fn counters(&self) -> Value {
        self.http
            .get(self.url("/_sim/counters"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn state(&self) -> Value {
        self.http
            .get(self.url("/_sim/mode/state"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn first_page(limit: u32) -> PageRequest {
    PageRequest {
        position: None,
        limit,
        include_remote_data: false,
    }
}

fn status_of(m: &Value) -> UserStatus {
    match m["state"].as_str().unwrap() {
        "active" => UserStatus::Active,
        "pending" => UserStatus::Invited,
        _ => UserStatus::Inactive,
    }
}

/// Every user a query yields, walking all pages with `limit`.
async fn walk_users(dir: &ModeDirectory<'_>, query: &UserQuery, limit: u32) -> Vec<User> {
    let mut position = None;
    let mut all = Vec::new();
    let mut seen = HashSet::new();
    let mut empty_pages = 0;
    for _ in 0..100_000 {
        let page = dir
            .list_users(
                query,
                &PageRequest {
                    position: position.clone(),
                    limit,
                    include_remote_data: false,
                },
            )
            .await
            .unwrap();
        assert!(page.items.len() <= limit as usize);
        assert!(page.is_partial_response);
        for user in &page.items {
            assert!(seen.insert(user.id.clone()), "user {} came twice", user.id);
        }
        // Filters may leave pages empty, but never many in a row.
        empty_pages = if page.items.is_empty() {
            empty_pages + 1
        } else {
            0
        };
        assert!(empty_pages < 20, "the walk makes no progress");
        all.extend(page.items);
        match page.next_position {
            Some(next) => position = Some(next),
            None => return all,
        }
    }
    panic!("the walk never ended");
}

async fn walk_memberships(
    dir: &ModeDirectory<'_>,
    query: &MembershipQuery,
    limit: u32,
) -> Vec<GroupMembership> {
    let mut position = None;
    let mut all = Vec::new();
    let mut seen = HashSet::new();
    let mut empty_pages = 0;
    for _ in 0..100_000 {
        let page = dir
            .list_group_memberships(
                query,
                &PageRequest {
                    position: position.clone(),
                    limit,
                    include_remote_data: false,
                },
            )
            .await
            .unwrap();
        assert!(page.items.len() <= limit as usize);
        for m in &page.items {
            assert!(seen.insert(m.id.clone()), "membership {} came twice", m.id);
        }
        // Filters may leave pages empty, but never many in a row.
        empty_pages = if page.items.is_empty() {
            empty_pages + 1
        } else {
            0
        };
        assert!(empty_pages < 20, "the walk makes no progress");
        all.extend(page.items);
        match page.next_position {
            Some(next) => position = Some(next),
            None => return all,
        }
    }
    panic!("the walk never ended");
}

/// Each id exactly once, and exactly the expected ones.
#[track_caller]
fn assert_exactly_once(got: &[String], expected: &BTreeSet<String>, what: &str) {
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(unique.len(), got.len(), "{what}: some ids were repeated");
    assert_eq!(&unique, expected, "{what}: the ids differ");
}

fn expected_users(memberships: &[Value], status: UserStatus) -> BTreeSet<String> {
    memberships
        .iter()
        .filter(|m| status_of(m) == status)
        .map(|m| m["member_token"].as_str().unwrap().to_owned())
        .collect()
}

fn ids(users: &[User]) -> Vec<String> {
    users.iter().map(|u| u.id.clone()).collect()
}

#[track_caller]
fn remote_status(error: &DirectoryError) -> Option<u16> {
    match error {
        DirectoryError::NotFound { remote, .. }
        | DirectoryError::Conflict { remote, .. }
        | DirectoryError::Invalid { remote, .. } => remote.as_ref().map(|r| r.status),
        DirectoryError::Connector(c) => c.remote().map(|r| r.status),
        DirectoryError::Unsupported(_) => None,
    }
}

// ---- users ------------------------------------------------------------------

#[tokio::test]
async fn lists_users_from_the_membership_list_alone() {
    let h = Harness::start(50, None).await;
    let account = h.account(&h.fx.admin);
    let dir = ModeDirectory::new(&account, &h.config);
    assert_eq!(dir.provider(), Provider::Mode);
    let raw = h.raw_memberships().await;
    let alice_token = h.user_token("alice").await;

    h.reset_counters().await;
    let page = dir
        .list_users(
            &UserQuery::default(),
            &PageRequest {
                position: None,
                limit: 1000,
                include_remote_data: true,
            },
        )
        .await
        .unwrap();
    // One call, to the membership list, whatever the number of users.
    let counters = h.counters().await;
    assert_eq!(counters["total"], 1, "{counters}");
    assert_eq!(counters["by_route"]["GET /api/{ws}/memberships"], 1);

    assert!(page.is_partial_response);
    assert_eq!(page.next_position, None);
    assert_exactly_once(
        &ids(&page.items),
        &expected_users(&raw, UserStatus::Active),
        "active users",
    );
    for user in &page.items {
        assert_eq!(user.status, UserStatus::Active);
        assert_eq!((user.email.as_ref(), user.name.as_ref()), (None, None));
        assert_eq!(
            (user.first_name.as_ref(), user.last_name.as_ref()),
            (None, None)
        );
        assert_eq!(user.groups, None);
        assert_eq!(user.last_active_at, None);
        assert_eq!(user.updated_at, None);
        let m = raw
            .iter()
            .find(|m| m["member_token"] == user.id.as_str())
            .unwrap();
        assert_eq!(user.remote_data.as_ref(), Some(m));
        assert_eq!(user.username.as_deref(), m["member_username"].as_str());
        assert_eq!(user.created_at.as_deref(), m["activated_at"].as_str());
        assert_eq!(user.is_admin, m["admin"] == true);
        let role = if user.is_admin { "admin" } else { "member" };
        assert_eq!(user.roles.len(), 1);
        assert_eq!(user.roles[0].id, role);
    }
    let alice = page.items.iter().find(|u| u.id == alice_token).unwrap();
    assert_eq!(alice.username.as_deref(), Some("alice"));
    assert!(alice.is_admin);
    assert_eq!(alice.roles[0].name, "Admin");
    let bob = page
        .items
        .iter()
        .find(|u| u.username.as_deref() == Some("bob"))
        .unwrap();
    assert!(!bob.is_admin);
    assert_eq!(bob.roles[0].name, "Member");

    // Without include_remote_data, no remote_data.
    let plain = dir
        .list_users(&UserQuery::default(), &first_page(5))
        .await
        .unwrap();
    assert_eq!(plain.items.len(), 5);
    assert!(plain.items.iter().all(|u| u.remote_data.is_none()));
    assert!(plain.next_position.is_some());
}

#[tokio::test]
async fn user_filters_status_admin_group_and_email() {
    let h = Harness::start(200, None).await;
    let account = h.account(&h.fx.admin);
    let dir = ModeDirectory::new(&account, &h.config);
    let raw = h.raw_memberships().await;

    for status in [
        UserStatus::Active,
        UserStatus::Inactive,
        UserStatus::Invited,
    ] {
        let query = UserQuery {
            status: Some(status),
            ..UserQuery::default()
        };
        let users = walk_users(&dir, &query, 1000).await;
        let expected = expected_users(&raw, status);
        assert!(!expected.is_empty(), "{status:?}");
        assert_exactly_once(&ids(&users), &expected, status.as_str());
        assert!(users.iter().all(|u| u.status == status));
    }

    let admins = walk_users(
        &dir,
        &UserQuery {
            is_admin: Some(true),
            ..UserQuery::default()
        },
        1000,
    )
    .await;
    let expected: BTreeSet<String> = raw
        .iter()
        .filter(|m| m["admin"] == true && m["state"] == "active")
        .map(|m| m["member_token"].as_str().unwrap().to_owned())
        .collect();
    assert_exactly_once(&ids(&admins), &expected, "admins");

    // group_id: that group's active members.
    let groups = h.raw_groups().await;
    let group = groups
        .iter()
        .max_by_key(|g| g["member_count"].as_u64().unwrap())
        .unwrap();
    let token = group["token"].as_str().unwrap();
    let members: HashSet<String> = h.raw_group_members(token).await.into_iter().collect();
    let in_group = walk_users(
        &dir,
        &UserQuery {
            group_id: Some(token.to_owned()),
            ..UserQuery::default()
        },
        3,
    )
    .await;
    let expected: BTreeSet<String> = expected_users(&raw, UserStatus::Active)
        .into_iter()
        .filter(|t| members.contains(t))
        .collect();
    assert!(!expected.is_empty());
    assert_exactly_once(&ids(&in_group), &expected, "group members");
    let unknown = dir
        .list_users(
            &UserQuery {
                group_id: Some("000000000000".into()),
                ..UserQuery::default()
            },
            &first_page(10),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, DirectoryError::NotFound { .. }),
        "{unknown}"
    );
    assert_eq!(remote_status(&unknown), Some(404));

    // Email: the membership list has none.
    let err = dir
        .list_users(
            &UserQuery {
                email: Some("alice@acme.example".into()),
                ..UserQuery::default()
            },
            &first_page(10),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DirectoryError::Unsupported(m) if m.contains("email")),
        "{err}"
    );

    // A position that is not ours.
    let err = dir
        .list_users(
            &UserQuery::default(),
            &PageRequest {
                position: Some("nonsense!".into()),
                limit: 10,
                include_remote_data: false,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Invalid { .. }), "{err}");
}

#[tokio::test]
async fn get_user_adds_the_account_and_cheap_groups() {
    let h = Harness::start(50, None).await;
    let account = h.account(&h.fx.admin);
    let dir = ModeDirectory::new(&account, &h.config);
    let alice_token = h.user_token("alice").await;

    let alice = dir.get_user(&alice_token, true).await.unwrap();
    assert_eq!(alice.id, alice_token);
    assert_eq!(alice.username.as_deref(), Some("alice"));
    assert_eq!(alice.email.as_deref(), Some("alice@acme.example"));
    assert_eq!(alice.name.as_deref(), Some("Alice Admin"));
    assert_eq!(alice.first_name.as_deref(), Some("Alice"));
    assert_eq!(alice.last_name.as_deref(), Some("Admin"));
    assert_eq!(alice.status, UserStatus::Active);
    assert!(alice.is_admin);
    let remote = alice.remote_data.as_ref().unwrap();
    assert_eq!(remote["membership"]["member_token"], alice_token.as_str());
    assert_eq!(remote["user"]["email"], "alice@acme.example");

    // Groups: every live group that lists alice (cheap in a small workspace).
    let mut expected = BTreeSet::new();
    for g in h.raw_groups().await {
        let token = g["token"].as_str().unwrap();
        if h.raw_group_members(token).await.contains(&alice_token) {
            expected.insert(token.to_owned());
        }
    }
    let groups: BTreeSet<String> = alice
        .groups
        .as_ref()
        .expect("groups are cheap here")
        .iter()
        .map(|g| g.id.clone())
        .collect();
    assert_eq!(groups, expected);
    assert!(
        alice
            .groups
            .as_ref()
            .unwrap()
            .iter()
            .all(|g| !g.name.is_empty())
    );

    // A non-admin credential cannot read groups: `groups` is unknown.
    let bob_account = h.account(&h.fx.member);
    let as_bob = ModeDirectory::new(&bob_account, &h.config);
    let seen_by_bob = as_bob.get_user(&alice_token, false).await.unwrap();
    assert_eq!(seen_by_bob.email.as_deref(), Some("alice@acme.example"));
    assert_eq!(seen_by_bob.groups, None);
    assert_eq!(seen_by_bob.remote_data, None);

    for unknown in ["000000000000", "../alice", ""] {
        let err = dir.get_user(unknown, false).await.unwrap_err();
        assert!(
            matches!(err, DirectoryError::NotFound { .. }),
            "{unknown}: {err}"
        );
    }
}

#[tokio::test]
async fn create_user_is_the_invite_flow() {
    let h = Harness::start(50, None).await;
    let account = h.account(&h.fx.admin);
    let dir = ModeDirectory::new(&account, &h.config);
    let group = h.raw_groups().await[0]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let carol = dir
        .create_user(&NewUser {
            email: "carol@acme.example".into(),
            group_ids: vec![group.clone()],
            ..NewUser::default()
        })
        .await
        .unwrap();
    assert_eq!(carol.status, UserStatus::Invited);
    assert_eq!(carol.email.as_deref(), Some("carol@acme.example"));
    assert_eq!(carol.username.as_deref(), Some("carol"));
    assert!(!carol.is_admin);
    assert_eq!(carol.id, h.user_token("carol").await);
    assert!(carol.groups.as_ref().unwrap().iter().any(|g| g.id == group));
    assert!(h.raw_group_members(&group).await.contains(&carol.id));
    let invited = walk_users(
        &dir,
        &UserQuery {
            status: Some(UserStatus::Invited),
            ..UserQuery::default()
        },
        100,
    )
    .await;
    assert!(invited.iter().any(|u| u.id == carol.id));

    // Inviting again re-sends and answers the same user.
    let again = dir
        .create_user(&NewUser {
            email: "carol@acme.example".into(),
            message: Some("Welcome aboard".into()),
            ..NewUser::default()
        })
        .await
        .unwrap();
    assert_eq!(again.id, carol.id);

    // What Mode cannot do, before anything is sent.
    let pending_before = h.state().await["members"]["pending"].clone();
    let err = dir
        .create_user(&NewUser {
            email: "dan@acme.example".into(),
            is_admin: true,
            ..NewUser::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DirectoryError::Unsupported(m) if m.contains("admin")),
        "{err}"
    );
    let err = dir
        .create_user(&NewUser {
            email: "dan@acme.example".into(),
            first_name: Some("Dan".into()),
            ..NewUser::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Unsupported(_)), "{err}");
    let err = dir
        .create_user(&NewUser {
            email: "dan@acme.example".into(),
            group_ids: vec!["000000000000".into()],
            ..NewUser::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::NotFound { .. }), "{err}");
    assert_eq!(h.state().await["members"]["pending"], pending_before);

    // Mode's own refusals: a current member (400 → Conflict), a bad email (400 → Invalid).
    let err = dir
        .create_user(&NewUser {
            email: "bob@acme.example".into(),
            ..NewUser::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Conflict { .. }), "{err}");
    assert_eq!(remote_status(&err), Some(400));
    let err = dir
        .create_user(&NewUser {
            email: "not-an-email".into(),
            ..NewUser::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Invalid { .. }), "{err}");
    assert_eq!(remote_status(&err), Some(400));

    // A Workspace API token may not invite at all.
    let ws_account = h.account(&h.fx.workspace_api);
    let as_workspace = ModeDirectory::new(&ws_account, &h.config);
    let err = as_workspace
        .create_user(&NewUser {
            email: "erin@acme.example".into(),
            ..NewUser::default()
        })
        .await
        .unwrap_err();
    match &err {
        DirectoryError::Unsupported(m) => {
            assert!(m.contains("unsupported for use with Api Keys"), "{m}");
            assert!(m.contains("Workspace API token"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    // A member (not an admin) is refused by Mode with 403.
    let bob_account = h.account(&h.fx.member);
    let as_bob = ModeDirectory::new(&bob_account, &h.config);
    let err = as_bob
        .create_user(&NewUser {
            email: "erin@acme.example".into(),
            ..NewUser::default()
        })
        .await
        .unwrap_err();
    assert_eq!(remote_status(&err), Some(403), "{err}");
    assert!(err.to_string().contains("admin"), "{err}");
}

#[tokio::test]
async fn update_user_refuses_what_mode_cannot_change() {
    let h = Harness::start(50, None).await;
    let account = h.account(&h.fx.admin);
    let dir = ModeDirectory::new(&account, &h.config);
    let bob = h.user_token("bob").await;

    let unchanged = dir.update_user(&bob, &UserPatch::default()).await.unwrap();
    assert_eq!(unchanged.username.as_deref(), Some("bob"));
    // Values equal to the current ones change nothing and are fine.
    let same = dir
        .update_user(
            &bob,
            &UserPatch {
                is_admin: Some(false),
                status: Some(UserStatus::Active),
                first_name: Some("Bob".into()),
                email: Some("BOB@acme.example".into()),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(same.id, bob);

    let cases = [
        (
            UserPatch {
                is_admin: Some(true),
                ..UserPatch::default()
            },
            "role",
        ),
        (
            UserPatch {
                first_name: Some("Robert".into()),
                ..UserPatch::default()
            },
            "profile",
        ),
        (
            UserPatch {
                email: Some("robert@acme.example".into()),
                ..UserPatch::default()
            },
            "profile",
        ),
        (
            UserPatch {
                status: Some(UserStatus::Inactive),
                ..UserPatch::default()
            },
            "delete",
        ),
    ];
    for (patch, words) in cases {
        let err = dir.update_user(&bob, &patch).await.unwrap_err();
        assert!(
            matches!(&err, DirectoryError::Unsupported(m) if m.contains(words)),
            "{patch:?}: {err}"
        );
    }
    let err = dir
        .update_user(
            &bob,
            &UserPatch {
                status: Some(UserStatus::Invited),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Invalid { .. }), "{err}");
    let err = dir
        .update_user("000000000000", &UserPatch::default())
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn delete_user_removes_the_workspace_membership() {
    let h = Harness::start(50, None).await;
    let account = h.account(&h.fx.admin);
    let dir = ModeDirectory::new(&account, &h.config);
    let bob = h.user_token("bob").await;
    let group = h.raw_groups().await[0]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    dir.add_group_membership(&group, &bob).await.unwrap();

    h.reset_counters().await;
    dir.delete_user(&bob).await.unwrap();
    let counters = h.counters().await;
    assert_eq!(
        counters["by_route"]["DELETE /api/{ws}/memberships/{membership}"],
        1
    );

    let gone = dir.get_user(&bob, false).await.unwrap();
    assert_eq!(gone.status, UserStatus::Inactive);
    assert!(!gone.is_admin);
    assert_eq!(gone.groups, Some(Vec::new()));
    let memberships = walk_memberships(
        &dir,
        &MembershipQuery {
            user_id: Some(bob.clone()),
            ..MembershipQuery::default()
        },
        100,
    )
    .await;
    assert!(memberships.is_empty());

    // Deprovisioning a former member again is harmless.
    dir.delete_user(&bob).await.unwrap();
    let err = dir.delete_user("000000000000").await.unwrap_err();
    assert!(matches!(err, DirectoryError::NotFound { .. }), "{err}");
}

// ---- groups ---------------------------------------------------------------------

#[tokio::test]
async fn groups_list_get_create_update_delete() {
    let h = Harness::start(50, None).await;
    let account = h.account(&h.fx.admin);
    let dir = ModeDirectory::new(&account, &h.config);
    let raw = h.raw_groups().await;
    let expected: BTreeSet<String> = raw
        .iter()
        .map(|g| g["token"].as_str().unwrap().to_owned())
        .collect();

    // Walk with a small limit.
    let mut position = None;
    let mut seen = Vec::new();
    loop {
        let page = dir
            .list_groups(&PageRequest {
                position: position.clone(),
                limit: 3,
                include_remote_data: true,
            })
            .await
            .unwrap();
        assert!(!page.is_partial_response);
        for g in &page.items {
            let r = raw.iter().find(|r| r["token"] == g.id.as_str()).unwrap();
            assert_eq!(g.remote_data.as_ref(), Some(r));
            assert_eq!(g.name, r["name"].as_str().unwrap());
            assert_eq!(g.member_count, r["member_count"].as_u64());
            assert_eq!(g.description, None);
            assert!(!g.is_builtin);
            assert_eq!((g.created_at.as_ref(), g.updated_at.as_ref()), (None, None));
        }
        seen.extend(page.items.into_iter().map(|g| g.id));
        match page.next_position {
            Some(p) => position = Some(p),
            None => break,
        }
    }
    assert_exactly_once(&seen, &expected, "groups");
    let state = h.state().await;
    assert_eq!(
        seen.len() as u64,
        state["groups"]["active"].as_u64().unwrap(),
        "soft-deleted groups are left out"
    );
    assert!(seen.len() > 3, "the walk spans pages");

    // A group deleted mid-walk does not make the walk skip the next one.
    let first = dir.list_groups(&first_page(2)).await.unwrap();
    let rest_before: Vec<String> = raw
        .iter()
        .skip(2)
        .map(|g| g["token"].as_str().unwrap().to_owned())
        .collect();
    dir.delete_group(&first.items[0].id).await.unwrap();
    let mut position = first.next_position;
    let mut rest = Vec::new();
    while let Some(p) = position {
        let page = dir
            .list_groups(&PageRequest {
                position: Some(p),
                limit: 2,
                include_remote_data: false,
            })
            .await
            .unwrap();
        rest.extend(page.items.into_iter().map(|g| g.id));
        position = page.next_position;
    }
    assert_eq!(rest, rest_before);

    // Create, read, rename, delete.
    let created = dir
        .create_group(&NewGroup {
            name: "Rollcall Testers".into(),
            description: None,
        })
        .await
        .unwrap();
    assert_eq!(created.name, "Rollcall Testers");
    assert_eq!(created.member_count, Some(0));
    assert!(!created.is_builtin);
    let got = dir.get_group(&created.id, true).await.unwrap();
    assert_eq!(got.name, "Rollcall Testers");
    assert_eq!(
        got.remote_data.as_ref().unwrap()["token"],
        created.id.as_str()
    );
    let renamed = dir
        .update_group(
            &created.id,
            &GroupPatch {
                name: Some("Rollcall QA".into()),
                description: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "Rollcall QA");
    let unchanged = dir
        .update_group(&created.id, &GroupPatch::default())
        .await
        .unwrap();
    assert_eq!(unchanged.name, "Rollcall QA");

    // Mode's refusals pass through.
    let err = dir
        .create_group(&NewGroup {
            name: "Rollcall QA".into(),
            description: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Conflict { .. }), "{err}");
    assert_eq!(remote_status(&err), Some(400));
    let err = dir
        .create_group(&NewGroup {
            name: "  ".into(),
            description: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Invalid { .. }), "{err}");
    assert_eq!(remote_status(&err), Some(400));
    // No descriptions in Mode.
    let err = dir
        .create_group(&NewGroup {
            name: "Described".into(),
            description: Some("words".into()),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DirectoryError::Unsupported(m) if m.contains("Mode groups have no description")),
        "{err}"
    );
    let err = dir
        .update_group(
            &created.id,
            &GroupPatch {
                name: None,
                description: Some("words".into()),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Unsupported(_)), "{err}");

    dir.delete_group(&created.id).await.unwrap();
    for err in [
        dir.get_group(&created.id, false).await.unwrap_err(),
        dir.delete_group(&created.id).await.unwrap_err(),
        dir.update_group(
            &created.id,
            &GroupPatch {
                name: Some("x".into()),
                description: None,
            },
        )
        .await
        .unwrap_err(),
    ] {
        assert!(matches!(err, DirectoryError::NotFound { .. }), "{err}");
    }
    // An unknown group: Mode's 404, carried as `remote`.
    let err = dir.get_group("000000000000", false).await.unwrap_err();
    assert!(matches!(err, DirectoryError::NotFound { .. }), "{err}");
    assert_eq!(remote_status(&err), Some(404));
    let err = dir.get_group("../memberships", false).await.unwrap_err();
    assert!(matches!(err, DirectoryError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn group_memberships_list_add_remove() {
    let h = Harness::start(50, None).await;
    let account = h.account(&h.fx.admin);
    let dir = ModeDirectory::new(&account, &h.config);
    let alice = h.user_token("alice").await;
    let raw_groups = h.raw_groups().await;
    let mut expected_all = BTreeSet::new();
    let mut members_by_group = BTreeMap::new();
    for g in &raw_groups {
        let token = g["token"].as_str().unwrap().to_owned();
        let members = h.raw_group_members(&token).await;
        for m in &members {
            expected_all.insert(GroupMembership::id_for(&token, m));
        }
        members_by_group.insert(token, members);
    }
    assert!(!expected_all.is_empty());

    // Every membership of every live group, with limits that split groups.
    for limit in [1, 7, 1000] {
        let all = walk_memberships(&dir, &MembershipQuery::default(), limit).await;
        let got: Vec<String> = all.iter().map(|m| m.id.clone()).collect();
        assert_exactly_once(
            &got,
            &expected_all,
            &format!("all memberships, limit {limit}"),
        );
        for m in &all {
            assert_eq!(m.id, GroupMembership::id_for(&m.group_id, &m.user_id));
            assert_eq!(m.created_at, None);
        }
    }
    // By group, by user, by both.
    let (group, members) = members_by_group
        .iter()
        .max_by_key(|(_, m)| m.len())
        .unwrap();
    let by_group = walk_memberships(
        &dir,
        &MembershipQuery {
            group_id: Some(group.clone()),
            user_id: None,
        },
        4,
    )
    .await;
    let expected: BTreeSet<String> = members
        .iter()
        .map(|m| GroupMembership::id_for(group, m))
        .collect();
    let got: Vec<String> = by_group.iter().map(|m| m.id.clone()).collect();
    assert_exactly_once(&got, &expected, "by group");
    let by_user = walk_memberships(
        &dir,
        &MembershipQuery {
            group_id: None,
            user_id: Some(alice.clone()),
        },
        2,
    )
    .await;
    let expected: BTreeSet<String> = expected_all
        .iter()
        .filter(|id| id.ends_with(&format!(":{alice}")))
        .cloned()
        .collect();
    let got: Vec<String> = by_user.iter().map(|m| m.id.clone()).collect();
    assert_exactly_once(&got, &expected, "by user");

    // Add: created, then already present; remove: gone, then NotFound.
    let outside = members_by_group
        .iter()
        .find(|(_, m)| !m.contains(&alice))
        .map(|(g, _)| g.clone())
        .expect("a group without alice");
    let (m, added) = dir.add_group_membership(&outside, &alice).await.unwrap();
    assert_eq!(added, Added::Created);
    assert_eq!(m.id, GroupMembership::id_for(&outside, &alice));
    assert_eq!(
        (m.group_id.as_str(), m.user_id.as_str()),
        (outside.as_str(), alice.as_str())
    );
    let (again, added) = dir.add_group_membership(&outside, &alice).await.unwrap();
    assert_eq!(added, Added::AlreadyPresent);
    assert_eq!(again, m);
    let both = walk_memberships(
        &dir,
        &MembershipQuery {
            group_id: Some(outside.clone()),
            user_id: Some(alice.clone()),
        },
        10,
    )
    .await;
    assert_eq!(both, vec![m.clone()]);

    dir.remove_group_membership(&m.id).await.unwrap();
    assert!(!h.raw_group_members(&outside).await.contains(&alice));
    let err = dir.remove_group_membership(&m.id).await.unwrap_err();
    assert!(matches!(err, DirectoryError::NotFound { .. }), "{err}");
    for bad in ["nocolon", ":x", "000000000000:000000000000"] {
        let err = dir.remove_group_membership(bad).await.unwrap_err();
        assert!(
            matches!(err, DirectoryError::NotFound { .. }),
            "{bad}: {err}"
        );
    }

    // A user who is not in the workspace: Mode's 404.
    let err = dir
        .add_group_membership(&outside, "000000000000")
        .await
        .unwrap_err();
    match &err {
        DirectoryError::NotFound { message, remote } => {
            assert!(message.contains("no such user"), "{message}");
            assert_eq!(remote.as_ref().map(|r| r.status), Some(404));
        }
        other => panic!("{other:?}"),
    }
    // A group that is gone.
    let err = dir
        .add_group_membership("000000000000", &alice)
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::NotFound { .. }), "{err}");
    let err = dir
        .list_group_memberships(
            &MembershipQuery {
                group_id: Some("000000000000".into()),
                user_id: None,
            },
            &first_page(10),
        )
        .await
        .unwrap_err();
    assert_eq!(remote_status(&err), Some(404), "{err}");
}

// ---- roles and me ----------------------------------------------------------------

#[tokio::test]
async fn roles_are_admin_and_member() {
    let h = Harness::start(10, None).await;
    let account = h.account(&h.fx.admin);
    let dir = ModeDirectory::new(&account, &h.config);
    h.reset_counters().await;
    let roles = dir.list_roles().await.unwrap();
    let summary: Vec<(&str, RoleType)> =
        roles.iter().map(|r| (r.id.as_str(), r.role_type)).collect();
    assert_eq!(
        summary,
        vec![("admin", RoleType::Admin), ("member", RoleType::Member)]
    );
    assert_eq!(dir.get_role("member").await.unwrap().name, "Member");
    let err = dir.get_role("owner").await.unwrap_err();
    assert!(matches!(err, DirectoryError::NotFound { .. }), "{err}");
    assert_eq!(h.counters().await["total"], 0, "roles need no call");
}

#[tokio::test]
async fn me_tells_personal_tokens_from_workspace_tokens() {
    let h = Harness::start(10, None).await;

    let account = h.account(&h.fx.admin);
    let me = ModeDirectory::new(&account, &h.config).me().await.unwrap();
    assert_eq!(me.kind, "user");
    assert_eq!(me.id, h.user_token("alice").await);
    assert_eq!(me.username.as_deref(), Some("alice"));
    assert_eq!(me.email.as_deref(), Some("alice@acme.example"));
    assert_eq!(me.name.as_deref(), Some("Alice Admin"));
    assert!(me.is_admin);

    let account = h.account(&h.fx.member);
    let me = ModeDirectory::new(&account, &h.config).me().await.unwrap();
    assert_eq!(me.kind, "user");
    assert_eq!(me.username.as_deref(), Some("bob"));
    assert!(!me.is_admin);

    let account = h.account(&h.fx.workspace_api);
    let me = ModeDirectory::new(&account, &h.config).me().await.unwrap();
    assert_eq!(me.kind, "workspace_token");
    assert!(me.is_admin);
    assert_eq!(me.username, None);
    let remote = me.remote_data.unwrap();
    assert_eq!(remote["workspace"], "acme");
    assert_eq!(me.id, remote["workspace_token"].as_str().unwrap());

    // The workspace token manages groups like an admin.
    let account = h.account(&h.fx.workspace_api);
    let dir = ModeDirectory::new(&account, &h.config);
    assert!(
        !dir.list_groups(&first_page(100))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

// ---- vendor errors and faults -----------------------------------------------------

#[tokio::test]
async fn vendor_errors_and_faults_map_to_directory_errors() {
    let h = Harness::start(20, None).await;

    // Refused credentials.
    let account = h.account_with(&h.fx.admin.token, "wrong-secret");
    let dir = ModeDirectory::new(&account, &h.config);
    let err = dir
        .list_users(&UserQuery::default(), &first_page(10))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DirectoryError::Connector(ConnectorError::AuthRejected(_))
        ),
        "{err}"
    );

    // A member's token cannot manage groups: Mode's 403, worded for the account.
    let account = h.account(&h.fx.member);
    let dir = ModeDirectory::new(&account, &h.config);
    let err = dir.list_groups(&first_page(10)).await.unwrap_err();
    assert_eq!(remote_status(&err), Some(403));
    assert!(err.to_string().contains("lacks admin rights"), "{err}");
    // ... but can list members.
    assert!(
        !dir.list_users(&UserQuery::default(), &first_page(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let account = h.account(&h.fx.admin);
    let dir = ModeDirectory::new(&account, &h.config);

    // A malformed body is a BadResponse, never a panic.
    h.fault("malformed@next=1").await;
    let err = dir
        .list_users(&UserQuery::default(), &first_page(10))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DirectoryError::Connector(ConnectorError::BadResponse(_))
        ),
        "{err}"
    );
    let group = h.raw_groups().await[0]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for spec in ["malformed@next=1", "empty@next=1", "truncate@next=1"] {
        h.fault(spec).await;
        let err = dir.get_group(&group, false).await.unwrap_err();
        assert!(
            matches!(
                err,
                DirectoryError::Connector(ConnectorError::BadResponse(_))
            ),
            "{spec}: {err}"
        );
    }
    h.fault("malformed@next=1").await;
    let err = dir.me().await.unwrap_err();
    assert!(
        matches!(
            err,
            DirectoryError::Connector(ConnectorError::BadResponse(_))
        ),
        "{err}"
    );

    // Rate limits and outages carry Mode's answer.
    for (spec, status) in [
        ("429,retry_after=2@next=1", 429),
        ("503@next=1", 503),
        ("html=502@next=1", 502),
    ] {
        h.fault(spec).await;
        let err = dir
            .list_users(&UserQuery::default(), &first_page(10))
            .await
            .unwrap_err();
        match &err {
            DirectoryError::Connector(ConnectorError::Vendor(remote)) => {
                assert_eq!(remote.status, status);
            }
            other => panic!("{spec}: {other:?}"),
        }
    }
    // And the next call works again.
    dir.list_users(&UserQuery::default(), &first_page(10))
        .await
        .unwrap();

    // A workspace the credential does not belong to.
    let mut other = h.config.clone();
    other.workspace = "elsewhere".into();
    let dir = ModeDirectory::new(&account, &other);
    let err = dir
        .list_users(&UserQuery::default(), &first_page(10))
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::NotFound { .. }), "{err}");
    assert_eq!(remote_status(&err), Some(404));
}

// ---- paging --------------------------------------------------------------------------

#[tokio::test]
async fn walks_a_paginated_ten_thousand_user_workspace() {
    let h = Harness::start(10_000, Some(100)).await;
    let account = h.account(&h.fx.admin);
    let dir = ModeDirectory::new(&account, &h.config);
    let raw = h.raw_memberships().await;
    assert_eq!(raw.len(), 10_000);

    for limit in [7, 100, 1000] {
        for status in [
            UserStatus::Active,
            UserStatus::Inactive,
            UserStatus::Invited,
        ] {
            let query = UserQuery {
                status: Some(status),
                ..UserQuery::default()
            };
            let users = walk_users(&dir, &query, limit).await;
            assert_exactly_once(
                &ids(&users),
                &expected_users(&raw, status),
                &format!("{status:?} with limit {limit}"),
            );
        }
    }

    // A full page of 1000 takes ten Mode pages, never one call per user.
    h.reset_counters().await;
    let page = dir
        .list_users(
            &UserQuery {
                status: Some(UserStatus::Active),
                ..UserQuery::default()
            },
            &first_page(1000),
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1000);
    let counters = h.counters().await;
    assert!(counters["total"].as_u64().unwrap() <= 11, "{counters}");

    // Group memberships across every group, split over Mode's pages.
    let mut expected = BTreeSet::new();
    let mut cost = 0;
    for g in h.raw_groups().await {
        let token = g["token"].as_str().unwrap();
        let count = g["member_count"].as_u64().unwrap();
        cost += count.div_ceil(100);
        for m in h.raw_group_members(token).await {
            expected.insert(GroupMembership::id_for(token, &m));
        }
    }
    let all = walk_memberships(&dir, &MembershipQuery::default(), 250).await;
    let got: Vec<String> = all.iter().map(|m| m.id.clone()).collect();
    assert_exactly_once(&got, &expected, "all group memberships");

    // get_user leaves groups out when checking them would take many calls.
    let alice = dir
        .get_user(&h.user_token("alice").await, false)
        .await
        .unwrap();
    assert_eq!(alice.groups.is_none(), cost > 10, "cost {cost}");
    assert_eq!(alice.email.as_deref(), Some("alice@acme.example"));
}

#[tokio::test]
async fn walks_unpaginated_lists_by_slicing() {
    // 300 members in one answer, whatever page is asked for.
    let h = Harness::start(300, None).await;
    let account = h.account(&h.fx.admin);
    let dir = ModeDirectory::new(&account, &h.config);
    let raw = h.raw_memberships().await;
    assert_eq!(raw.len(), 300);
    for status in [
        UserStatus::Active,
        UserStatus::Inactive,
        UserStatus::Invited,
    ] {
        let users = walk_users(
            &dir,
            &UserQuery {
                status: Some(status),
                ..UserQuery::default()
            },
            7,
        )
        .await;
        assert_exactly_once(&ids(&users), &expected_users(&raw, status), status.as_str());
    }

    // Exactly 100 members, unpaginated: page 2 is the whole list again.
    let h = Harness::start(100, None).await;
    let account = h.account(&h.fx.admin);
    let dir = ModeDirectory::new(&account, &h.config);
    let raw = h.raw_memberships().await;
    assert_eq!(raw.len(), 100);
    for status in [UserStatus::Active, UserStatus::Inactive] {
        for limit in [7, 50, 100, 1000] {
            let users = walk_users(
                &dir,
                &UserQuery {
                    status: Some(status),
                    ..UserQuery::default()
                },
                limit,
            )
            .await;
            assert_exactly_once(
                &ids(&users),
                &expected_users(&raw, status),
                &format!("{status:?} with limit {limit}"),
            );
        }
    }
}

// ---- snapshots -------------------------------------------------------------------------

const DETAIL_ROUTE: &str = "GET /api/{name}";

/// Every progress report, in order.
#[derive(Default)]
struct Progress(Mutex<Vec<SnapshotProgress>>);

impl ProgressSink for Progress {
    fn report(&self, progress: SnapshotProgress) {
        self.0.lock().unwrap().push(progress);
    }
}

impl Progress {
    fn of(&self, phase: &str) -> Vec<SnapshotProgress> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.phase == phase)
            .copied()
            .collect()
    }
}

fn known_from(snapshot: &DirectorySnapshot) -> KnownUsers {
    snapshot
        .users
        .iter()
        .map(|u| (u.id.clone(), u.clone()))
        .collect()
}

async fn snapshot(dir: &ModeDirectory<'_>, known: &KnownUsers) -> DirectorySnapshot {
    dir.snapshot(known, &Progress::default()).await.unwrap()
}

/// `GET /api/{username}` calls since the counters were reset.
async fn detail_calls(h: &Harness) -> u64 {
    h.counters().await["by_route"][DETAIL_ROUTE]
        .as_u64()
        .unwrap_or(0)
}

/// The snapshot is the simulator's directory, read raw: every member in
/// every state with its account's email and name, every live group, and
/// every group's members.
async fn assert_is_the_simulators(h: &Harness, snap: &DirectorySnapshot) {
    let raw = h.raw_memberships().await;
    let state = h.state().await;
    assert_eq!(snap.users.len(), raw.len());
    assert_eq!(
        snap.users.len() as u64,
        state["members"]["total"].as_u64().unwrap()
    );
    let ids = ids(&snap.users);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "users are sorted by id, each once");
    let by_id: BTreeMap<&str, &User> = snap.users.iter().map(|u| (u.id.as_str(), u)).collect();
    let mut statuses = BTreeSet::new();
    for m in &raw {
        let user = by_id[m["member_token"].as_str().unwrap()];
        let username = m["member_username"].as_str().unwrap();
        assert_eq!(user.username.as_deref(), Some(username));
        assert_eq!(user.status, status_of(m), "{username}");
        assert_eq!(user.is_admin, m["admin"] == true, "{username}");
        assert_eq!(user.created_at.as_deref(), m["activated_at"].as_str());
        let account = h.raw(&format!("/api/{username}")).await;
        assert_eq!(
            user.email.as_deref(),
            account["email"].as_str(),
            "{username}"
        );
        assert!(user.email.is_some(), "{username} has an email");
        assert_eq!(user.name.as_deref(), account["name"].as_str(), "{username}");
        assert_eq!(user.groups, None);
        assert_eq!(user.remote_data, None);
        statuses.insert(user.status.as_str());
    }
    assert_eq!(statuses.len(), 3, "every state is there: {statuses:?}");

    let raw_groups: Vec<Value> = h
        .raw_groups()
        .await
        .into_iter()
        .filter(|g| g["state"] != "soft_deleted")
        .collect();
    let mut group_ids: Vec<String> = raw_groups
        .iter()
        .map(|g| g["token"].as_str().unwrap().to_owned())
        .collect();
    group_ids.sort();
    assert_eq!(ids_of_groups(snap), group_ids);
    assert_eq!(
        snap.groups.len() as u64,
        state["groups"]["active"].as_u64().unwrap()
    );
    for g in &raw_groups {
        let group = snap.groups.iter().find(|x| x.id == g["token"]).unwrap();
        assert_eq!(Some(group.name.as_str()), g["name"].as_str());
        assert_eq!(group.remote_data, None);
    }
    let mut pairs = Vec::new();
    for group in &group_ids {
        for user in h.raw_group_members(group).await {
            assert!(
                by_id.contains_key(user.as_str()),
                "{user} is a listed member"
            );
            pairs.push((group.clone(), user));
        }
    }
    pairs.sort();
    assert!(!pairs.is_empty());
    assert_eq!(snap.memberships, pairs);
    let roles: Vec<&str> = snap.roles.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(roles, ["admin", "member"]);
}

fn ids_of_groups(snap: &DirectorySnapshot) -> Vec<String> {
    snap.groups.iter().map(|g| g.id.clone()).collect()
}

#[tokio::test]
async fn snapshot_is_every_member_group_and_membership() {
    let h = Harness::start(80, None).await;
    let account = h.account(&h.fx.admin);
    let dir = ModeDirectory::new(&account, &h.config);

    h.reset_counters().await;
    let progress = Progress::default();
    let snap = dir.snapshot(&KnownUsers::new(), &progress).await.unwrap();
    let counters = h.counters().await;
    let n = snap.users.len() as u64;
    // The member list once, then one account per member.
    assert_eq!(
        counters["by_route"]["GET /api/{ws}/memberships"], 1,
        "{counters}"
    );
    assert_eq!(counters["by_route"][DETAIL_ROUTE], n, "{counters}");
    assert_eq!(
        counters["by_route"]["GET /api/{ws}/groups"], 1,
        "{counters}"
    );
    assert_is_the_simulators(&h, &snap).await;

    assert_eq!(
        progress.of("users"),
        [SnapshotProgress {
            phase: "users",
            done: n,
            total: Some(n)
        }]
    );
    let details = progress.of("user_details");
    assert_eq!(details.len() as u64, n);
    assert!(details.iter().all(|p| p.total == Some(n)));
    assert_eq!(details.last().unwrap().done, n);
    let g = snap.groups.len() as u64;
    assert_eq!(progress.of("groups").len(), 1);
    let members = progress.of("memberships");
    assert_eq!(members.len() as u64, g);
    assert_eq!(
        members.last().copied(),
        Some(SnapshotProgress {
            phase: "memberships",
            done: g,
            total: Some(g)
        })
    );
}

#[tokio::test]
async fn snapshot_reads_accounts_of_new_and_changed_members_only() {
    let h = Harness::start(60, None).await;
    let account = h.account(&h.fx.admin);
    let dir = ModeDirectory::new(&account, &h.config);
    let first = snapshot(&dir, &KnownUsers::new()).await;

    // Nothing changed: no account is read.
    h.reset_counters().await;
    let second = snapshot(&dir, &known_from(&first)).await;
    assert_eq!(detail_calls(&h).await, 0, "{}", h.counters().await);
    assert_eq!(second, first);

    // A new invitee: their account alone.
    let invited = dir
        .create_user(&NewUser {
            email: "newcomer@acme.example".into(),
            ..NewUser::default()
        })
        .await
        .unwrap();
    h.reset_counters().await;
    let third = snapshot(&dir, &known_from(&second)).await;
    assert_eq!(detail_calls(&h).await, 1, "{}", h.counters().await);
    assert_eq!(third.users.len(), second.users.len() + 1);
    let newcomer = third.users.iter().find(|u| u.id == invited.id).unwrap();
    assert_eq!(newcomer.email.as_deref(), Some("newcomer@acme.example"));
    assert_eq!(newcomer.status, UserStatus::Invited);

    // A member removed (now a former member): their account alone.
    let bob = h.user_token("bob").await;
    dir.delete_user(&bob).await.unwrap();
    h.reset_counters().await;
    let fourth = snapshot(&dir, &known_from(&third)).await;
    assert_eq!(detail_calls(&h).await, 1, "{}", h.counters().await);
    let bob = fourth.users.iter().find(|u| u.id == bob).unwrap();
    assert_eq!(bob.status, UserStatus::Inactive);
    assert_eq!(bob.email.as_deref(), Some("bob@acme.example"));

    // What was carried over is what a full read says.
    assert_eq!(fourth, snapshot(&dir, &KnownUsers::new()).await);
    assert_is_the_simulators(&h, &fourth).await;

    // A known user that differs in role, or lacks an email, is read again.
    let mut known = known_from(&fourth);
    let alice = h.user_token("alice").await;
    known.get_mut(&alice).unwrap().is_admin = false;
    let someone = fourth.users.iter().find(|u| u.id != alice).unwrap();
    known.get_mut(&someone.id).unwrap().email = None;
    h.reset_counters().await;
    assert_eq!(snapshot(&dir, &known).await, fourth);
    assert_eq!(detail_calls(&h).await, 2, "{}", h.counters().await);
}

#[tokio::test]
async fn snapshot_over_a_paginating_workspace() {
    let h = Harness::start(500, Some(20)).await;
    let account = h.account(&h.fx.admin);
    let dir = ModeDirectory::new(&account, &h.config);
    let snap = snapshot(&dir, &KnownUsers::new()).await;
    assert_eq!(snap.users.len(), 500);
    assert_is_the_simulators(&h, &snap).await;
    // Some group is bigger than one page of its member list.
    let biggest = snap
        .groups
        .iter()
        .map(|g| snap.memberships.iter().filter(|m| m.0 == g.id).count())
        .max()
        .unwrap();
    assert!(biggest > 20, "{biggest}");

    h.reset_counters().await;
    assert_eq!(snapshot(&dir, &known_from(&snap)).await, snap);
    assert_eq!(detail_calls(&h).await, 0);
}

#[tokio::test]
async fn snapshot_fails_as_a_whole_on_a_vendor_error() {
    let h = Harness::start(40, None).await;
    let account = h.account(&h.fx.admin);
    let dir = ModeDirectory::new(&account, &h.config);
    let mut raw = h.raw_memberships().await;
    raw.sort_by(|a, b| a["member_token"].as_str().cmp(&b["member_token"].as_str()));
    let middle = raw[raw.len() / 2]["member_username"]
        .as_str()
        .unwrap()
        .to_owned();
    let group = h
        .raw_groups()
        .await
        .iter()
        .find(|g| g["member_count"].as_u64().unwrap_or(1) > 0)
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let ws = h.fx.workspace.clone();
    for spec in [
        format!("500@next=1@/api/{middle}"),
        format!("500@next=1@/api/{ws}/memberships"),
        format!("500@next=1@/api/{ws}/groups/{group}/memberships"),
        "malformed@next=1@/api/bob".to_owned(),
    ] {
        h.fault(&spec).await;
        let err = dir
            .snapshot(&KnownUsers::new(), &Progress::default())
            .await
            .unwrap_err();
        let expected = if spec.starts_with("malformed") {
            None
        } else {
            Some(500)
        };
        assert_eq!(remote_status(&err), expected, "{spec}: {err:?}");
    }

    // A member whose account vanished meanwhile (404) keeps no email, and
    // is read again next time.
    h.fault(&format!("404@next=1@/api/{middle}")).await;
    let snap = snapshot(&dir, &KnownUsers::new()).await;
    for user in &snap.users {
        let vanished = user.username.as_deref() == Some(middle.as_str());
        assert_eq!(user.email.is_none(), vanished, "{:?}", user.username);
    }
    h.reset_counters().await;
    let again = snapshot(&dir, &known_from(&snap)).await;
    assert_eq!(detail_calls(&h).await, 1);
    assert_is_the_simulators(&h, &again).await;
}
