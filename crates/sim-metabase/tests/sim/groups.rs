//! §9 "Groups and memberships" lines.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

const FORBIDDEN: &str = "You don't have permissions to do that.";
const GROUP_MANAGER: &str = "The group manager permissions functionality is only enabled if you have a premium token with the advanced-permissions feature.";

fn group<'a>(groups: &'a Value, name: &str) -> &'a Value {
    groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == json!(name))
        .unwrap()
}

#[tokio::test]
async fn list_groups_sorted_with_member_counts() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let groups = sim
        .get("/api/permissions/group", &admin)
        .await
        .assert_json(200);
    let names: Vec<&str> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Administrators", "All Users", "Marketing", "Sales"]);
    let admins = group(&groups, "Administrators");
    assert_eq!(admins["id"], json!(2));
    assert_eq!(admins["magic_group_type"], json!("admin"));
    assert_eq!(admins["is_tenant_group"], json!(false));
    // Ada and the admin key's user.
    assert_eq!(admins["member_count"], json!(2));
    let all = group(&groups, "All Users");
    assert_eq!(
        (all["id"].clone(), all["magic_group_type"].clone()),
        (json!(1), json!("all-internal-users"))
    );
    // Active members only: 4 active people + 2 key users, not Gone.
    assert_eq!(all["member_count"], json!(6));
    let marketing = group(&groups, "Marketing");
    assert_eq!(marketing["magic_group_type"], Value::Null);
    assert_eq!(
        marketing["member_count"],
        json!(2),
        "Uma and the member key's user"
    );
    assert_eq!(group(&groups, "Sales")["member_count"], json!(0));
    for g in groups.as_array().unwrap() {
        let eid = g["entity_id"].as_str().unwrap();
        assert_eq!(eid.len(), 21);
        assert!(
            eid.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        );
        assert_eq!(g.as_object().unwrap().len(), 6);
    }

    let page = sim
        .get("/api/permissions/group?limit=1&offset=1", &admin)
        .await
        .assert_json(200);
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["name"], json!("All Users"));

    let uma = sim.login("uma@example.com", "old-pass1").await;
    sim.get("/api/permissions/group", &uma)
        .await
        .assert_text(403, FORBIDDEN);
}

#[tokio::test]
async fn get_one_group_with_members() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let g = sim
        .get(&format!("/api/permissions/group/{MARKETING}"), &admin)
        .await
        .assert_json(200);
    assert_eq!(g["name"], json!("Marketing"));
    assert!(g.get("member_count").is_none());
    let members = g["members"].as_array().unwrap();
    // Ordered by lower(first), lower(last): "Rollcall member" then "Uma User".
    assert_eq!(members.len(), 2);
    let uma = &members[1];
    let membership_id = uma["membership_id"].as_u64().unwrap();
    assert_eq!(
        *uma,
        json!({"id": UMA, "user_id": UMA, "first_name": "Uma", "last_name": "User", "email": "uma@example.com",
               "is_superuser": false, "group_id": MARKETING, "membership_id": membership_id, "common_name": "Uma User"})
    );
    sim.get("/api/permissions/group/10000", &admin)
        .await
        .assert_text(404, "Not found.");
}

#[tokio::test]
async fn create_rename_delete_groups() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let r = sim
        .post("/api/permissions/group", &admin, json!({"name": "Finance"}))
        .await;
    let created = r.assert_json(200);
    assert_eq!(created["id"], json!(5));
    assert_eq!(created["name"], json!("Finance"));
    assert_eq!(created["magic_group_type"], Value::Null);
    assert_eq!(created["is_tenant_group"], json!(false));
    assert_eq!(created["entity_id"].as_str().unwrap().len(), 21);
    assert_eq!(created.as_object().unwrap().len(), 5);

    sim.post(
        "/api/permissions/group",
        &admin,
        json!({"name": "marketing"}),
    )
    .await
    .assert_text(400, "A group with that name already exists.");
    let r = sim
        .post("/api/permissions/group", &admin, json!({"name": null}))
        .await;
    assert_eq!(
        r.assert_json(400),
        json!({"errors": {"name": "value must be a non-blank string."},
               "specific-errors": {"name": ["should be a string, received: nil", "non-blank string, received: nil"]}})
    );

    let r = sim
        .put(
            &format!("/api/permissions/group/{MARKETING}"),
            &admin,
            json!({"name": "Sales Team"}),
        )
        .await;
    assert_eq!(r.assert_json(200)["name"], json!("Sales Team"));
    sim.put(
        &format!("/api/permissions/group/{MARKETING}"),
        &admin,
        json!({"name": "SALES"}),
    )
    .await
    .assert_text(400, "A group with that name already exists.");
    sim.put("/api/permissions/group/1", &admin, json!({"name": "x"}))
        .await
        .assert_text(
            400,
            "You cannot edit or delete the 'All Users' permissions group!",
        );
    sim.put("/api/permissions/group/10000", &admin, json!({"name": "x"}))
        .await
        .assert_text(404, "Not found.");

    let r = sim
        .delete(&format!("/api/permissions/group/{MARKETING}"), &admin)
        .await;
    assert_eq!((r.status, r.text.as_str()), (204, ""));
    sim.get(&format!("/api/permissions/group/{MARKETING}"), &admin)
        .await
        .assert_text(404, "Not found.");
    // Members lose the membership; the member key falls back to All Users and keeps working.
    let uma = sim.get(&format!("/api/user/{UMA}"), &admin).await.json();
    assert_eq!(uma["user_group_memberships"], json!([{"id": 1}]));
    let key = Auth::Key(sim.f.member_api_key.clone());
    assert_eq!(
        sim.get("/api/user/current", &key).await.json()["group_ids"],
        json!([1])
    );
    let keys = sim.get("/api/api-key", &admin).await.json();
    assert_eq!(keys[1]["group"], json!({"id": 1, "name": "All Users"}));

    sim.delete("/api/permissions/group/2", &admin)
        .await
        .assert_text(
            400,
            "You cannot edit or delete the 'Administrators' permissions group!",
        );
    sim.delete("/api/permissions/group/1", &admin)
        .await
        .assert_text(
            400,
            "You cannot edit or delete the 'All Users' permissions group!",
        );
    // A missing group is not checked [inference]: 204.
    assert_eq!(
        sim.delete("/api/permissions/group/10000", &admin)
            .await
            .status,
        204
    );
    sim.invariants_hold().await;
}

#[tokio::test]
async fn membership_map_includes_inactive_users() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let map = sim
        .get("/api/permissions/membership", &admin)
        .await
        .assert_json(200);
    let keys: Vec<&str> = map
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected: Vec<String> = (1..=7).map(|i: u32| i.to_string()).collect();
    expected.sort();
    assert_eq!(
        keys,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(
        map["1"],
        json!([{"membership_id": 1, "group_id": 1, "user_id": 1, "is_group_manager": false},
               {"membership_id": 2, "group_id": 2, "user_id": 1, "is_group_manager": false}])
    );
    assert_eq!(map[GONE.to_string()][0]["group_id"], json!(1));
}

#[tokio::test]
async fn add_members() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let r = sim
        .post(
            "/api/permissions/membership",
            &admin,
            json!({"group_id": SALES, "user_id": UMA}),
        )
        .await;
    let members = r.assert_json(200);
    assert_eq!(members.as_array().unwrap().len(), 1);
    assert_eq!(members[0]["user_id"], json!(UMA));
    assert_eq!(members[0]["group_id"], json!(SALES));

    let r = sim
        .post(
            "/api/permissions/membership",
            &admin,
            json!({"group_id": 2, "user_id": VIC}),
        )
        .await;
    let admins = r.assert_json(200);
    assert!(
        admins
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user_id"] == json!(VIC))
    );
    assert_eq!(
        sim.get(&format!("/api/user/{VIC}"), &admin).await.json()["is_superuser"],
        json!(true)
    );

    sim.post(
        "/api/permissions/membership",
        &admin,
        json!({"group_id": 1, "user_id": VIC}),
    )
    .await
    .assert_text(
        400,
        "You cannot add or remove users to/from the 'All Users' group.",
    );
    sim.post(
        "/api/permissions/membership",
        &admin,
        json!({"group_id": SALES, "user_id": VIC, "is_group_manager": true}),
    )
    .await
    .assert_text(402, GROUP_MANAGER);
    // Re-adding an existing membership: the unique constraint, a 500 [inference].
    let dup = sim
        .post(
            "/api/permissions/membership",
            &admin,
            json!({"group_id": SALES, "user_id": UMA}),
        )
        .await;
    assert_eq!(
        dup.assert_json(500)["cause"]
            .as_str()
            .map(|s| s.contains("duplicate key")),
        Some(true)
    );
    // An unknown user or group: the newest tenant check.
    sim.post(
        "/api/permissions/membership",
        &admin,
        json!({"group_id": SALES, "user_id": 999}),
    )
    .await
    .assert_text(
        400,
        "Cannot add non-tenant user to tenant-group or vice versa",
    );
    let missing = sim
        .post(
            "/api/permissions/membership",
            &admin,
            json!({"group_id": 999}),
        )
        .await;
    assert_eq!(
        missing.assert_json(400)["specific-errors"],
        json!({"user_id": ["missing required key, received: nil"]})
    );
    sim.invariants_hold().await;
}

#[tokio::test]
async fn update_remove_and_clear_memberships() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let map = sim.get("/api/permissions/membership", &admin).await.json();
    let uma_marketing = map[UMA.to_string()]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["group_id"] == json!(MARKETING))
        .unwrap()["membership_id"]
        .as_u64()
        .unwrap();

    sim.put(
        &format!("/api/permissions/membership/{uma_marketing}"),
        &admin,
        json!({"is_group_manager": true}),
    )
    .await
    .assert_text(402, GROUP_MANAGER);

    let r = sim
        .delete(
            &format!("/api/permissions/membership/{uma_marketing}"),
            &admin,
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (204, ""));
    sim.delete(
        &format!("/api/permissions/membership/{uma_marketing}"),
        &admin,
    )
    .await
    .assert_text(404, "Not found.");
    // All Users memberships are fixed.
    let uma_all = map[UMA.to_string()][0]["membership_id"].as_u64().unwrap();
    sim.delete(&format!("/api/permissions/membership/{uma_all}"), &admin)
        .await
        .assert_text(
            400,
            "You cannot add or remove users to/from the 'All Users' group.",
        );

    // Ada's Admin membership (id 2) while the admin key's user is an admin: fine
    // to remove the key user's first, then Ada's is the last.
    let key_user_admin = map["6"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["group_id"] == json!(2))
        .unwrap()["membership_id"]
        .as_u64()
        .unwrap();
    assert_eq!(
        sim.delete(
            &format!("/api/permissions/membership/{key_user_admin}"),
            &admin
        )
        .await
        .status,
        204
    );
    sim.delete("/api/permissions/membership/2", &admin)
        .await
        .assert_text(
            400,
            "You cannot remove the last member of the 'Admin' group!",
        );

    let r = sim
        .put(
            &format!("/api/permissions/membership/{MARKETING}/clear"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (204, ""));
    let g = sim
        .get(&format!("/api/permissions/group/{MARKETING}"), &admin)
        .await
        .json();
    assert_eq!(g["members"], json!([]));
    sim.put("/api/permissions/membership/2/clear", &admin, json!({}))
        .await
        .assert_text(400, "Invalid Request.");
    sim.put("/api/permissions/membership/1/clear", &admin, json!({}))
        .await
        .assert_text(
            400,
            "You cannot add or remove users to/from the 'All Users' group.",
        );
    sim.put("/api/permissions/membership/10000/clear", &admin, json!({}))
        .await
        .assert_text(404, "Not found.");
    sim.invariants_hold().await;
}

#[tokio::test]
async fn non_admins_are_refused_everywhere() {
    let sim = Sim::world().await;
    let uma = sim.login("uma@example.com", "old-pass1").await;
    let admin = sim.admin().await;
    let map = sim.get("/api/permissions/membership", &admin).await.json();
    let mid = map[UMA.to_string()][1]["membership_id"].as_u64().unwrap();
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/permissions/group".into(), None),
        (
            Method::GET,
            format!("/api/permissions/group/{MARKETING}"),
            None,
        ),
        (
            Method::POST,
            "/api/permissions/group".into(),
            Some(json!({"name": "X"})),
        ),
        (
            Method::PUT,
            format!("/api/permissions/group/{MARKETING}"),
            Some(json!({"name": "X"})),
        ),
        (
            Method::DELETE,
            format!("/api/permissions/group/{MARKETING}"),
            None,
        ),
        (Method::GET, "/api/permissions/membership".into(), None),
        (
            Method::POST,
            "/api/permissions/membership".into(),
            Some(json!({"group_id": SALES, "user_id": UMA})),
        ),
        (
            Method::DELETE,
            format!("/api/permissions/membership/{mid}"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/permissions/membership/{MARKETING}/clear"),
            Some(json!({})),
        ),
    ];
    for (method, path, body) in calls {
        let r = sim.call(method.clone(), &path, &uma, body).await;
        assert_eq!(
            (r.status, r.ct(), r.text.as_str()),
            (403, TEXT, FORBIDDEN),
            "{method} {path}"
        );
    }
    // The group-manager update checks the feature first: 402 even for non-admins.
    sim.put(
        &format!("/api/permissions/membership/{mid}"),
        &uma,
        json!({"is_group_manager": true}),
    )
    .await
    .assert_text(402, GROUP_MANAGER);
    // Nothing changed.
    let groups = sim.get("/api/permissions/group", &admin).await.json();
    assert_eq!(groups.as_array().unwrap().len(), 4);
    sim.invariants_hold().await;
}
