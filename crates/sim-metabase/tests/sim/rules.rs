//! The spec's state rules 1–8, each through the API.

use serde_json::json;

use crate::support::*;

/// 1. Every personal user is always in All Users.
#[tokio::test]
async fn rule1_every_personal_user_is_in_all_users() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let created = sim
        .post("/api/user", &admin, json!({"email": "new@example.com"}))
        .await
        .json();
    assert_eq!(created["user_group_memberships"], json!([{"id": 1}]));
    // Every road out of All Users is closed.
    let path = format!("/api/user/{UMA}");
    sim.put(
        &path,
        &admin,
        json!({"user_group_memberships": [{"id": MARKETING}]}),
    )
    .await
    .assert_text(
        400,
        "You cannot add or remove users to/from the 'All Users' group.",
    );
    sim.put(&path, &admin, json!({"user_group_memberships": []}))
        .await
        .assert_text(
            400,
            "You cannot add or remove users to/from the 'All Users' group.",
        );
    let users = sim.get("/api/user?status=all", &admin).await.json();
    for u in users["data"].as_array().unwrap() {
        assert_eq!(u["group_ids"][0], json!(1), "{}", u["email"]);
    }
    sim.invariants_hold().await;
}

/// 2. Administrators membership ⇔ is_superuser.
#[tokio::test]
async fn rule2_admin_membership_is_superuser() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let vic = format!("/api/user/{VIC}");
    sim.put(
        &vic,
        &admin,
        json!({"user_group_memberships": [{"id": 1}, {"id": 2}]}),
    )
    .await;
    assert_eq!(
        sim.get(&vic, &admin).await.json()["is_superuser"],
        json!(true)
    );
    sim.put(&vic, &admin, json!({"user_group_memberships": [{"id": 1}]}))
        .await;
    assert_eq!(
        sim.get(&vic, &admin).await.json()["is_superuser"],
        json!(false)
    );
    sim.put(&vic, &admin, json!({"is_superuser": true})).await;
    let groups = sim.get(&vic, &admin).await.json()["user_group_memberships"].clone();
    assert_eq!(groups, json!([{"id": 1}, {"id": 2}]));
    sim.put(&vic, &admin, json!({"is_superuser": false})).await;
    let admins = sim.get("/api/permissions/group/2", &admin).await.json();
    assert!(
        !admins["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user_id"] == json!(VIC))
    );
    sim.invariants_hold().await;
}

/// 3. Active admins ≥ 1, by every road.
#[tokio::test]
async fn rule3_the_last_admin_stays() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    assert_eq!(sim.delete("/api/api-key/1", &admin).await.status, 204);
    let last = "You cannot remove the last member of the 'Admin' group!";
    sim.delete("/api/user/1", &admin)
        .await
        .assert_text(400, last);
    sim.put("/api/user/1", &admin, json!({"is_superuser": false}))
        .await
        .assert_text(400, last);
    sim.put(
        "/api/user/1",
        &admin,
        json!({"user_group_memberships": [{"id": 1}]}),
    )
    .await
    .assert_text(400, last);
    sim.delete("/api/permissions/membership/2", &admin)
        .await
        .assert_text(400, last);
    // A deactivated admin does not count.
    let vic = format!("/api/user/{VIC}");
    sim.put(&vic, &admin, json!({"is_superuser": true})).await;
    sim.delete(&vic, &admin).await;
    sim.delete("/api/user/1", &admin)
        .await
        .assert_text(400, last);
    let me = sim.get("/api/user/current", &admin).await.json();
    assert_eq!(
        (me["is_superuser"].clone(), me["is_active"].clone()),
        (json!(true), json!(true))
    );
    sim.invariants_hold().await;
}

/// 4. Emails are unique case-insensitively and stored lower-case.
#[tokio::test]
async fn rule4_emails_unique_and_lower_case() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let r = sim
        .post("/api/user", &admin, json!({"email": "MiXeD@Example.COM"}))
        .await;
    assert_eq!(r.json()["email"], json!("mixed@example.com"));
    let dup = sim
        .post("/api/user", &admin, json!({"email": "mixed@EXAMPLE.com"}))
        .await;
    assert_eq!(dup.status, 400);
    let r = sim
        .put(
            &format!("/api/user/{VIC}"),
            &admin,
            json!({"email": "Vic.New@Example.com"}),
        )
        .await;
    assert_eq!(r.json()["email"], json!("vic.new@example.com"));
    sim.login("VIC.NEW@example.com", "vic-pass1").await;
    sim.invariants_hold().await;
}

/// 5. Group names are unique case-insensitively.
#[tokio::test]
async fn rule5_group_names_unique() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    for name in ["MARKETING", "administrators", "all users"] {
        sim.post("/api/permissions/group", &admin, json!({"name": name}))
            .await
            .assert_text(400, "A group with that name already exists.");
    }
    sim.put(
        &format!("/api/permissions/group/{SALES}"),
        &admin,
        json!({"name": "marketing"}),
    )
    .await
    .assert_text(400, "A group with that name already exists.");
    // Renaming to its own name (or a case change of it) is not a clash.
    assert_eq!(
        sim.put(
            &format!("/api/permissions/group/{SALES}"),
            &admin,
            json!({"name": "SALES"})
        )
        .await
        .status,
        200
    );
    sim.invariants_hold().await;
}

/// 6. member_count and members count active users; /membership includes inactive ones.
#[tokio::test]
async fn rule6_counts_are_active_only() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let count = |groups: &serde_json::Value| {
        groups
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == json!(MARKETING))
            .unwrap()["member_count"]
            .clone()
    };
    let before = sim.get("/api/permissions/group", &admin).await.json();
    assert_eq!(count(&before), json!(2));
    sim.delete(&format!("/api/user/{UMA}"), &admin).await;
    let after = sim.get("/api/permissions/group", &admin).await.json();
    assert_eq!(count(&after), json!(1));
    let detail = sim
        .get(&format!("/api/permissions/group/{MARKETING}"), &admin)
        .await
        .json();
    assert!(
        !detail["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user_id"] == json!(UMA))
    );
    let map = sim.get("/api/permissions/membership", &admin).await.json();
    assert!(
        map[UMA.to_string()]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["group_id"] == json!(MARKETING))
    );
    sim.put(&format!("/api/user/{UMA}/reactivate"), &admin, json!({}))
        .await;
    assert_eq!(
        count(&sim.get("/api/permissions/group", &admin).await.json()),
        json!(2)
    );
    sim.invariants_hold().await;
}

/// 7. Deactivation kills sessions and API-key auth for that user.
#[tokio::test]
async fn rule7_deactivation_kills_sessions_and_keys() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let uma = sim.login("uma@example.com", "old-pass1").await;
    sim.delete(&format!("/api/user/{UMA}"), &admin).await;
    sim.get("/api/user/current", &uma)
        .await
        .assert_text(401, "Unauthenticated");
    let sessions = sim
        .get(&format!("/_sim/metabase/users/{UMA}/sessions"), &Auth::None)
        .await
        .json();
    assert_eq!(sessions["total"], json!(0), "revoked, not just refused");
    // Reactivation does not bring the session back.
    sim.put(&format!("/api/user/{UMA}/reactivate"), &admin, json!({}))
        .await;
    sim.get("/api/user/current", &uma)
        .await
        .assert_text(401, "Unauthenticated");

    // An API key's user deactivated through /api/user: the key stops working.
    let member_key = Auth::Key(sim.f.member_api_key.clone());
    let me = sim.get("/api/user/current", &member_key).await.json();
    let key_user = me["id"].as_u64().unwrap();
    // DELETE /api/user only touches personal users; the key is deactivated by deleting it.
    assert_eq!(
        sim.delete(&format!("/api/user/{key_user}"), &admin)
            .await
            .status,
        200
    );
    assert_eq!(sim.get("/api/user/current", &member_key).await.status, 200);
    sim.delete("/api/api-key/2", &admin).await;
    sim.get("/api/user/current", &member_key)
        .await
        .assert_text(401, "Unauthenticated");
}

/// 8. A password change invalidates other sessions.
#[tokio::test]
async fn rule8_password_change_invalidates_other_sessions() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let s1 = sim.login("vic@example.com", "vic-pass1").await;
    let s2 = sim.login("vic@example.com", "vic-pass1").await;
    let r = sim
        .put(
            &format!("/api/user/{VIC}/password"),
            &s1,
            json!({"password": "n3w-pass", "old_password": "vic-pass1"}),
        )
        .await;
    let fresh = Auth::Session(r.json()["session_id"].as_str().unwrap().to_owned());
    for old in [&s1, &s2] {
        sim.get("/api/user/current", old)
            .await
            .assert_text(401, "Unauthenticated");
    }
    assert_eq!(sim.get("/api/user/current", &fresh).await.status, 200);
    let live = sim
        .get(&format!("/_sim/metabase/users/{VIC}/sessions"), &Auth::None)
        .await
        .json();
    assert_eq!(live["live"], json!(1));
    // An admin reset kills the new session too.
    sim.put(
        &format!("/api/user/{VIC}/password"),
        &admin,
        json!({"password": "an0ther-pass"}),
    )
    .await;
    sim.get("/api/user/current", &fresh)
        .await
        .assert_text(401, "Unauthenticated");
}
