//! §9 "API keys" lines.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

fn is_key(s: &str) -> bool {
    s.len() == 47 && s.starts_with("mb_")
}

#[tokio::test]
async fn create_use_and_delete_a_key() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let r = sim
        .post(
            "/api/api-key",
            &admin,
            json!({"name": "ci-bot", "group_id": MARKETING}),
        )
        .await;
    let key = r.assert_json(200);
    assert_eq!(
        key["id"],
        json!(4),
        "after the two fixture keys and the SCIM key (one id sequence)"
    );
    assert_eq!(key["name"], json!("ci-bot"));
    assert_eq!(key["group"], json!({"id": MARKETING, "name": "Marketing"}));
    let unmasked = key["unmasked_key"].as_str().unwrap().to_owned();
    assert!(is_key(&unmasked), "{unmasked}");
    let masked = key["masked_key"].as_str().unwrap();
    assert_eq!(masked.len(), 47);
    assert_eq!(&masked[..7], &unmasked[..7]);
    assert!(masked[7..].bytes().all(|b| b == b'*'));
    assert_eq!(
        key["updated_by"],
        json!({"id": 1, "common_name": "Ada Admin"})
    );
    assert!(key["created_at"].is_string() && key["updated_at"].is_string());

    let dup = sim
        .post(
            "/api/api-key",
            &admin,
            json!({"name": "ci-bot", "group_id": MARKETING}),
        )
        .await;
    assert_eq!(
        dup.assert_json(400),
        json!({"errors": {"name": "An API key with this name already exists."}})
    );
    let null_group = sim
        .post(
            "/api/api-key",
            &admin,
            json!({"name": "other", "group_id": null}),
        )
        .await;
    assert_eq!(
        null_group.assert_json(400),
        json!({"errors": {"group_id": "value must be an integer greater than zero."},
               "specific-errors": {"group_id": ["value must be an integer greater than zero., received: nil"]}})
    );

    let auth = Auth::Key(unmasked.clone());
    let me = sim.get("/api/user/current", &auth).await.assert_json(200);
    let email = me["email"].as_str().unwrap();
    let uuid = email
        .strip_prefix("api-key-user-")
        .unwrap()
        .strip_suffix("@api-key.invalid")
        .unwrap();
    assert!(is_uuid(uuid), "{email}");
    assert_eq!(
        (me["first_name"].clone(), me["last_name"].clone()),
        (json!("ci-bot"), json!(""))
    );
    assert_eq!(me["common_name"], json!("ci-bot"));
    assert_eq!(me["group_ids"], json!([1, MARKETING]));
    assert_eq!(me["personal_collection_id"], Value::Null);

    let list = sim.get("/api/user?status=all", &admin).await.json();
    assert!(
        !list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["email"] == json!(email))
    );
    // Groups and memberships do show key users.
    let marketing = sim
        .get(&format!("/api/permissions/group/{MARKETING}"), &admin)
        .await
        .json();
    assert!(
        marketing["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["email"] == json!(email))
    );

    let r = sim.delete("/api/api-key/4", &admin).await;
    assert_eq!((r.status, r.text.as_str()), (204, ""));
    sim.get("/api/user/current", &auth)
        .await
        .assert_text(401, "Unauthenticated");
    sim.delete("/api/api-key/4", &admin)
        .await
        .assert_text(404, "Not found.");
}

#[tokio::test]
async fn list_count_update_regenerate() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let list = sim.get("/api/api-key", &admin).await.assert_json(200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "the SCIM key is not listed");
    assert!(list.iter().all(|k| k.get("unmasked_key").is_none()));
    assert_eq!(list[0]["group"], json!({"id": 2, "name": "Administrators"}));
    assert_eq!(
        sim.get("/api/api-key/count", &admin).await.assert_json(200),
        json!(2)
    );

    let r = sim
        .put(
            "/api/api-key/2",
            &admin,
            json!({"name": "renamed", "group_id": SALES}),
        )
        .await;
    let key = r.assert_json(200);
    assert_eq!(key["name"], json!("renamed"));
    assert_eq!(key["group"], json!({"id": SALES, "name": "Sales"}));
    assert!(key.get("unmasked_key").is_none());
    let member_key = Auth::Key(sim.f.member_api_key.clone());
    let me = sim.get("/api/user/current", &member_key).await.json();
    assert_eq!(
        (me["first_name"].clone(), me["group_ids"].clone()),
        (json!("renamed"), json!([1, SALES]))
    );
    sim.put("/api/api-key/99", &admin, json!({"name": "x"}))
        .await
        .assert_text(404, "Not found.");

    let r = sim
        .put("/api/api-key/2/regenerate", &admin, json!({}))
        .await;
    let regen = r.assert_json(200);
    let new_key = regen["unmasked_key"].as_str().unwrap().to_owned();
    assert!(is_key(&new_key));
    assert_eq!(regen["prefix"], json!(&new_key[..7]));
    assert_eq!(regen["id"], json!(2));
    // The old key stops working at once; the new one works.
    sim.get("/api/user/current", &member_key)
        .await
        .assert_text(401, "Unauthenticated");
    assert_eq!(
        sim.get("/api/user/current", &Auth::Key(new_key))
            .await
            .status,
        200
    );

    // Moving the admin key out of Administrators demotes its user.
    sim.put("/api/api-key/1", &admin, json!({"group_id": MARKETING}))
        .await;
    sim.get("/api/user", &sim.admin_key())
        .await
        .assert_text(403, "You don't have permissions to do that.");

    let uma = sim.login("uma@example.com", "old-pass1").await;
    for (method, path) in [
        (Method::GET, "/api/api-key"),
        (Method::GET, "/api/api-key/count"),
        (Method::DELETE, "/api/api-key/1"),
        (Method::PUT, "/api/api-key/1/regenerate"),
    ] {
        sim.call(method, path, &uma, None)
            .await
            .assert_text(403, "You don't have permissions to do that.");
    }
    sim.post("/api/api-key", &uma, json!({"name": "mine", "group_id": 1}))
        .await
        .assert_text(403, "You don't have permissions to do that.");
    sim.invariants_hold().await;
}

#[tokio::test]
async fn keys_in_administrators_are_admins() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let r = sim
        .post(
            "/api/api-key",
            &admin,
            json!({"name": "ops", "group_id": 2}),
        )
        .await;
    let key = Auth::Key(r.json()["unmasked_key"].as_str().unwrap().to_owned());
    assert_eq!(sim.get("/api/user", &key).await.status, 200);
    let me = sim.get("/api/user/current", &key).await.json();
    assert_eq!(me["is_superuser"], json!(true));
    // Unknown group: the tenant check, and no key was made.
    sim.post(
        "/api/api-key",
        &admin,
        json!({"name": "ghost", "group_id": 999}),
    )
    .await
    .assert_text(
        400,
        "Cannot add non-tenant user to tenant-group or vice versa",
    );
    assert_eq!(sim.get("/api/api-key/count", &admin).await.json(), json!(3));
    sim.invariants_hold().await;
}
