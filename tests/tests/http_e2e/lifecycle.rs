//! Changes that must take effect on the very next request: deletion, suspension,
//! rotation; the verification endpoint; bootstrap; and failing closed when the store is
//! gone.

use ownership_core::token::TokenFamily;
use ownership_tests::app::{Backend, spawn_app, spawn_app_with};
use ownership_tests::pg::PgCluster;
use serde_json::json;

use crate::support::*;

on_both_backends!(
    a_deleted_users_token_and_chat_identity_stop_working_at_once,
    a_suspended_users_token_and_chat_identity_stop_working_at_once,
    rotation_replaces_the_old_token_at_once,
    rotation_with_grace_keeps_the_old_token_working,
    rotation_refuses_bad_input,
    the_verify_endpoint_reports_valid_and_invalid_tokens,
    bootstrap_creates_the_first_owner_once,
    bootstrap_is_not_found_when_not_configured,
);

async fn a_deleted_users_token_and_chat_identity_stop_working_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let (_, alice_api) = mint(&app, &alice, &["api"]).await;
    let telegram = service_token(&app, &["channel:telegram"]).await;
    link(&app, &telegram, &alice, "telegram", "42").await;
    // Warm every cache entry first.
    for _ in 0..2 {
        assert_eq!(app.get("/v1/me", &alice).await.status, 200);
        assert_eq!(app.get("/v1/me", &alice_api).await.status, 200);
        assert_eq!(resolve(&app, &telegram, "telegram", "42").await.status, 200);
    }

    let r = app
        .call(
            "DELETE",
            "/v1/admin/users/alice",
            Some(&app.owner_token),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);

    assert_unauthenticated(&app.get("/v1/me", &alice).await);
    assert_unauthenticated(&app.get("/v1/me", &alice_api).await);
    assert_error(
        &resolve(&app, &telegram, "telegram", "42").await,
        404,
        "not_found",
    );
    // A new user with the same id inherits nothing.
    let again = app.create_user("alice", "member").await;
    assert_error(
        &resolve(&app, &telegram, "telegram", "42").await,
        404,
        "not_found",
    );
    assert_eq!(
        app.get("/v1/me/identities", &again).await.body,
        json!({"identities": []})
    );
    assert_unauthenticated(&app.get("/v1/me", &alice).await);
}

async fn a_suspended_users_token_and_chat_identity_stop_working_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let (_, alice_api) = mint(&app, &alice, &["api"]).await;
    let telegram = service_token(&app, &["channel:telegram"]).await;
    link(&app, &telegram, &alice, "telegram", "42").await;
    for _ in 0..2 {
        assert_eq!(app.get("/v1/me", &alice).await.status, 200);
        assert_eq!(resolve(&app, &telegram, "telegram", "42").await.status, 200);
    }
    let set_status = |status: &'static str| {
        let app = &app;
        async move {
            app.call(
                "PUT",
                "/v1/admin/users/alice/status",
                Some(&app.owner_token),
                Some(json!({ "status": status })),
            )
            .await
        }
    };

    assert_eq!(set_status("suspended").await.status, 200);
    assert_unauthenticated(&app.get("/v1/me", &alice).await);
    assert_unauthenticated(&app.get("/v1/me", &alice_api).await);
    assert_error(
        &resolve(&app, &telegram, "telegram", "42").await,
        404,
        "not_found",
    );
    // Nor can a suspended user be bound to a new chat account.
    let code = pairing_code(&app, &telegram, "telegram", "43").await;
    let r = app
        .post(
            "/v1/admin/pairing/telegram/approve",
            &app.owner_token,
            json!({"code": code, "owner_id": "alice"}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);

    // Resumed: everything is back, nothing was lost.
    assert_eq!(set_status("active").await.status, 200);
    assert_eq!(app.get("/v1/me", &alice).await.status, 200);
    assert_eq!(app.get("/v1/me", &alice_api).await.status, 200);
    let resolved = resolve(&app, &telegram, "telegram", "42").await;
    assert_eq!(resolved.status, 200, "{}", resolved.text);
    assert_eq!(resolved.body["owner_id"], "alice");
}

async fn rotation_replaces_the_old_token_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let (old_id, old) = mint(&app, &alice, &["api"]).await;
    assert_eq!(app.get("/v1/me", &old).await.status, 200, "warm");

    let r = app
        .call(
            "POST",
            &format!("/v1/me/tokens/{old_id}/rotate"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let new = r.body["token"].as_str().unwrap().to_owned();
    let new_id = r.body["id"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_ne!(new_id, old_id);
    assert_eq!(strings(&r.body["kinds"]), set(&["api"]), "same kinds");

    assert_unauthenticated(&app.get("/v1/me", &old).await);
    let me = app.get("/v1/me", &new).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["token"]["id"], new_id.as_str());
    assert_eq!(strings(&me.body["token"]["kinds"]), set(&["api"]));
    // The revoked token is no longer live: it cannot be rotated again.
    let r = app
        .call(
            "POST",
            &format!("/v1/me/tokens/{old_id}/rotate"),
            Some(&alice),
            None,
        )
        .await;
    assert_error(&r, 404, "not_found");

    // Rotating the very token that calls: the next request with it fails.
    let own_id = token_id(&app, &alice).await;
    let r = app
        .post(&format!("/v1/me/tokens/{own_id}/rotate"), &alice, json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let replacement = r.body["token"].as_str().unwrap().to_owned();
    assert_unauthenticated(&app.get("/v1/me", &alice).await);
    let me = app.get("/v1/me", &replacement).await;
    assert_eq!(me.status, 200);
    assert_eq!(strings(&me.body["token"]["kinds"]), set(&["manage", "api"]));

    // A service token rotates into a service token.
    let verify = app
        .post(
            "/v1/admin/service-tokens",
            &replacement,
            json!({"kinds": ["verify"]}),
        )
        .await;
    assert_eq!(verify.status, 403, "Alice is a Member: {}", verify.text);
    let bot = service_token(&app, &["channel:telegram"]).await;
    let bot_id = token_id(&app, &bot).await;
    let r = app
        .call(
            "POST",
            &format!("/v1/me/tokens/{bot_id}/rotate"),
            Some(&app.owner_token),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let new_bot = r.body["token"].as_str().unwrap();
    assert!(new_bot.starts_with("own_s_"), "{new_bot}");
    assert_unauthenticated(&app.get("/v1/me", &bot).await);
    assert_eq!(pairing_code(&app, new_bot, "telegram", "1").await.len(), 9);
}

async fn rotation_with_grace_keeps_the_old_token_working(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let (old_id, old) = mint(&app, &alice, &["api"]).await;

    let r = app
        .post(
            &format!("/v1/me/tokens/{old_id}/rotate"),
            &alice,
            json!({"grace_seconds": 3600}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let new = r.body["token"].as_str().unwrap().to_owned();

    assert_eq!(app.get("/v1/me", &old).await.status, 200, "still in grace");
    assert_eq!(app.get("/v1/me", &new).await.status, 200);
    let list = app.get("/v1/me/tokens", &alice).await;
    let old_row = list.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == old_id.as_str())
        .expect("the old token is listed")
        .clone();
    assert!(
        old_row["revoked_at"].is_string(),
        "revocation scheduled: {old_row}"
    );

    // Revoking it by hand ends the grace at once.
    let r = app
        .call(
            "DELETE",
            &format!("/v1/me/tokens/{old_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_unauthenticated(&app.get("/v1/me", &old).await);
    assert_eq!(app.get("/v1/me", &new).await.status, 200);
}

async fn rotation_refuses_bad_input(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let (id, api) = mint(&app, &alice, &["api"]).await;
    let path = format!("/v1/me/tokens/{id}/rotate");
    for body in [
        json!({"grace_seconds": 31 * 24 * 3600}),
        json!({"grace_seconds": -1}),
        json!({"grace_seconds": "soon"}),
        json!({"grace": 1}),
    ] {
        assert_error(&app.post(&path, &alice, body).await, 400, "invalid_request");
    }
    assert_error(&app.post(&path, &api, json!({})).await, 403, "forbidden");
    assert_unauthenticated(&app.call("POST", &path, None, None).await);
    for bad in ["not-an-id".to_owned(), absent_token_id()] {
        let r = app
            .post(&format!("/v1/me/tokens/{bad}/rotate"), &alice, json!({}))
            .await;
        assert_error(&r, 404, "not_found");
    }
    assert_eq!(app.get("/v1/me", &api).await.status, 200, "nothing rotated");
}

async fn the_verify_endpoint_reports_valid_and_invalid_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let (revoked_id, revoked) = mint(&app, &alice, &["api"]).await;
    let r = app
        .call(
            "DELETE",
            &format!("/v1/me/tokens/{revoked_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let verifier = service_token(&app, &["verify"]).await;
    let telegram = service_token(&app, &["channel:telegram"]).await;
    let verify = |token: String| {
        let app = &app;
        let verifier = verifier.clone();
        async move {
            app.post("/v1/tokens/verify", &verifier, json!({ "token": token }))
                .await
        }
    };

    let r = verify(alice.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["valid"], true);
    assert_eq!(r.body["owner_id"], "alice");
    assert_eq!(r.body["role"], "member");
    assert_eq!(strings(&r.body["kinds"]), set(&["manage", "api"]));

    let r = verify(telegram.clone()).await;
    assert_eq!(r.body["valid"], true);
    assert_eq!(strings(&r.body["kinds"]), set(&["channel:telegram"]));

    for invalid in [
        revoked,
        "garbage".to_owned(),
        String::new(),
        unknown_token(TokenFamily::User),
        unknown_token(TokenFamily::Resource),
    ] {
        let r = verify(invalid).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body, json!({"valid": false}), "nothing more is said");
    }

    // Only `verify` tokens may ask.
    for caller in [&alice, &app.owner_token, &telegram] {
        let r = app
            .post("/v1/tokens/verify", caller, json!({ "token": alice }))
            .await;
        assert_error(&r, 403, "forbidden");
    }
    assert_unauthenticated(
        &app.call(
            "POST",
            "/v1/tokens/verify",
            None,
            Some(json!({ "token": alice })),
        )
        .await,
    );
    for body in [
        json!({}),
        json!({"token": alice, "kinds": ["api"]}),
        json!({"token": 1}),
    ] {
        let r = app.post("/v1/tokens/verify", &verifier, body).await;
        assert_error(&r, 400, "invalid_request");
    }

    // Suspension shows at once.
    let r = app
        .call(
            "PUT",
            "/v1/admin/users/alice/status",
            Some(&app.owner_token),
            Some(json!({"status": "suspended"})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(verify(alice.clone()).await.body, json!({"valid": false}));
}

const BOOTSTRAP_SECRET: &str = "a-long-random-bootstrap-secret-for-tests";

async fn bootstrap_creates_the_first_owner_once(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.secrets.bootstrap_token = Some(BOOTSTRAP_SECRET.to_owned());
    })
    .await;
    assert!(app.owner_token.is_empty(), "no Owner until bootstrap");
    let body = json!({"user_id": "root"});

    assert_unauthenticated(
        &app.call("POST", "/v1/bootstrap", None, Some(body.clone()))
            .await,
    );
    let wrong = app
        .post("/v1/bootstrap", "not-the-secret", body.clone())
        .await;
    assert_unauthenticated(&wrong);
    let r = app
        .post(
            "/v1/bootstrap",
            BOOTSTRAP_SECRET,
            json!({"user_id": "default"}),
        )
        .await;
    assert_error(&r, 400, "invalid_request");

    let r = app
        .post("/v1/bootstrap", BOOTSTRAP_SECRET, body.clone())
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["user_id"], "root");
    assert_eq!(r.body["role"], "owner");
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("own_u_"));
    let me = app.get("/v1/me", &token).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["role"], "owner");
    assert_eq!(strings(&me.body["token"]["kinds"]), set(&["manage", "api"]));
    // The secret is no bearer token.
    assert_unauthenticated(&app.get("/v1/me", BOOTSTRAP_SECRET).await);

    // Once an Owner exists: 409, whatever the id.
    for user in ["root", "second"] {
        let r = app
            .post(
                "/v1/bootstrap",
                BOOTSTRAP_SECRET,
                json!({ "user_id": user }),
            )
            .await;
        assert_error(&r, 409, "conflict");
    }
    // The new Owner runs the place.
    let r = app
        .post("/v1/admin/users", &token, json!({"user_id": "alice"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

async fn bootstrap_is_not_found_when_not_configured(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app
        .post(
            "/v1/bootstrap",
            &app.owner_token,
            json!({"user_id": "root"}),
        )
        .await;
    assert_error(&r, 404, "not_found");
}

/// PostgreSQL only: dropping the database under the running server is how a test makes
/// the store unreachable. libSQL is a file the server holds open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_fails_closed_with_503() {
    let app = spawn_app(Backend::Postgres).await;
    let alice = app.create_user("alice", "member").await;
    let cluster = PgCluster::shared().unwrap();
    let database = app.database_url.rsplit('/').next().unwrap().to_owned();
    cluster
        .psql(
            cluster.base_url(),
            &format!("DROP DATABASE {database} WITH (FORCE)"),
        )
        .unwrap();

    let ready = app.call("GET", "/readyz", None, None).await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert_eq!(ready.body, json!({"status": "unavailable"}));
    assert_eq!(app.call("GET", "/healthz", None, None).await.status, 200);

    // A token the server never saw cannot be verified: 503, never a pass, never a 401
    // that would tell the client its token is bad.
    let r = app.get("/v1/me", &unknown_token(TokenFamily::User)).await;
    assert_error(&r, 503, "unavailable");
    // A store call behind a (cached) identity: 503, and nothing leaks of the cause.
    let r = app
        .post("/v1/me/tokens", &alice, json!({"kinds": ["api"]}))
        .await;
    assert_error(&r, 503, "unavailable");
    for leak in ["database", "postgres", "sqlx", &database] {
        assert!(!r.text.contains(leak), "{}", r.text);
    }
}
