//! Every route's success path and its documented error statuses (the cross-owner cases,
//! pairing, rotation and the event stream have their own modules).

use ownership_tests::app::{Backend, spawn_app};
use serde_json::json;

use crate::support::*;

on_both_backends!(
    health_and_the_openapi_document_need_no_token,
    me_describes_the_caller_and_the_token_used,
    tokens_are_minted_listed_and_revoked,
    minting_is_limited_by_the_calling_tokens_kinds,
    revoking_with_a_kind_that_does_not_match_is_a_conflict,
    identities_are_listed_and_unlinked,
    audit_is_paged_and_scoped_to_the_caller,
    owners_create_list_and_read_users,
    user_creation_refuses_bad_input_and_duplicates,
    roles_change_under_the_management_rules,
    status_changes_suspend_and_resume_a_user,
    users_are_deleted_once,
    members_get_403_on_every_admin_route,
    service_tokens_hold_only_service_kinds,
);

async fn health_and_the_openapi_document_need_no_token(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/healthz", "/readyz"] {
        let r = app.call("GET", path, None, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(r.body, json!({"status": "ok"}));
    }
    let doc = app.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(doc.status, 200);
    assert!(
        doc.body["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with('3'))
    );
    assert!(doc.body["paths"]["/v1/me"]["get"].is_object());
}

async fn me_describes_the_caller_and_the_token_used(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app.get("/v1/me", &app.owner_token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["user_id"], "owner");
    assert_eq!(r.body["role"], "owner");
    assert!(
        r.body["token"]["id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert_eq!(strings(&r.body["token"]["kinds"]), set(&["manage", "api"]));
    assert!(r.body["token"]["expires_at"].is_null());
    // These fields and no others (the route writes them from the principal directly).
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&r.body), ["role", "token", "user_id"]);
    assert_eq!(keys(&r.body["token"]), ["expires_at", "id", "kinds"]);

    let member = app.create_user("alice", "member").await;
    let r = app.get("/v1/me", &member).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["user_id"], "alice");
    assert_eq!(r.body["role"], "member");

    assert_unauthenticated(&app.call("GET", "/v1/me", None, None).await);
}

async fn tokens_are_minted_listed_and_revoked(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;

    let r = app
        .post(
            "/v1/me/tokens",
            &alice,
            json!({"kinds": ["api"], "label": "ci", "expires_in_seconds": 3600}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let value = r.body["token"].as_str().unwrap().to_owned();
    assert!(value.starts_with("own_u_"), "user token prefix");
    assert_eq!(strings(&r.body["kinds"]), set(&["api"]));
    assert_eq!(r.body["label"], "ci");
    assert!(r.body["expires_at"].is_string(), "expiry set: {}", r.text);
    assert!(
        value.starts_with(r.body["display_prefix"].as_str().unwrap()),
        "the display prefix is the value's start"
    );

    // The new token works, with exactly its kinds.
    let me = app.get("/v1/me", &value).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["token"]["id"], id.as_str());
    assert_eq!(strings(&me.body["token"]["kinds"]), set(&["api"]));
    assert!(me.body["token"]["expires_at"].is_string());

    // Listed by id, never by value.
    let list = app.get("/v1/me/tokens", &alice).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let ids: Vec<&str> = list.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&id.as_str()), "{ids:?}");
    assert_eq!(ids.len(), 2, "the first token and the new one");
    assert!(!list.text.contains(&value), "a listing shows a token value");
    assert!(!list.text.contains(&alice), "a listing shows a token value");

    // Revoked: the very next request with it is a 401. Revoking is idempotent.
    let r = app
        .call("DELETE", &format!("/v1/me/tokens/{id}"), Some(&alice), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    assert_unauthenticated(&app.get("/v1/me", &value).await);
    let again = app
        .call("DELETE", &format!("/v1/me/tokens/{id}"), Some(&alice), None)
        .await;
    assert_eq!(again.status, 204, "{}", again.text);
    assert_unauthenticated(&app.get("/v1/me", &value).await);

    // Absent and malformed ids are the same 404.
    for bad in [absent_token_id(), "not-an-id".to_owned()] {
        let r = app
            .call(
                "DELETE",
                &format!("/v1/me/tokens/{bad}"),
                Some(&alice),
                None,
            )
            .await;
        assert_error(&r, 404, "not_found");
    }

    // An `api` token may not manage tokens.
    let (_, api) = mint(&app, &alice, &["api"]).await;
    assert_error(&app.get("/v1/me/tokens", &api).await, 403, "forbidden");
    let r = app
        .call("DELETE", &format!("/v1/me/tokens/{id}"), Some(&api), None)
        .await;
    assert_error(&r, 403, "forbidden");
    assert_unauthenticated(&app.call("GET", "/v1/me/tokens", None, None).await);
}

async fn minting_is_limited_by_the_calling_tokens_kinds(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let (_, api) = mint(&app, &alice, &["api"]).await;

    // Only `manage` tokens mint, and only kinds they hold.
    let r = app
        .post("/v1/me/tokens", &api, json!({"kinds": ["api"]}))
        .await;
    assert_error(&r, 403, "forbidden");
    for kinds in [json!(["verify"]), json!(["channel:telegram"])] {
        let r = app
            .post("/v1/me/tokens", &alice, json!({ "kinds": kinds }))
            .await;
        assert_error(&r, 403, "forbidden");
    }

    // Bad input is a 400.
    for body in [
        json!({"kinds": []}),
        json!({"kinds": ["root"]}),
        json!({"kinds": ["api"], "expires_in_seconds": 0}),
        json!({"kinds": ["api"], "label": "x".repeat(101)}),
        json!({"kinds": ["api"], "label": "two\nlines"}),
        json!({"kinds": "api"}),
        json!({}),
    ] {
        let r = app.post("/v1/me/tokens", &alice, body.clone()).await;
        assert_error(&r, 400, "invalid_request");
    }
    assert_unauthenticated(
        &app.call(
            "POST",
            "/v1/me/tokens",
            None,
            Some(json!({"kinds": ["api"]})),
        )
        .await,
    );
}

async fn revoking_with_a_kind_that_does_not_match_is_a_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let (manage_id, manage) = mint(&app, &alice, &["manage"]).await;

    let r = app
        .call(
            "DELETE",
            &format!("/v1/me/tokens/{manage_id}?kind=api"),
            Some(&alice),
            None,
        )
        .await;
    assert_error(&r, 409, "conflict");
    assert_eq!(
        app.get("/v1/me", &manage).await.status,
        200,
        "nothing revoked"
    );

    let r = app
        .call(
            "DELETE",
            &format!("/v1/me/tokens/{manage_id}?kind=bogus"),
            Some(&alice),
            None,
        )
        .await;
    assert_error(&r, 400, "invalid_request");

    let r = app
        .call(
            "DELETE",
            &format!("/v1/me/tokens/{manage_id}?kind=manage"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_unauthenticated(&app.get("/v1/me", &manage).await);
}

async fn identities_are_listed_and_unlinked(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let telegram = service_token(&app, &["channel:telegram"]).await;
    link(&app, &telegram, &alice, "telegram", "42").await;

    let list = app.get("/v1/me/identities", &alice).await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(
        list.body,
        json!({"identities": [{"channel": "telegram", "external_id": "42", "owner_id": "alice"}]})
    );

    let r = app
        .call(
            "DELETE",
            "/v1/me/identities/telegram/42",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_error(
        &resolve(&app, &telegram, "telegram", "42").await,
        404,
        "not_found",
    );
    let list = app.get("/v1/me/identities", &alice).await;
    assert_eq!(list.body, json!({"identities": []}));

    let again = app
        .call(
            "DELETE",
            "/v1/me/identities/telegram/42",
            Some(&alice),
            None,
        )
        .await;
    assert_error(&again, 404, "not_found");
    let (_, api) = mint(&app, &alice, &["api"]).await;
    assert_error(&app.get("/v1/me/identities", &api).await, 403, "forbidden");
    assert_unauthenticated(&app.call("GET", "/v1/me/identities", None, None).await);
}

async fn audit_is_paged_and_scoped_to_the_caller(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    mint(&app, &alice, &["api"]).await;
    mint(&app, &alice, &["api"]).await;
    mint(&app, &app.owner_token, &["api"]).await;

    // A member reads only events about themselves, newest first.
    let mine = app.get("/v1/me/audit", &alice).await;
    assert_eq!(mine.status, 200, "{}", mine.text);
    let events = mine.body["events"].as_array().unwrap();
    assert!(events.len() >= 2, "{}", mine.text);
    for e in events {
        assert_eq!(e["owner_id"], "alice", "another owner's event: {e}");
    }
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );
    assert_eq!(events[0]["action"], "token.issued");

    // Paging: a cursor, then the rest.
    let first = app.get("/v1/me/audit?limit=1", &alice).await;
    assert_eq!(first.body["events"].as_array().unwrap().len(), 1);
    let next = first.body["next"].as_str().expect("a next cursor");
    let rest = app
        .get(&format!("/v1/me/audit?limit=100&after={next}"), &alice)
        .await;
    assert_eq!(rest.status, 200, "{}", rest.text);
    assert_eq!(
        rest.body["events"].as_array().unwrap().len(),
        events.len() - 1
    );

    // Admins read everyone's.
    let all = app.get("/v1/admin/audit", &app.owner_token).await;
    assert_eq!(all.status, 200, "{}", all.text);
    let owners: Vec<&str> = all.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["owner_id"].as_str())
        .collect();
    assert!(
        owners.contains(&"alice") && owners.contains(&"owner"),
        "{owners:?}"
    );

    for bad in [
        "/v1/me/audit?limit=abc",
        "/v1/me/audit?bogus=1",
        "/v1/me/audit?after=not-a-cursor",
    ] {
        assert_error(&app.get(bad, &alice).await, 400, "invalid_request");
    }
    // A page size outside 1–500 is refused, not clamped, on every listing.
    for listing in ["/v1/me/audit", "/v1/admin/audit", "/v1/admin/users"] {
        for limit in ["0", "501", "4294967295"] {
            let r = app
                .get(&format!("{listing}?limit={limit}"), &app.owner_token)
                .await;
            assert_error(&r, 400, "invalid_request");
            assert!(
                r.body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("limit")),
                "{listing}?limit={limit}: {}",
                r.text
            );
        }
        let edge = app
            .get(&format!("{listing}?limit=500"), &app.owner_token)
            .await;
        assert_eq!(edge.status, 200, "{listing}?limit=500: {}", edge.text);
    }
    assert_error(&app.get("/v1/admin/audit", &alice).await, 403, "forbidden");
    assert_unauthenticated(&app.call("GET", "/v1/me/audit", None, None).await);
}

async fn owners_create_list_and_read_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app
        .post(
            "/v1/admin/users",
            &app.owner_token,
            json!({"user_id": "alice"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["user_id"], "alice");
    assert_eq!(r.body["role"], "member", "least privilege by default");
    assert_eq!(r.body["status"], "active");
    let token = r.body["token"].as_str().unwrap();
    assert!(token.starts_with("own_u_"));
    assert_eq!(app.get("/v1/me", token).await.body["user_id"], "alice");
    app.create_user("bob", "admin").await;

    let list = app.get("/v1/admin/users", &app.owner_token).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let ids: Vec<&str> = list.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alice", "bob", "owner"]);
    assert!(!list.text.contains(token));

    let page = app.get("/v1/admin/users?limit=2", &app.owner_token).await;
    assert_eq!(page.body["users"].as_array().unwrap().len(), 2);
    let next = page.body["next"].as_str().expect("a next cursor");
    let rest = app
        .get(&format!("/v1/admin/users?after={next}"), &app.owner_token)
        .await;
    assert_eq!(rest.body["users"][0]["user_id"], "owner", "{}", rest.text);

    let one = app.get("/v1/admin/users/bob", &app.owner_token).await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.body["user_id"], "bob");
    assert_eq!(one.body["role"], "admin");
    assert_eq!(one.body["status"], "active");
    assert!(one.body["created_at"].is_string());

    for absent in ["nobody", "default", "%20"] {
        let r = app
            .get(&format!("/v1/admin/users/{absent}"), &app.owner_token)
            .await;
        assert_error(&r, 404, "not_found");
    }
    assert_unauthenticated(&app.call("GET", "/v1/admin/users", None, None).await);
}

async fn user_creation_refuses_bad_input_and_duplicates(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "member").await;
    let dup = app
        .post(
            "/v1/admin/users",
            &app.owner_token,
            json!({"user_id": "alice"}),
        )
        .await;
    assert_error(&dup, 409, "conflict");

    for body in [
        json!({"user_id": "default"}),
        json!({"user_id": "system"}),
        json!({"user_id": ""}),
        json!({"user_id": "two words"}),
        json!({"user_id": "bob", "role": "emperor"}),
        json!({"role": "member"}),
    ] {
        let r = app.post("/v1/admin/users", &app.owner_token, body).await;
        assert_error(&r, 400, "invalid_request");
    }

    // Only an Owner creates Admins and Owners.
    let admin = app.create_user("adm", "admin").await;
    for role in ["admin", "owner"] {
        let r = app
            .post(
                "/v1/admin/users",
                &admin,
                json!({"user_id": "carol", "role": role}),
            )
            .await;
        assert_error(&r, 403, "forbidden");
    }
    let r = app
        .post(
            "/v1/admin/users",
            &admin,
            json!({"user_id": "carol", "role": "MEMBER"}),
        )
        .await;
    assert_eq!(r.status, 201, "an Admin creates Members: {}", r.text);
    assert_eq!(r.body["role"], "member");
}

async fn roles_change_under_the_management_rules(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let admin = app.create_user("adm", "admin").await;
    let owner = &app.owner_token;
    let put = |token: String, who: &'static str, role: &'static str| {
        let app = &app;
        async move {
            app.call(
                "PUT",
                &format!("/v1/admin/users/{who}/role"),
                Some(&token),
                Some(json!({ "role": role })),
            )
            .await
        }
    };

    let r = put(owner.clone(), "alice", "admin").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["user_id"], "alice");
    assert_eq!(r.body["role"], "admin");
    assert_eq!(app.get("/v1/me", &alice).await.body["role"], "admin");
    let r = put(owner.clone(), "alice", "member").await;
    assert_eq!(r.body["role"], "member", "{}", r.text);

    assert_error(
        &put(owner.clone(), "alice", "emperor").await,
        400,
        "invalid_request",
    );
    assert_error(
        &put(owner.clone(), "nobody", "member").await,
        404,
        "not_found",
    );
    // Nobody changes their own role; an Admin neither promotes nor touches Admins/Owners.
    assert_error(
        &put(owner.clone(), "owner", "member").await,
        403,
        "forbidden",
    );
    assert_error(&put(admin.clone(), "adm", "member").await, 403, "forbidden");
    assert_error(
        &put(admin.clone(), "alice", "admin").await,
        403,
        "forbidden",
    );
    assert_error(
        &put(admin.clone(), "owner", "member").await,
        403,
        "forbidden",
    );
    assert_error(&put(alice.clone(), "adm", "member").await, 403, "forbidden");
    let r = app
        .call(
            "PUT",
            "/v1/admin/users/alice/role",
            Some(owner),
            Some(json!({"role": "admin", "extra": 1})),
        )
        .await;
    assert_error(&r, 400, "invalid_request");
    assert_unauthenticated(
        &app.call(
            "PUT",
            "/v1/admin/users/alice/role",
            None,
            Some(json!({"role": "member"})),
        )
        .await,
    );
}

async fn status_changes_suspend_and_resume_a_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let admin = app.create_user("adm", "admin").await;
    let set_status = |token: String, who: &'static str, status: &'static str| {
        let app = &app;
        async move {
            app.call(
                "PUT",
                &format!("/v1/admin/users/{who}/status"),
                Some(&token),
                Some(json!({ "status": status })),
            )
            .await
        }
    };

    assert_eq!(app.get("/v1/me", &alice).await.status, 200);
    let r = set_status(admin.clone(), "alice", "suspended").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "suspended");
    assert_unauthenticated(&app.get("/v1/me", &alice).await);

    let r = set_status(admin.clone(), "alice", "active").await;
    assert_eq!(r.body["status"], "active", "{}", r.text);
    assert_eq!(app.get("/v1/me", &alice).await.status, 200, "resumed");

    assert_error(
        &set_status(admin.clone(), "alice", "frozen").await,
        400,
        "invalid_request",
    );
    assert_error(
        &set_status(admin.clone(), "nobody", "suspended").await,
        404,
        "not_found",
    );
    assert_error(
        &set_status(admin.clone(), "adm", "suspended").await,
        403,
        "forbidden",
    );
    assert_error(
        &set_status(admin.clone(), "owner", "suspended").await,
        403,
        "forbidden",
    );
    assert_error(
        &set_status(app.owner_token.clone(), "owner", "suspended").await,
        403,
        "forbidden",
    );
    assert_eq!(app.get("/v1/me", &app.owner_token).await.status, 200);
}

async fn users_are_deleted_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let admin = app.create_user("adm", "admin").await;
    let delete = |token: String, who: &'static str| {
        let app = &app;
        async move {
            app.call(
                "DELETE",
                &format!("/v1/admin/users/{who}"),
                Some(&token),
                None,
            )
            .await
        }
    };

    // An Admin may not delete Owners, Admins or themselves.
    assert_error(&delete(admin.clone(), "owner").await, 403, "forbidden");
    assert_error(&delete(admin.clone(), "adm").await, 403, "forbidden");
    assert_error(
        &delete(app.owner_token.clone(), "owner").await,
        403,
        "forbidden",
    );

    let r = delete(admin.clone(), "alice").await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_unauthenticated(&app.get("/v1/me", &alice).await);
    assert_error(&delete(admin.clone(), "alice").await, 404, "not_found");
    assert_error(
        &app.get("/v1/admin/users/alice", &app.owner_token).await,
        404,
        "not_found",
    );
    // The id is free again.
    app.create_user("alice", "member").await;
}

async fn members_get_403_on_every_admin_route(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    app.create_user("bob", "member").await;
    let (_, api_owner) = mint(&app, &app.owner_token, &["api"]).await;
    let calls = [
        ("GET", "/v1/admin/users", None),
        ("POST", "/v1/admin/users", Some(json!({"user_id": "carol"}))),
        ("GET", "/v1/admin/users/bob", None),
        ("DELETE", "/v1/admin/users/bob", None),
        (
            "PUT",
            "/v1/admin/users/bob/role",
            Some(json!({"role": "member"})),
        ),
        (
            "PUT",
            "/v1/admin/users/bob/status",
            Some(json!({"status": "suspended"})),
        ),
        (
            "POST",
            "/v1/admin/service-tokens",
            Some(json!({"kinds": ["verify"]})),
        ),
        ("GET", "/v1/admin/audit", None),
        ("GET", "/v1/admin/pairing/telegram", None),
        (
            "POST",
            "/v1/admin/pairing/telegram/approve",
            Some(json!({"code": "ABCD-EFGH", "owner_id": "alice"})),
        ),
    ];
    for (method, path, body) in calls {
        // A Member, and an Owner whose token lacks `manage`.
        for token in [&alice, &api_owner] {
            let r = app.call(method, path, Some(token), body.clone()).await;
            assert_error(&r, 403, "forbidden");
        }
        assert_unauthenticated(&app.call(method, path, None, body.clone()).await);
    }
    assert_eq!(
        app.get("/v1/admin/users/bob", &app.owner_token).await.body["status"],
        "active",
        "nothing changed"
    );
}

async fn service_tokens_hold_only_service_kinds(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app
        .post(
            "/v1/admin/service-tokens",
            &app.owner_token,
            json!({"kinds": ["channel:Telegram", "verify"], "label": "bot"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.body["token"].as_str().unwrap().starts_with("own_s_"));
    assert!(r.body["id"].is_string());
    assert_eq!(
        strings(&r.body["kinds"]),
        set(&["channel:telegram", "verify"])
    );
    let me = app.get("/v1/me", r.body["token"].as_str().unwrap()).await;
    assert_eq!(me.body["user_id"], "owner", "owned by the minting Owner");

    for kinds in [
        json!(["api"]),
        json!(["manage"]),
        json!(["verify", "api"]),
        json!([]),
        json!(["channel:"]),
        json!(["telepathy"]),
    ] {
        let r = app
            .post(
                "/v1/admin/service-tokens",
                &app.owner_token,
                json!({ "kinds": kinds }),
            )
            .await;
        assert_error(&r, 400, "invalid_request");
    }
}
