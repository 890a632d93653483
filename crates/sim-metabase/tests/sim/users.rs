//! §9 "Users" lines, list filters and pagination.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::*;

fn ids(body: &Value) -> Vec<u64> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_u64().unwrap())
        .collect()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn admin_list_has_the_envelope_and_exact_keys() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let body = sim.get("/api/user", &admin).await.assert_json(200);
    assert_eq!(
        keys(&body),
        ["data", "limit", "offset", "total"]
            .map(String::from)
            .into()
    );
    assert_eq!(
        (body["limit"].clone(), body["offset"].clone()),
        (Value::Null, Value::Null)
    );
    // Active personal users only, ordered by lower(first), lower(last), id;
    // API-key users are not listed.
    assert_eq!(ids(&body), vec![1, SSO, UMA, VIC]);
    assert_eq!(body["total"], json!(4));
    let ada = &body["data"][0];
    let expected: BTreeSet<String> = [
        "id",
        "email",
        "first_name",
        "last_name",
        "common_name",
        "date_joined",
        "last_login",
        "updated_at",
        "is_superuser",
        "is_qbnewb",
        "is_active",
        "sso_source",
        "login_attributes",
        "locale",
        "personal_collection_id",
        "group_ids",
    ]
    .map(String::from)
    .into();
    assert_eq!(keys(ada), expected);
    assert_eq!(ada["email"], json!("admin@example.com"));
    assert_eq!(ada["common_name"], json!("Ada Admin"));
    assert_eq!(ada["date_joined"], json!("2024-05-01T10:00:00.123Z"));
    assert_eq!(ada["is_superuser"], json!(true));
    assert_eq!(ada["is_qbnewb"], json!(false));
    assert_eq!(ada["group_ids"], json!([1, 2]));
    assert_eq!(ada["sso_source"], Value::Null);
    assert!(ada["personal_collection_id"].is_u64());
    assert_eq!(body["data"][1]["sso_source"], json!("google"));
    assert_eq!(body["data"][2]["group_ids"], json!([1, MARKETING]));
}

#[tokio::test]
async fn paging_follows_the_middleware() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let two = sim.get("/api/user?limit=2", &admin).await.assert_json(200);
    assert_eq!(
        (two["limit"].clone(), two["offset"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(ids(&two), vec![1, SSO]);
    assert_eq!(two["total"], json!(4));
    let from_one = sim.get("/api/user?offset=1", &admin).await.assert_json(200);
    assert_eq!(
        (from_one["limit"].clone(), from_one["offset"].clone()),
        (json!(50), json!(1))
    );
    assert_eq!(ids(&from_one), vec![SSO, UMA, VIC]);
    // limit=1 is limit=1&offset=0; junk counts as absent.
    let a = sim.get("/api/user?limit=1", &admin).await.json();
    let b = sim.get("/api/user?limit=1&offset=0", &admin).await.json();
    assert_eq!(a, b);
    let junk = sim.get("/api/user?limit=abc", &admin).await.json();
    assert_eq!(
        (junk["limit"].clone(), junk["offset"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(junk["total"], json!(4));
    let junk_limit = sim.get("/api/user?limit=abc&offset=3", &admin).await.json();
    assert_eq!(
        (junk_limit["limit"].clone(), junk_limit["offset"].clone()),
        (json!(50), json!(3))
    );
    assert_eq!(ids(&junk_limit), vec![VIC]);
    // Past the end: empty page, total unchanged.
    let past = sim
        .get("/api/user?limit=10&offset=100", &admin)
        .await
        .json();
    assert_eq!((ids(&past).len(), past["total"].clone()), (0, json!(4)));
}

#[tokio::test]
async fn list_filters() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let get = |q: &'static str| {
        let (sim, admin) = (&sim, &admin);
        async move {
            sim.get(&format!("/api/user?{q}"), admin)
                .await
                .assert_json(200)
        }
    };
    let deactivated = get("status=deactivated").await;
    assert_eq!(
        (ids(&deactivated), deactivated["total"].clone()),
        (vec![GONE], json!(1))
    );
    let all = get("status=all").await;
    assert_eq!(ids(&all), vec![1, GONE, SSO, UMA, VIC]);
    assert_eq!(ids(&get("include_deactivated=true").await), ids(&all));
    // include_deactivated=true wins over status (the code, not the docstring).
    assert_eq!(
        ids(&get("include_deactivated=true&status=active").await),
        ids(&all)
    );
    assert_eq!(
        ids(&get("include_deactivated=false&status=deactivated").await),
        vec![GONE]
    );
    // An unknown status means active.
    assert_eq!(ids(&get("status=bogus").await), vec![1, SSO, UMA, VIC]);
    let ada = get("query=ada").await;
    assert_eq!((ids(&ada), ada["total"].clone()), (vec![1], json!(1)));
    // Case-insensitive over first, last and email.
    assert_eq!(ids(&get("query=VIEWER").await), vec![VIC]);
    assert_eq!(ids(&get("query=uma%40example").await), vec![UMA]);
    let admins = get("group_id=2").await;
    assert_eq!((ids(&admins), admins["total"].clone()), (vec![1], json!(1)));
    assert_eq!(ids(&get("group_id=3").await), vec![UMA]);
    let paged = get("status=all&query=a&limit=2&offset=1").await;
    assert_eq!(paged["total"], json!(5));
    assert_eq!(ids(&paged), vec![GONE, SSO]);

    let bad_group = sim.get("/api/user?group_id=abc", &admin).await;
    let body = bad_group.assert_json(400);
    assert_eq!(
        body["errors"],
        json!({"group_id": "nullable value must be an integer greater than zero."})
    );
    let bad_bool = sim.get("/api/user?include_deactivated=yes", &admin).await;
    assert_eq!(
        bad_bool.assert_json(400)["errors"],
        json!({"include_deactivated": "nullable value must be a valid boolean string ('true' or 'false')."})
    );
}

#[tokio::test]
async fn non_admins_cannot_list() {
    let sim = Sim::world().await;
    let uma = sim.login("uma@example.com", "old-pass1").await;
    sim.get("/api/user", &uma)
        .await
        .assert_text(403, "You don't have permissions to do that.");
    let member_key = Auth::Key(sim.f.member_api_key.clone());
    sim.get("/api/user", &member_key)
        .await
        .assert_text(403, "You don't have permissions to do that.");
    // The admin API key lists.
    assert_eq!(sim.get("/api/user", &sim.admin_key()).await.status, 200);
}

#[tokio::test]
async fn get_one_user() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let uma = sim.login("uma@example.com", "old-pass1").await;
    for auth in [&admin, &uma] {
        let body = sim
            .get(&format!("/api/user/{UMA}"), auth)
            .await
            .assert_json(200);
        assert_eq!(body["common_name"], json!("Uma User"));
        assert_eq!(
            body["user_group_memberships"],
            json!([{"id": 1}, {"id": MARKETING}])
        );
        let expected: BTreeSet<String> = [
            "id",
            "email",
            "first_name",
            "last_name",
            "common_name",
            "date_joined",
            "last_login",
            "updated_at",
            "is_superuser",
            "is_qbnewb",
            "is_active",
            "sso_source",
            "login_attributes",
            "locale",
            "user_group_memberships",
        ]
        .map(String::from)
        .into();
        assert_eq!(keys(&body), expected);
    }
    sim.get(&format!("/api/user/{VIC}"), &uma)
        .await
        .assert_text(403, "You don't have permissions to do that.");
    sim.get("/api/user/999", &admin)
        .await
        .assert_text(404, "Not found.");
    // Inactive users are returned.
    let gone = sim
        .get(&format!("/api/user/{GONE}"), &admin)
        .await
        .assert_json(200);
    assert_eq!(gone["is_active"], json!(false));
    // A zero id fails the route schema.
    let zero = sim.get("/api/user/0", &admin).await.assert_json(400);
    assert_eq!(
        zero["errors"],
        json!({"id": "value must be an integer greater than zero."})
    );
    // The internal user exists but is never listed.
    assert_eq!(sim.get("/api/user/13371338", &admin).await.status, 200);
    let all = sim.get("/api/user?status=all", &admin).await.json();
    assert!(!ids(&all).contains(&13_371_338));
}

#[tokio::test]
async fn current_user_has_the_extras() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let me = sim.get("/api/user/current", &admin).await.assert_json(200);
    for key in [
        "personal_collection_id",
        "group_ids",
        "is_installer",
        "has_invited_second_user",
        "has_question_and_dashboard",
        "has_model",
        "first_login",
        "custom_homepage",
        "sso_source",
    ] {
        assert!(me.get(key).is_some(), "missing {key}");
    }
    assert_eq!(me["is_installer"], json!(true));
    assert_eq!(me["group_ids"], json!([1, 2]));
    assert_eq!(me["custom_homepage"], Value::Null);
}

#[tokio::test]
async fn create_user_lines() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let r = sim
        .post(
            "/api/user",
            &admin,
            json!({"first_name": "Bob", "last_name": "Builder", "email": "Bob@Example.com",
                   "user_group_memberships": [{"id": 1}, {"id": MARKETING}]}),
        )
        .await;
    let bob = r.assert_json(200);
    assert_eq!(bob["email"], json!("bob@example.com"));
    assert_eq!(bob["common_name"], json!("Bob Builder"));
    assert_eq!(bob["last_login"], Value::Null);
    assert_eq!(bob["is_qbnewb"], json!(true));
    assert_eq!(bob["is_superuser"], json!(false));
    assert_eq!(bob["is_active"], json!(true));
    assert_eq!(bob["sso_source"], Value::Null);
    assert_eq!(bob["login_attributes"], Value::Null);
    assert_eq!(bob["locale"], Value::Null);
    assert_eq!(
        bob["user_group_memberships"],
        json!([{"id": 1}, {"id": MARKETING}])
    );
    assert_eq!(bob["date_joined"], bob["updated_at"]);
    let bob_id = bob["id"].as_u64().unwrap();
    assert_eq!(bob_id, 8, "after 5 users and the 2 key users");

    for email in ["bob@example.com", "BOB@EXAMPLE.COM"] {
        let dup = sim.post("/api/user", &admin, json!({"email": email})).await;
        assert_eq!(
            dup.assert_json(400),
            json!({"errors": {"email": "Email address already in use."}})
        );
    }
    let no_email = sim
        .post("/api/user", &admin, json!({"first_name": "x"}))
        .await;
    assert_eq!(
        no_email.assert_json(400),
        json!({"errors": {"email": "value must be a valid email address."},
               "specific-errors": {"email": ["missing required key, received: nil"]}})
    );
    let bad_email = sim
        .post("/api/user", &admin, json!({"email": "whatever"}))
        .await;
    assert_eq!(
        bad_email.assert_json(400)["errors"],
        json!({"email": "value must be a valid email address."})
    );

    // Without All Users: refused, and nothing was created.
    let r = sim
        .post(
            "/api/user",
            &admin,
            json!({"email": "carol@example.com", "user_group_memberships": [{"id": MARKETING}]}),
        )
        .await;
    r.assert_text(
        400,
        "You cannot add or remove users to/from the 'All Users' group.",
    );
    let all = sim
        .get("/api/user?status=all&query=carol", &admin)
        .await
        .json();
    assert_eq!(all["total"], json!(0));
    // An unknown group: the newest tenant check, also rolled back.
    let r = sim
        .post("/api/user", &admin, json!({"email": "carol@example.com", "user_group_memberships": [{"id": 1}, {"id": 999}]}))
        .await;
    r.assert_text(
        400,
        "Cannot add non-tenant user to tenant-group or vice versa",
    );
    assert_eq!(
        sim.get("/api/user?status=all&query=carol", &admin)
            .await
            .json()["total"],
        json!(0)
    );

    // is_superuser in the body is ignored; the Administrators group is the way.
    let r = sim
        .post(
            "/api/user",
            &admin,
            json!({"email": "dave@example.com", "is_superuser": true}),
        )
        .await;
    assert_eq!(r.json()["is_superuser"], json!(false));
    let r = sim
        .post(
            "/api/user",
            &admin,
            json!({"email": "erin@example.com", "password": "erin-pass1",
                                           "user_group_memberships": [{"id": 1}, {"id": 2}]}),
        )
        .await;
    assert_eq!(r.json()["is_superuser"], json!(true));
    // A password in the body is honoured.
    sim.login("erin@example.com", "erin-pass1").await;

    let uma = sim.login("uma@example.com", "old-pass1").await;
    sim.post("/api/user", &uma, json!({"email": "zed@example.com"}))
        .await
        .assert_text(403, "You don't have permissions to do that.");
    sim.invariants_hold().await;
}

#[tokio::test]
async fn update_user_lines() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let path = format!("/api/user/{UMA}");
    let r = sim
        .put(
            &path,
            &admin,
            json!({"last_name": "Baker", "email": "uma.baker@example.com"}),
        )
        .await;
    let body = r.assert_json(200);
    assert_eq!(body["last_name"], json!("Baker"));
    assert_eq!(body["email"], json!("uma.baker@example.com"));
    assert_eq!(body["common_name"], json!("Uma Baker"));
    assert_eq!(
        body["user_group_memberships"],
        json!([{"id": 1}, {"id": MARKETING}])
    );

    let taken = sim
        .put(&path, &admin, json!({"email": "ADMIN@example.com"}))
        .await;
    assert_eq!(
        taken.assert_json(400),
        json!({"errors": {"email": "Email address already associated to another user."}})
    );
    // Taken by an inactive account counts too.
    let taken = sim
        .put(&path, &admin, json!({"email": "gone@example.com"}))
        .await;
    assert_eq!(taken.status, 400);

    let promoted = sim
        .put(&path, &admin, json!({"is_superuser": true}))
        .await
        .assert_json(200);
    assert_eq!(promoted["is_superuser"], json!(true));
    assert_eq!(
        promoted["user_group_memberships"],
        json!([{"id": 1}, {"id": 2}, {"id": MARKETING}])
    );

    let vic = format!("/api/user/{VIC}");
    let r = sim
        .put(
            &vic,
            &admin,
            json!({"is_superuser": false, "user_group_memberships": [{"id": 1}, {"id": 2}]}),
        )
        .await;
    assert_eq!(
        r.assert_json(400),
        json!({"errors": {"is_superuser": "Value of is_superuser must correspond to presence of Admin group ID in group_ids."}})
    );

    // A regular user changing their own groups: 403 and nothing changes,
    // not even the name sent with it.
    let vic_auth = sim.login("vic@example.com", "vic-pass1").await;
    let r = sim
        .put(
            &vic,
            &vic_auth,
            json!({"first_name": "Victor", "user_group_memberships": [{"id": 1}, {"id": SALES}]}),
        )
        .await;
    r.assert_text(403, "You don't have permissions to do that.");
    let after = sim.get(&vic, &admin).await.json();
    assert_eq!(after["first_name"], json!("Vic"));
    assert_eq!(after["user_group_memberships"], json!([{"id": 1}]));
    // The same set is fine for them, and so is their own name.
    let r = sim
        .put(
            &vic,
            &vic_auth,
            json!({"first_name": "Victor", "user_group_memberships": [{"id": 1}]}),
        )
        .await;
    assert_eq!(r.assert_json(200)["first_name"], json!("Victor"));
    // is_superuser from a non-admin is silently ignored.
    let r = sim
        .put(&vic, &vic_auth, json!({"is_superuser": true}))
        .await;
    assert_eq!(r.assert_json(200)["is_superuser"], json!(false));
    // Someone else: 403.
    sim.put(&path, &vic_auth, json!({"first_name": "X"}))
        .await
        .assert_text(403, "You don't have permissions to do that.");

    let r = sim.put(&vic, &admin, json!({"locale": "xx"})).await;
    let body = r.assert_json(400);
    assert_eq!(
        body["errors"],
        json!({"locale": "nullable String must be a valid two-letter ISO language or language-country code e.g. 'en' or 'en_US'."})
    );
    assert!(body["specific-errors"]["locale"].is_array());
    let r = sim.put(&vic, &admin, json!({"locale": "en-US"})).await;
    assert_eq!(r.assert_json(200)["locale"], json!("en_US"));

    sim.put(
        &format!("/api/user/{GONE}"),
        &admin,
        json!({"first_name": "G"}),
    )
    .await
    .assert_text(404, "Not found.");
    sim.put("/api/user/999", &admin, json!({}))
        .await
        .assert_text(404, "Not found.");
    sim.put("/api/user/13371338", &admin, json!({}))
        .await
        .assert_text(400, "Not able to modify the internal user");
    sim.invariants_hold().await;
}

#[tokio::test]
async fn sso_users_keep_their_names_and_email() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let path = format!("/api/user/{SSO}");
    let r = sim
        .put(&path, &admin, json!({"first_name": "Samuel"}))
        .await;
    assert_eq!(
        r.assert_json(400),
        json!({"errors": {"first_name": "Editing first name is not allowed for SSO users."}})
    );
    let r = sim.put(&path, &admin, json!({"last_name": "Other"})).await;
    assert_eq!(
        r.assert_json(400),
        json!({"errors": {"last_name": "Editing last name is not allowed for SSO users."}})
    );
    // The same value is allowed.
    assert_eq!(
        sim.put(&path, &admin, json!({"first_name": "Sam"}))
            .await
            .status,
        200
    );
    // A Google user may not change their own email; an admin may.
    let sam = sim.login("sso@example.com", "sso-pass1").await;
    sim.put(&path, &sam, json!({"email": "sam2@example.com"}))
        .await
        .assert_text(403, "You don't have permissions to do that.");
    assert_eq!(
        sim.put(&path, &admin, json!({"email": "sam2@example.com"}))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn deactivate_and_reactivate() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let r = sim.delete(&format!("/api/user/{UMA}"), &admin).await;
    assert_eq!(r.assert_json(200), json!({"success": true}));
    let uma = sim.get(&format!("/api/user/{UMA}"), &admin).await.json();
    assert_eq!(uma["is_active"], json!(false));
    // Memberships are kept.
    assert_eq!(
        uma["user_group_memberships"],
        json!([{"id": 1}, {"id": MARKETING}])
    );
    // Again: still 200 (newest: existence check only). Unknown: 404.
    assert_eq!(
        sim.delete(&format!("/api/user/{UMA}"), &admin).await.status,
        200
    );
    sim.delete("/api/user/999", &admin)
        .await
        .assert_text(404, "Not found.");

    // The admin API key's user is an active admin too; remove it so Ada is the last.
    assert_eq!(sim.delete("/api/api-key/1", &admin).await.status, 204);
    sim.delete("/api/user/1", &admin).await.assert_text(
        400,
        "You cannot remove the last member of the 'Admin' group!",
    );

    let r = sim
        .put(&format!("/api/user/{UMA}/reactivate"), &admin, json!({}))
        .await;
    let body = r.assert_json(200);
    assert_eq!(
        (body["is_active"].clone(), body["is_superuser"].clone()),
        (json!(true), json!(false))
    );
    assert!(body.get("user_group_memberships").is_none());
    let r = sim.put("/api/user/1/reactivate", &admin, json!({})).await;
    let body = r.assert_json(400);
    assert_eq!(
        body["message"],
        json!("Not able to reactivate an active user")
    );
    assert!(body.get("via").is_some() && body.get("trace").is_some());
    sim.put("/api/user/999/reactivate", &admin, json!({}))
        .await
        .assert_text(404, "Not found.");

    // Reactivating a deactivated admin drops the admin flag and membership.
    let vic = format!("/api/user/{VIC}");
    sim.put(&vic, &admin, json!({"is_superuser": true})).await;
    sim.delete(&vic, &admin).await;
    let back = sim
        .put(&format!("{vic}/reactivate"), &admin, json!({}))
        .await
        .json();
    assert_eq!(back["is_superuser"], json!(false));
    assert_eq!(
        sim.get(&vic, &admin).await.json()["user_group_memberships"],
        json!([{"id": 1}])
    );

    let uma_auth = sim.login("uma@example.com", "old-pass1").await;
    sim.delete(&vic, &uma_auth)
        .await
        .assert_text(403, "You don't have permissions to do that.");
    sim.delete(&format!("/api/user/{UMA}"), &uma_auth)
        .await
        .assert_text(403, "You don't have permissions to do that.");
    sim.invariants_hold().await;
}

#[tokio::test]
async fn password_changes() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let uma = sim.login("uma@example.com", "old-pass1").await;
    let other_session = sim.login("uma@example.com", "old-pass1").await;
    let path = format!("/api/user/{UMA}/password");

    let r = sim
        .put(
            &path,
            &uma,
            json!({"password": "n3w-pass", "old_password": "wrong"}),
        )
        .await;
    assert_eq!(
        r.assert_json(400),
        json!({"errors": {"old_password": "Invalid password"}})
    );
    let r = sim.put(&path, &uma, json!({"password": "abc"})).await;
    let body = r.assert_json(400);
    assert_eq!(
        body["errors"],
        json!({"password": "password is too common."})
    );
    assert!(body["specific-errors"]["password"].is_array());
    assert_eq!(
        sim.put(
            &path,
            &uma,
            json!({"password": "password1", "old_password": "old-pass1"})
        )
        .await
        .json()["errors"],
        json!({"password": "password is too common."})
    );

    let r = sim
        .put(
            &path,
            &uma,
            json!({"password": "n3w-pass", "old_password": "old-pass1"}),
        )
        .await;
    let body = r.assert_json(200);
    assert_eq!(body["success"], json!(true));
    let session_id = body["session_id"].as_str().unwrap();
    assert!(is_uuid(session_id));
    assert!(
        r.cookies()
            .iter()
            .any(|c| c.starts_with(&format!("metabase.SESSION={session_id}")))
    );
    // Old sessions are gone, the new one works, the new password works.
    sim.get("/api/user/current", &uma)
        .await
        .assert_text(401, "Unauthenticated");
    sim.get("/api/user/current", &other_session)
        .await
        .assert_text(401, "Unauthenticated");
    assert_eq!(
        sim.get("/api/user/current", &Auth::Session(session_id.into()))
            .await
            .status,
        200
    );
    sim.login("uma@example.com", "n3w-pass").await;

    // An admin resetting someone else's password: 204, no old password needed.
    let r = sim
        .put(&path, &admin, json!({"password": "an0ther-pass"}))
        .await;
    assert_eq!((r.status, r.text.as_str()), (204, ""));
    sim.login("uma@example.com", "an0ther-pass").await;
    // The admin's own sessions are untouched.
    assert_eq!(sim.get("/api/user/current", &admin).await.status, 200);

    let vic = sim.login("vic@example.com", "vic-pass1").await;
    sim.put(&path, &vic, json!({"password": "n3w-pass"}))
        .await
        .assert_text(403, "You don't have permissions to do that.");
    sim.put(
        &format!("/api/user/{GONE}/password"),
        &admin,
        json!({"password": "n3w-pass"}),
    )
    .await
    .assert_text(404, "Not found.");
}

#[tokio::test]
async fn api_key_users_are_hidden_from_the_list() {
    let sim = Sim::world().await;
    let admin = sim.admin().await;
    let all = sim.get("/api/user?status=all", &admin).await.json();
    assert!(
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| !u["email"].as_str().unwrap().ends_with("@api-key.invalid"))
    );
    assert_eq!(all["total"], json!(5));
    // Their ids are still taken: the next user is id 8.
    let r = sim
        .post("/api/user", &admin, json!({"email": "new@example.com"}))
        .await;
    assert_eq!(r.json()["id"], json!(8));
}
