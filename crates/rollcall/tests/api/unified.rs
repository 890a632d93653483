//! The Unified User Directory API over both simulators: every call and
//! filter, the mappings, the unsupported cases, paging walks, idempotent
//! replays, and vendor errors passing through as contract errors.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, spawn_app, spawn_app_with};

async fn linked(app: &TestApp) -> (String, String) {
    let mode = app
        .acme
        .create_account(&app.mode_link_body())
        .await
        .unwrap();
    let metabase = app
        .acme
        .create_account(&app.metabase_api_key_body(&app.metabase.fixtures().admin_api_key))
        .await
        .unwrap();
    (mode.id, metabase.id)
}

async fn json_of(response: reqwest::Response, expected: u16) -> Value {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert_eq!(status, expected, "{body}");
    if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap()
    }
}

#[tokio::test]
async fn user_lists_have_the_contract_shape_on_both_vendors() {
    let app = spawn_app().await;
    let (mode, metabase) = linked(&app).await;

    let mb = json_of(
        app.call(Method::GET, "users", &metabase, "limit=5")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(mb["result_count"], 5);
    assert!(mb["next_cursor"].is_string());
    assert!(
        mb.get("is_partial_response").is_none(),
        "Metabase lists are complete"
    );
    let user = &mb["result"][0];
    for field in [
        "id",
        "username",
        "email",
        "first_name",
        "last_name",
        "name",
        "status",
        "is_admin",
        "roles",
        "groups",
        "last_active_at",
        "created_at",
        "updated_at",
    ] {
        assert!(user.get(field).is_some(), "missing {field}: {user}");
    }
    assert!(user.get("remote_data").is_none(), "only on request");
    assert!(
        user["groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["id"].is_string() && g["name"].is_string())
    );

    let md = json_of(
        app.call(Method::GET, "users", &mode, "")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        md["is_partial_response"], true,
        "Mode lists lack email without a call per user"
    );
    let first = &md["result"][0];
    assert!(first["email"].is_null());
    let id = first["id"].as_str().unwrap();
    let full = json_of(
        app.call(
            Method::GET,
            &format!("users/{id}"),
            &mode,
            "include_remote_data=true",
        )
        .send()
        .await
        .unwrap(),
        200,
    )
    .await;
    assert!(
        full["email"].as_str().unwrap().contains('@'),
        "get returns the full user: {full}"
    );
    assert!(full["remote_data"].is_object());
}

#[tokio::test]
async fn email_filters_and_remote_data_on_lists() {
    let app = spawn_app().await;
    let (mode, metabase) = linked(&app).await;
    let email = app.metabase.fixtures().member_email.to_uppercase();
    let found = json_of(
        app.call(
            Method::GET,
            "users",
            &metabase,
            &format!("email={email}&include_remote_data=true"),
        )
        .send()
        .await
        .unwrap(),
        200,
    )
    .await;
    assert_eq!(found["result_count"], 1, "{found}");
    assert_eq!(found["result"][0]["email"], email.to_lowercase());
    assert!(
        found["result"][0]["remote_data"]["is_superuser"].is_boolean(),
        "the vendor's own object"
    );
    let none = json_of(
        app.call(Method::GET, "users", &metabase, "email=nobody@example.com")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(none["result_count"], 0);
    // Mode's membership list has no email: filtering on it would take one call per member.
    let refused = json_of(
        app.call(Method::GET, "users", &mode, "email=alice@acme.example")
            .send()
            .await
            .unwrap(),
        501,
    )
    .await;
    assert_eq!(refused["error"]["code"], "unsupported_by_provider");
    let invited = json_of(
        app.call(Method::GET, "users", &metabase, "status=invited")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        invited["result_count"], 0,
        "Metabase has no pending invitations"
    );
}

#[tokio::test]
async fn admin_flags_roles_and_builtin_groups_map_as_documented() {
    let app = spawn_app().await;
    let (mode, metabase) = linked(&app).await;
    for account in [&mode, &metabase] {
        let admins = json_of(
            app.call(Method::GET, "users", account, "is_admin=true")
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        let list = admins["result"].as_array().unwrap();
        assert!(!list.is_empty(), "{account}");
        for user in list {
            assert_eq!(user["is_admin"], true);
            assert!(
                user["roles"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["id"] == "admin"),
                "{user}"
            );
        }
        let roles = json_of(
            app.call(Method::GET, "roles", account, "")
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        let types: Vec<&str> = roles["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["type"].as_str().unwrap())
            .collect();
        assert!(
            types.contains(&"admin") && types.contains(&"member"),
            "{roles}"
        );
        let admin = json_of(
            app.call(Method::GET, "roles/admin", account, "")
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(admin["applicable_in"], "workspace");
        json_of(
            app.call(Method::GET, "roles/nope", account, "")
                .send()
                .await
                .unwrap(),
            404,
        )
        .await;
    }
    let groups = json_of(
        app.call(Method::GET, "groups", &metabase, "")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let builtin: HashSet<&str> = groups["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["is_builtin"] == true)
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(builtin, HashSet::from(["Administrators", "All Users"]));
}

#[tokio::test]
async fn me_says_who_the_credential_acts_as() {
    let app = spawn_app().await;
    let (mode, metabase) = linked(&app).await;
    let me = json_of(
        app.call(Method::GET, "me", &metabase, "")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(me["kind"], "api_key");
    let password = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    let me = json_of(
        app.call(Method::GET, "me", &password.id, "")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        (me["kind"].as_str(), me["email"].as_str()),
        (
            Some("user"),
            Some(app.metabase.fixtures().admin_email.as_str())
        )
    );
    assert_eq!(me["is_admin"], true);
    let me = json_of(
        app.call(Method::GET, "me", &mode, "").send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(me["kind"], "user");
}

#[tokio::test]
async fn metabase_provisioning_and_deprovisioning() {
    let app = spawn_app().await;
    let (_, metabase) = linked(&app).await;
    let groups = json_of(
        app.call(Method::GET, "groups", &metabase, "")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let custom = groups["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["is_builtin"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let created = json_of(
        app.call(Method::POST, "users", &metabase, "")
            .json(&json!({"email":"New.Hire@Example.com","first_name":"New","last_name":"Hire","group_ids":[custom]}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    assert_eq!(
        (created["email"].as_str(), created["status"].as_str()),
        (Some("new.hire@example.com"), Some("active"))
    );
    assert!(
        created["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"] == custom.as_str())
    );
    let id = created["id"].as_str().unwrap().to_owned();

    let duplicate = json_of(
        app.call(Method::POST, "users", &metabase, "")
            .json(&json!({"email":"new.hire@example.com"}))
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    assert_eq!(duplicate["error"]["code"], "conflict");
    assert_eq!(
        duplicate["error"]["remote"]["status"], 400,
        "the vendor's answer rides along"
    );

    let admin = json_of(
        app.call(Method::PATCH, &format!("users/{id}"), &metabase, "")
            .json(&json!({"is_admin": true}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(admin["is_admin"], true);
    let renamed = json_of(
        app.call(Method::PATCH, &format!("users/{id}"), &metabase, "")
            .json(&json!({"last_name":"Veteran"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(renamed["last_name"], "Veteran");
    let inactive = json_of(
        app.call(Method::PATCH, &format!("users/{id}"), &metabase, "")
            .json(&json!({"status":"inactive"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(inactive["status"], "inactive");
    let listed = json_of(
        app.call(
            Method::GET,
            "users",
            &metabase,
            "status=inactive&limit=1000",
        )
        .send()
        .await
        .unwrap(),
        200,
    )
    .await;
    assert!(
        listed["result"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["id"] == id.as_str())
    );
    let back = json_of(
        app.call(Method::PATCH, &format!("users/{id}"), &metabase, "")
            .json(&json!({"status":"active"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(back["status"], "active");
    json_of(
        app.call(Method::DELETE, &format!("users/{id}"), &metabase, "")
            .send()
            .await
            .unwrap(),
        204,
    )
    .await;
    let gone = json_of(
        app.call(Method::GET, &format!("users/{id}"), &metabase, "")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        gone["status"], "inactive",
        "Metabase deprovisioning deactivates"
    );
    json_of(
        app.call(Method::GET, "users/999999", &metabase, "")
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
}

#[tokio::test]
async fn the_last_metabase_admin_cannot_be_removed() {
    let app = spawn_app_with(Options {
        metabase_users: Some(10),
        ..Options::default()
    })
    .await;
    let account = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap()
        .id;
    // API-key users count as admins at Metabase: remove the keys first,
    // through the proxy, as the linked admin.
    let keys = app
        .proxy(Method::GET, &account, "/api/api-key")
        .send()
        .await
        .unwrap();
    let keys: Value = keys.json().await.unwrap();
    for key in keys.as_array().unwrap() {
        let id = key["id"].as_i64().unwrap();
        let deleted = app
            .proxy(Method::DELETE, &account, &format!("/api/api-key/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 204);
    }
    let me = json_of(
        app.call(Method::GET, "me", &account, "")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let myself = me["id"].as_str().unwrap().to_owned();
    let admins = json_of(
        app.call(Method::GET, "users", &account, "is_admin=true")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    for admin in admins["result"].as_array().unwrap() {
        let id = admin["id"].as_str().unwrap();
        if id != myself {
            json_of(
                app.call(Method::PATCH, &format!("users/{id}"), &account, "")
                    .json(&json!({"is_admin": false}))
                    .send()
                    .await
                    .unwrap(),
                200,
            )
            .await;
        }
    }
    let refused = json_of(
        app.call(Method::PATCH, &format!("users/{myself}"), &account, "")
            .json(&json!({"is_admin": false}))
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    assert_eq!(refused["error"]["code"], "conflict");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("last member of the 'Admin' group"),
        "{refused}"
    );
    let refused = json_of(
        app.call(Method::DELETE, &format!("users/{myself}"), &account, "")
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    assert_eq!(refused["error"]["remote"]["status"], 400);
}

#[tokio::test]
async fn mode_provisioning_is_the_invite_and_its_gaps_are_501() {
    let app = spawn_app().await;
    let (mode, _) = linked(&app).await;
    let invited = json_of(
        app.call(Method::POST, "users", &mode, "")
            .json(&json!({"email":"carol@acme.example"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    assert_eq!(invited["status"], "invited");
    let id = invited["id"].as_str().unwrap().to_owned();

    let role_change = json_of(
        app.call(Method::PATCH, &format!("users/{id}"), &mode, "")
            .json(&json!({"is_admin": true}))
            .send()
            .await
            .unwrap(),
        501,
    )
    .await;
    assert_eq!(role_change["error"]["code"], "unsupported_by_provider");
    assert!(
        role_change["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Mode")
    );
    let described = json_of(
        app.call(Method::POST, "groups", &mode, "")
            .json(&json!({"name":"Described","description":"x"}))
            .send()
            .await
            .unwrap(),
        501,
    )
    .await;
    assert_eq!(described["error"]["code"], "unsupported_by_provider");

    json_of(
        app.call(Method::DELETE, &format!("users/{id}"), &mode, "")
            .send()
            .await
            .unwrap(),
        204,
    )
    .await;
    let after = json_of(
        app.call(Method::GET, &format!("users/{id}"), &mode, "")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(after["status"], "inactive", "the membership was removed");

    // A workspace API token cannot invite: Mode's own refusal, as a 501.
    let f = app.mode.fixtures().clone();
    let ws_account = app
        .acme
        .create_account(&json!({"provider":"mode","config":{"base_url":app.mode.base_url(),"workspace":f.workspace},
                                 "credentials":{"token":f.workspace_api.token,"secret":f.workspace_api.secret}}))
        .await
        .unwrap();
    let refused = json_of(
        app.call(Method::POST, "users", &ws_account.id, "")
            .json(&json!({"email":"dave@acme.example"}))
            .send()
            .await
            .unwrap(),
        501,
    )
    .await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Api Keys"),
        "{refused}"
    );
}

#[tokio::test]
async fn groups_and_memberships_on_both_vendors() {
    let app = spawn_app().await;
    let (mode, metabase) = linked(&app).await;
    for account in [&mode, &metabase] {
        let group = json_of(
            app.call(Method::POST, "groups", account, "")
                .json(&json!({"name":"Rollcall Test"}))
                .send()
                .await
                .unwrap(),
            201,
        )
        .await;
        let gid = group["id"].as_str().unwrap().to_owned();
        let fetched = json_of(
            app.call(
                Method::GET,
                &format!("groups/{gid}"),
                account,
                "include_remote_data=true",
            )
            .send()
            .await
            .unwrap(),
            200,
        )
        .await;
        assert_eq!(fetched["name"], "Rollcall Test");
        assert!(fetched["remote_data"].is_object());
        assert_eq!(group["is_builtin"], false);
        let renamed = json_of(
            app.call(Method::PATCH, &format!("groups/{gid}"), account, "")
                .json(&json!({"name":"Rollcall Renamed"}))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(renamed["name"], "Rollcall Renamed");
        json_of(
            app.call(Method::POST, "groups", account, "")
                .json(&json!({"name":"Rollcall Renamed"}))
                .send()
                .await
                .unwrap(),
            409,
        )
        .await;

        let users = json_of(
            app.call(Method::GET, "users", account, "limit=3")
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        let uid = users["result"][1]["id"].as_str().unwrap().to_owned();
        let body = json!({"group_id": gid, "user_id": uid});
        let added = json_of(
            app.call(Method::POST, "group-memberships", account, "")
                .json(&body)
                .send()
                .await
                .unwrap(),
            201,
        )
        .await;
        assert_eq!(added["id"], format!("{gid}:{uid}"));
        let again = json_of(
            app.call(Method::POST, "group-memberships", account, "")
                .json(&body)
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(
            again["id"], added["id"],
            "adding an existing membership returns it"
        );

        let listed = json_of(
            app.call(
                Method::GET,
                "group-memberships",
                account,
                &format!("group_id={gid}"),
            )
            .send()
            .await
            .unwrap(),
            200,
        )
        .await;
        assert_eq!(
            listed["result"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["user_id"] == uid.as_str())
                .count(),
            1
        );
        let by_user = json_of(
            app.call(
                Method::GET,
                "group-memberships",
                account,
                &format!("user_id={uid}"),
            )
            .send()
            .await
            .unwrap(),
            200,
        )
        .await;
        assert!(
            by_user["result"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["group_id"] == gid.as_str())
        );
        let in_group = json_of(
            app.call(Method::GET, "users", account, &format!("group_id={gid}"))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert!(
            in_group["result"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["id"] == uid.as_str()),
            "{in_group}"
        );

        let mid = format!("{gid}:{uid}");
        json_of(
            app.call(
                Method::DELETE,
                &format!("group-memberships/{mid}"),
                account,
                "",
            )
            .send()
            .await
            .unwrap(),
            204,
        )
        .await;
        json_of(
            app.call(
                Method::DELETE,
                &format!("group-memberships/{mid}"),
                account,
                "",
            )
            .send()
            .await
            .unwrap(),
            404,
        )
        .await;
        json_of(
            app.call(Method::DELETE, &format!("groups/{gid}"), account, "")
                .send()
                .await
                .unwrap(),
            204,
        )
        .await;
        // Mode keeps deleted groups (soft delete) but Rollcall shows them as gone.
        json_of(
            app.call(Method::GET, &format!("groups/{gid}"), account, "")
                .send()
                .await
                .unwrap(),
            404,
        )
        .await;
    }
    // Metabase's built-in groups cannot be deleted: a conflict carrying its words.
    let groups = json_of(
        app.call(Method::GET, "groups", &metabase, "")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let admins = groups["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "Administrators")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = json_of(
        app.call(Method::DELETE, &format!("groups/{admins}"), &metabase, "")
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    assert!(
        refused["error"]["remote"]["body"]
            .as_str()
            .unwrap()
            .contains("Administrators")
    );
}

async fn walk(
    app: &TestApp,
    account: &str,
    resource: &str,
    query: &str,
    limit: u32,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = format!("limit={limit}");
        if !query.is_empty() {
            q.push('&');
            q.push_str(query);
        }
        if let Some(c) = &cursor {
            q.push_str(&format!("&next_cursor={}", rollcall_client::encode(c)));
        }
        let page = json_of(
            app.call(Method::GET, resource, account, &q)
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        let items = page["result"].as_array().unwrap();
        assert!(items.len() <= limit as usize);
        ids.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    ids
}

fn assert_each_once(ids: &[String], expected: usize, what: &str) {
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{what}: an id came twice");
    assert_eq!(ids.len(), expected, "{what}: every one exactly once");
}

#[tokio::test]
async fn walking_ten_thousand_users_sees_each_exactly_once() {
    let app = spawn_app_with(Options {
        mode_users: Some(10_000),
        metabase_users: Some(10_000),
        mode_page_size: Some(100),
        mode_unlimited: true,
        ..Options::default()
    })
    .await;
    let (mode, metabase) = linked(&app).await;

    let f = app.metabase.fixtures().clone();
    let total: Value = reqwest::Client::new()
        .get(format!("{}/api/user?limit=1", app.metabase.base_url()))
        .header("x-api-key", &f.admin_api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let active = total["total"].as_u64().unwrap() as usize;
    for limit in [7, 100, 1000] {
        let ids = walk(&app, &metabase, "users", "", limit).await;
        assert_each_once(&ids, active, &format!("metabase limit={limit}"));
    }

    let mode_state: Value = reqwest::get(format!("{}/_sim/mode/state", app.mode.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let all_ids = walk(&app, &mode, "users", "", 1000).await;
    let active_mode = walk(&app, &mode, "users", "status=active", 1000)
        .await
        .len();
    for limit in [7, 100] {
        let ids = walk(&app, &mode, "users", "", limit).await;
        assert_each_once(&ids, active_mode, &format!("mode limit={limit}"));
    }
    assert_each_once(&all_ids, active_mode, "mode limit=1000");
    assert!(active_mode > 9_000, "{mode_state}");
}

#[tokio::test]
async fn an_unpaginated_mode_workspace_walks_correctly_too() {
    let app = spawn_app_with(Options {
        mode_users: Some(300),
        mode_unlimited: true,
        ..Options::default()
    })
    .await;
    let (mode, _) = linked(&app).await;
    let all = walk(&app, &mode, "users", "", 1000).await;
    let small = walk(&app, &mode, "users", "", 7).await;
    assert_each_once(&small, all.len(), "unpaginated mode limit=7");
}

#[tokio::test]
async fn idempotent_replays_make_no_second_vendor_call() {
    let app = spawn_app().await;
    let (_, metabase) = linked(&app).await;
    let send = |name: &str, key: &str| {
        app.call(Method::POST, "groups", &metabase, "")
            .header("idempotency-key", key)
            .json(&json!({"name": name}))
            .send()
    };
    let posts = || {
        app.metabase
            .control()
            .counters
            .snapshot()
            .by_route
            .get("POST /api/permissions/group")
            .copied()
            .unwrap_or(0)
    };
    let first = send("Once Only", "key-1").await.unwrap();
    assert_eq!(first.status(), 201);
    let first_body: Value = first.json().await.unwrap();
    let before = posts();
    let replay = send("Once Only", "key-1").await.unwrap();
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), first_body);
    assert_eq!(posts(), before, "no second vendor call");

    let other = send("Something Else", "key-1").await.unwrap();
    assert_eq!(other.status(), 422, "same key, different request");
    // A refused request is replayed as refused.
    let dup = send("Once Only", "key-2").await.unwrap();
    assert_eq!(dup.status(), 409);
    let dup_again = send("Once Only", "key-2").await.unwrap();
    assert_eq!(dup_again.status(), 409);
    assert_eq!(dup_again.headers()["idempotent-replayed"], "true");
    // Keys are per tenant: another tenant's key of the same name is not a replay.
    let globex_account = reqwest::Client::new()
        .post(format!("{}/integrated-accounts", app.base_url))
        .bearer_auth(app.globex_key())
        .header("idempotency-key", "key-1")
        .json(&app.metabase_password_body())
        .send()
        .await
        .unwrap();
    assert_eq!(globex_account.status(), 201);
    assert!(
        globex_account
            .headers()
            .get("idempotent-replayed")
            .is_none()
    );
}

#[tokio::test]
async fn vendor_failures_become_contract_errors_with_the_vendors_answer() {
    // A short deadline, so retries of a vendor that keeps failing give up fast.
    let app = spawn_app_with(Options {
        settings: Some(rollcall_server::Settings {
            vendor_deadline_secs: 1,
            ..rollcall_server::Settings::default()
        }),
        ..Options::default()
    })
    .await;
    let faults = format!("{}/_sim/faults", app.metabase.base_url());
    let http = reqwest::Client::new();
    for (spec, status, code) in [
        ("503@always@/api/user", 503, "provider_unavailable"),
        ("500@always@/api/user", 502, "provider_error"),
        ("malformed@always@/api/user", 502, "provider_error"),
        ("html=502@always@/api/user", 503, "provider_unavailable"),
        ("429@always@/api/user", 429, "provider_rate_limited"),
    ] {
        assert_eq!(http.delete(&faults).send().await.unwrap().status(), 204);
        // A fresh account per case: repeated failures open an account's circuit.
        let (_, metabase) = linked(&app).await;
        assert_eq!(
            http.post(&faults)
                .json(&json!({"spec": spec}))
                .send()
                .await
                .unwrap()
                .status(),
            201
        );
        let body = json_of(
            app.call(Method::GET, "users", &metabase, "")
                .send()
                .await
                .unwrap(),
            status,
        )
        .await;
        assert_eq!(body["error"]["code"], code, "{spec}: {body}");
        assert!(body["error"]["request_id"].is_string());
        if spec.starts_with("50") || spec.starts_with("429") {
            assert_eq!(
                body["error"]["remote"]["status"].as_u64(),
                Some(spec[..3].parse().unwrap()),
                "{body}"
            );
        }
    }
}

#[tokio::test]
async fn bad_requests_and_other_tenants_are_refused() {
    let app = spawn_app().await;
    let (_, metabase) = linked(&app).await;
    for query in [
        "limit=0",
        "status=sleeping",
        "source=snapshot",
        "colour=red",
        "next_cursor=forged",
    ] {
        let body = json_of(
            app.call(Method::GET, "users", &metabase, query)
                .send()
                .await
                .unwrap(),
            400,
        )
        .await;
        assert_eq!(body["error"]["code"], "invalid_request", "{query}");
    }
    // The cache of an account never synced is a conflict, not an empty list.
    let unsynced = json_of(
        app.call(Method::GET, "users", &metabase, "source=cache")
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    assert_eq!(unsynced["error"]["code"], "conflict");
    let missing = reqwest::Client::new()
        .get(format!("{}/unified/user-directory/users", app.base_url))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400, "integrated_account_id is required");
    let body = json_of(
        app.call(Method::POST, "users", &metabase, "")
            .json(&json!({"email":"not-an-email"}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(body["error"]["message"].as_str().unwrap().contains("email"));
    let theirs = reqwest::Client::new()
        .get(app.unified("users", &metabase, ""))
        .bearer_auth(app.globex_key())
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 404);
}
