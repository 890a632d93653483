//! §9 "SCIM (EE)" lines and the rest of §6.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

fn new_user(email: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": email,
        "name": {"givenName": "Bob", "familyName": "Builder"},
        "emails": [{"value": email, "type": "work", "primary": true}],
        "active": true,
        "locale": "en-US"
    })
}

#[tokio::test]
async fn filter_users_by_user_name() {
    let sim = Sim::world().await;
    let r = sim
        .get(
            "/api/ee/scim/v2/Users?filter=userName%20eq%20%22UMA%40example.com%22",
            &sim.scim(),
        )
        .await;
    assert_eq!(r.ct(), SCIM);
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(
        body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    assert_eq!(
        (
            body["totalResults"].clone(),
            body["startIndex"].clone(),
            body["itemsPerPage"].clone()
        ),
        (json!(1), json!(1), json!(1))
    );
    let user = &body["Resources"][0];
    assert_eq!(
        user["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
    );
    assert_eq!(user["userName"], json!("uma@example.com"));
    assert_eq!(
        user["name"],
        json!({"givenName": "Uma", "familyName": "User"})
    );
    assert_eq!(
        user["emails"],
        json!([{"value": "uma@example.com", "type": "work", "primary": true}])
    );
    assert_eq!(user["active"], json!(true));
    assert_eq!(user["meta"], json!({"resourceType": "User"}));
    assert_eq!(user["id"].as_str().unwrap().len(), 21);
    // Groups exclude the magic ones.
    let groups = user["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["display"], json!("Marketing"));
    let eid = groups[0]["value"].as_str().unwrap();
    assert!(
        groups[0]["$ref"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/api/ee/scim/v2/Groups/{eid}"))
    );

    // Without a filter: personal users by id (inactive included), 1-based paging.
    let all = sim.get("/api/ee/scim/v2/Users", &sim.scim()).await.json();
    assert_eq!(all["totalResults"], json!(5));
    let page = sim
        .get("/api/ee/scim/v2/Users?startIndex=2&count=2", &sim.scim())
        .await
        .json();
    assert_eq!(
        (page["startIndex"].clone(), page["itemsPerPage"].clone()),
        (json!(2), json!(2))
    );
    let names: Vec<&str> = page["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["uma@example.com", "vic@example.com"]);

    let bad = sim
        .get(
            "/api/ee/scim/v2/Users?filter=emails%20co%20%22x%22",
            &sim.scim(),
        )
        .await;
    assert_eq!((bad.status, bad.ct()), (400, SCIM));
    assert_eq!(
        bad.json()["detail"],
        json!("Unsupported filter parameter: emails co \"x\"")
    );
    let bad_count = sim.get("/api/ee/scim/v2/Users?count=0", &sim.scim()).await;
    assert_eq!(
        bad_count.assert_json(400)["errors"],
        json!({"count": "nullable value must be an integer greater than zero."})
    );
}

#[tokio::test]
async fn patch_replace_active() {
    let sim = Sim::world().await;
    let found = sim
        .get(
            "/api/ee/scim/v2/Users?filter=userName%20eq%20%22vic%40example.com%22",
            &sim.scim(),
        )
        .await
        .json();
    let eid = found["Resources"][0]["id"].as_str().unwrap().to_owned();
    let vic = sim.login("vic@example.com", "vic-pass1").await;
    let r = sim
        .call(
            Method::PATCH,
            &format!("/api/ee/scim/v2/Users/{eid}"),
            &sim.scim(),
            Some(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "Replace", "path": "active", "value": false}]}),
            ),
        )
        .await;
    assert_eq!((r.status, r.ct()), (200, SCIM));
    assert_eq!(r.json()["active"], json!(false));
    // Deactivation killed Vic's session.
    sim.get("/api/user/current", &vic)
        .await
        .assert_text(401, "Unauthenticated");

    // Other ops are ignored; a path-less map and string booleans work; names too.
    let r = sim
        .call(
            Method::PATCH,
            &format!("/api/ee/scim/v2/Users/{eid}"),
            &sim.scim(),
            Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "add", "path": "active", "value": "false"},
                                       {"op": "replace", "value": {"active": "True", "name.givenName": "Victor"}}]})),
        )
        .await;
    let body = r.json();
    assert_eq!(
        (body["active"].clone(), body["name"]["givenName"].clone()),
        (json!(true), json!("Victor"))
    );
    let r = sim
        .call(
            Method::PATCH,
            &format!("/api/ee/scim/v2/Users/{eid}"),
            &sim.scim(),
            Some(json!({"schemas": [], "Operations": [{"op": "replace", "path": "title", "value": "x"}]})),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["detail"].clone()),
        (400, json!("Unsupported path: title"))
    );
    let missing = sim
        .call(
            Method::PATCH,
            "/api/ee/scim/v2/Users/AAAAAAAAAAAAAAAAAAAAA",
            &sim.scim(),
            Some(json!({"schemas": [], "Operations": []})),
        )
        .await;
    assert_eq!((missing.status, missing.ct()), (404, SCIM));
    assert_eq!(missing.json()["detail"], json!("User not found"));
    sim.invariants_hold().await;
}

#[tokio::test]
async fn create_and_replace_users() {
    let sim = Sim::world().await;
    let r = sim
        .post(
            "/api/ee/scim/v2/Users",
            &sim.scim(),
            new_user("Bob@example.com"),
        )
        .await;
    assert_eq!((r.status, r.ct()), (201, SCIM));
    let bob = r.json();
    assert_eq!(bob["userName"], json!("bob@example.com"));
    assert_eq!(bob["locale"], json!("en_US"));
    let admin = sim.admin().await;
    let listed = sim.get("/api/user?query=bob", &admin).await.json();
    assert_eq!(listed["data"][0]["sso_source"], json!("scim"));

    let dup = sim
        .post(
            "/api/ee/scim/v2/Users",
            &sim.scim(),
            new_user("uma@example.com"),
        )
        .await;
    assert_eq!((dup.status, dup.ct()), (409, SCIM));
    let body = dup.json();
    assert_eq!(body["schemas"], json!([ERROR]));
    assert_eq!(body["detail"], json!("Email address is already in use"));
    assert_eq!(body["status"], json!(409));

    let eid = bob["id"].as_str().unwrap();
    let mut replace = new_user("bob@example.com");
    replace["name"]["givenName"] = json!("Robert");
    let r = sim
        .put(
            &format!("/api/ee/scim/v2/Users/{eid}"),
            &sim.scim(),
            replace,
        )
        .await;
    assert_eq!(r.json()["name"]["givenName"], json!("Robert"));
    let r = sim
        .put(
            &format!("/api/ee/scim/v2/Users/{eid}"),
            &sim.scim(),
            new_user("robert@example.com"),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["detail"],
        json!("You may not update the email of an existing user.")
    );
    let got = sim
        .get(&format!("/api/ee/scim/v2/Users/{eid}"), &sim.scim())
        .await;
    assert_eq!(
        (got.status, got.json()["name"]["givenName"].clone()),
        (200, json!("Robert"))
    );

    let invalid = sim
        .post(
            "/api/ee/scim/v2/Users",
            &sim.scim(),
            json!({"userName": "x@example.com"}),
        )
        .await;
    assert_eq!(invalid.status, 400);
    assert!(invalid.json()["errors"].is_object());
}

#[tokio::test]
async fn bad_bearer_is_a_scim_401() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    for auth in [
        Auth::None,
        Auth::Bearer("mb_wrong".into()),
        admin,
        sim.admin_key(),
    ] {
        let r = sim.get("/api/ee/scim/v2/Users", &auth).await;
        assert_eq!((r.status, r.ct()), (401, SCIM));
        assert_eq!(
            r.json(),
            json!({"schemas": [ERROR], "status": 401, "detail": "Unauthenticated"})
        );
    }
    // Disabled SCIM refuses the right key too.
    sim.put(
        "/_sim/metabase/scim",
        &Auth::None,
        json!({"enabled": false}),
    )
    .await;
    assert_eq!(
        sim.get("/api/ee/scim/v2/Users", &sim.scim()).await.status,
        401
    );
}

#[tokio::test]
async fn scim_groups() {
    let sim = Sim::world().await;
    let list = sim.get("/api/ee/scim/v2/Groups", &sim.scim()).await;
    assert_eq!(list.ct(), SCIM);
    let list = list.json();
    let names: Vec<&str> = list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Marketing", "Sales"], "magic groups are invisible");
    let found = sim
        .get(
            "/api/ee/scim/v2/Groups?filter=displayName%20eq%20%22Marketing%22",
            &sim.scim(),
        )
        .await
        .json();
    assert_eq!(found["totalResults"], json!(1));
    let eid = found["Resources"][0]["id"].as_str().unwrap().to_owned();
    let one = sim
        .get(&format!("/api/ee/scim/v2/Groups/{eid}"), &sim.scim())
        .await
        .json();
    assert_eq!(
        one["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:Group"])
    );
    let displays: Vec<&str> = one["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["display"].as_str().unwrap())
        .collect();
    assert!(displays.contains(&"uma@example.com"));
    sim.get(
        "/api/ee/scim/v2/Groups?filter=name%20sw%20%22M%22",
        &sim.scim(),
    )
    .await
    .assert_text(400, "Unsupported filter parameter");

    let uma_eid = sim
        .get(
            "/api/ee/scim/v2/Users?filter=userName%20eq%20%22uma%40example.com%22",
            &sim.scim(),
        )
        .await
        .json()["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = sim
        .post(
            "/api/ee/scim/v2/Groups",
            &sim.scim(),
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Okta Team",
                   "members": [{"value": uma_eid}]}),
        )
        .await;
    assert_eq!((r.status, r.ct()), (201, SCIM));
    let team = r.json();
    assert_eq!(team["members"][0]["display"], json!("uma@example.com"));
    let dup = sim
        .post(
            "/api/ee/scim/v2/Groups",
            &sim.scim(),
            json!({"schemas": [], "displayName": "okta team"}),
        )
        .await;
    assert_eq!(
        (dup.status, dup.json()["detail"].clone()),
        (409, json!("A group with that name already exists"))
    );

    let team_eid = team["id"].as_str().unwrap();
    let r = sim
        .put(
            &format!("/api/ee/scim/v2/Groups/{team_eid}"),
            &sim.scim(),
            json!({"schemas": [], "displayName": "Okta Crew"}),
        )
        .await;
    let renamed = r.json();
    // Empty members leave the membership as it was.
    assert_eq!(
        (
            renamed["displayName"].clone(),
            renamed["members"].as_array().unwrap().len()
        ),
        (json!("Okta Crew"), 1)
    );
    let r = sim
        .delete(&format!("/api/ee/scim/v2/Groups/{team_eid}"), &sim.scim())
        .await;
    assert_eq!(r.status, 204);
    let gone = sim
        .get(&format!("/api/ee/scim/v2/Groups/{team_eid}"), &sim.scim())
        .await;
    assert_eq!(
        (gone.status, gone.json()["detail"].clone()),
        (404, json!("Group not found"))
    );
    sim.invariants_hold().await;
}

#[tokio::test]
async fn scim_key_configuration() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let key = sim
        .get("/api/ee/scim/api_key", &admin)
        .await
        .assert_json(200);
    assert_eq!(
        &key["masked_key"].as_str().unwrap()[..7],
        &sim.f.scim_key[..7]
    );
    let rotated = sim
        .post("/api/ee/scim/api_key", &admin, json!({}))
        .await
        .assert_json(200);
    let new_key = rotated["unmasked_key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, sim.f.scim_key);
    assert_eq!(
        sim.get("/api/ee/scim/v2/Users", &sim.scim()).await.status,
        401
    );
    assert_eq!(
        sim.get("/api/ee/scim/v2/Users", &Auth::Bearer(new_key))
            .await
            .status,
        200
    );
}
