//! Secrets, resources and the webhook endpoint over HTTP (docs/secrets.md, docs/webhooks.md): values go in and
//! come out only to the owner's resources; every credentials refusal is the same 403;
//! without a master key these routes are off.

use ownership_tests::app::{Backend, TestApp, spawn_app, spawn_app_with};
use serde_json::json;

use crate::support::*;

on_both_backends!(
    secrets_are_stored_listed_and_deleted_and_never_shown,
    a_resource_fetches_its_granted_secrets_until_revoked,
    without_a_master_key_secrets_and_webhooks_are_disabled,
    the_webhook_endpoint_is_set_read_rotated_and_removed,
    webhook_endpoints_must_be_public_https,
);

const MASTER_KEY: [u8; 32] = [7; 32];

async fn with_master_key(backend: Backend) -> TestApp {
    spawn_app_with(backend, |c| c.secrets.master_key = Some(MASTER_KEY)).await
}

async fn put_secret(
    app: &TestApp,
    token: &str,
    name: &str,
    value: &str,
) -> ownership_tests::app::Reply {
    app.call(
        "PUT",
        &format!("/v1/me/secrets/{name}"),
        Some(token),
        Some(json!({ "value": value })),
    )
    .await
}

async fn secrets_are_stored_listed_and_deleted_and_never_shown(backend: Backend) {
    let app = with_master_key(backend).await;
    let alice = app.create_user("alice", "member").await;
    let value = "correct-horse-battery-staple";

    let r = put_secret(&app, &alice, "db-password", value).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["name"], "db-password");
    assert!(!r.text.contains(value), "a value came back: {}", r.text);
    let r = put_secret(&app, &alice, "db-password", "replaced").await;
    assert_eq!(r.status, 200, "replaced: {}", r.text);
    // An `api` token (the owner's programs) may store secrets too.
    let (_, api) = mint(&app, &alice, &["api"]).await;
    assert_eq!(put_secret(&app, &api, "api-key", "k").await.status, 201);

    let list = app.get("/v1/me/secrets", &alice).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let names: Vec<&str> = list.body["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{}", list.text);
    assert!(names.contains(&"db-password") && names.contains(&"api-key"));
    assert!(!list.text.contains("replaced") && !list.text.contains(value));

    for bad in [".hidden", "two%20words"] {
        let r = put_secret(&app, &alice, bad, "v").await;
        assert_error(&r, 400, "invalid_request");
    }
    let r = app
        .call(
            "PUT",
            "/v1/me/secrets/x",
            Some(&alice),
            Some(json!({"value": "v", "owner": "bob"})),
        )
        .await;
    assert_error(&r, 400, "invalid_request");

    let r = app
        .call("DELETE", "/v1/me/secrets/db-password", Some(&alice), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    for name in ["db-password", "never-was", ".hidden"] {
        let r = app
            .call(
                "DELETE",
                &format!("/v1/me/secrets/{name}"),
                Some(&alice),
                None,
            )
            .await;
        assert_error(&r, 404, "not_found");
    }

    // Neither service tokens nor strangers.
    let verify = service_token(&app, &["verify"]).await;
    assert_error(&app.get("/v1/me/secrets", &verify).await, 403, "forbidden");
    assert_unauthenticated(&app.call("GET", "/v1/me/secrets", None, None).await);
}

async fn a_resource_fetches_its_granted_secrets_until_revoked(backend: Backend) {
    let app = with_master_key(backend).await;
    let alice = app.create_user("alice", "member").await;
    assert_eq!(put_secret(&app, &alice, "db", "s3cret").await.status, 201);
    assert_eq!(
        put_secret(&app, &alice, "other", "not-granted")
            .await
            .status,
        201
    );

    let r = app
        .post(
            "/v1/me/resources",
            &alice,
            json!({"kind": "job", "external_ref": "nightly", "grants": ["db"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("own_r_"));
    assert_eq!(strings(&r.body["grants"]), set(&["db"]));

    // Exactly the granted secrets, from the creator's scope.
    let creds = app.get("/v1/resource/credentials", &token).await;
    assert_eq!(creds.status, 200, "{}", creds.text);
    assert_eq!(creds.body, json!({"secrets": {"db": "s3cret"}}));
    assert_eq!(
        creds.headers.get("cache-control").map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );

    let one = app.get(&format!("/v1/me/resources/{id}"), &alice).await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.body["kind"], "job");
    assert_eq!(one.body["external_ref"], "nightly");
    assert!(!one.text.contains(&token));
    let list = app.get("/v1/me/resources", &alice).await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert!(list.text.contains(&id) && !list.text.contains(&token));

    for body in [
        json!({"kind": "job", "grants": ["missing"]}),
        json!({"kind": "job", "grants": [".bad"]}),
        json!({"kind": "", "grants": []}),
        json!({"grants": []}),
    ] {
        let r = app.post("/v1/me/resources", &alice, body).await;
        assert_error(&r, 400, "invalid_request");
    }
    for absent in ["not-an-id".to_owned(), format!("{id}0")] {
        let r = app.get(&format!("/v1/me/resources/{absent}"), &alice).await;
        assert_error(&r, 404, "not_found");
    }

    // No token at all is the 401 of a missing credential; every refusal of a token
    // presented is the same 403: a garbage one, a user token, a revoked resource.
    assert_unauthenticated(
        &app.call("GET", "/v1/resource/credentials", None, None)
            .await,
    );
    let denial = app.get("/v1/resource/credentials", "garbage").await;
    assert_error(&denial, 403, "forbidden");
    for bad in ["garbage-too", alice.as_str()] {
        let r = app.get("/v1/resource/credentials", bad).await;
        assert_eq!((r.status, &r.text), (403, &denial.text));
    }
    let r = app
        .call(
            "DELETE",
            &format!("/v1/me/resources/{id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = app.get("/v1/resource/credentials", &token).await;
    assert_eq!((r.status, &r.text), (403, &denial.text), "revoked at once");
}

async fn without_a_master_key_secrets_and_webhooks_are_disabled(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = &app.owner_token;
    let r = put_secret(&app, token, "db", "v").await;
    assert_error(&r, 503, "secrets_disabled");
    assert_error(
        &app.get("/v1/me/secrets", token).await,
        503,
        "secrets_disabled",
    );
    let r = app
        .post(
            "/v1/me/resources",
            token,
            json!({"kind": "job", "grants": []}),
        )
        .await;
    assert_error(&r, 503, "secrets_disabled");
    let r = app
        .call(
            "PUT",
            "/v1/me/webhook",
            Some(token),
            Some(json!({"url": "https://127.0.0.1:9/hook"})),
        )
        .await;
    assert_error(&r, 503, "webhooks_disabled");
    // Still authentication first: no token is a 401, not a hint about the configuration.
    assert_unauthenticated(&app.call("GET", "/v1/me/secrets", None, None).await);
}

async fn the_webhook_endpoint_is_set_read_rotated_and_removed(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.secrets.master_key = Some(MASTER_KEY);
        // A loopback endpoint that refuses connections: nothing leaves the machine.
        c.service.allow_private_webhooks = true;
    })
    .await;
    let alice = app.create_user("alice", "member").await;
    let put = |url: &'static str| {
        let app = &app;
        let alice = alice.clone();
        async move {
            app.call(
                "PUT",
                "/v1/me/webhook",
                Some(&alice),
                Some(json!({ "url": url })),
            )
            .await
        }
    };
    assert_error(&app.get("/v1/me/webhook", &alice).await, 404, "not_found");

    let r = put("https://127.0.0.1:9/hook").await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["url"], "https://127.0.0.1:9/hook");
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "Standard Webhooks secret");
    let r = put("https://127.0.0.1:9/other").await;
    assert_eq!(r.status, 200, "replaced: {}", r.text);
    assert_ne!(r.body["secret"], secret.as_str());

    let got = app.get("/v1/me/webhook", &alice).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body["url"], "https://127.0.0.1:9/other");
    assert!(got.body.get("secret").is_none() && !got.text.contains("whsec_"));

    let rotated = app
        .post(
            "/v1/me/webhook/rotate-secret",
            &alice,
            json!({"grace_seconds": 3600}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert!(
        rotated.body["secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    assert!(rotated.body["previous_secret_expires_at"].is_string());
    let r = app
        .call("POST", "/v1/me/webhook/rotate-secret", Some(&alice), None)
        .await;
    assert_eq!(r.status, 200, "an empty body means no grace: {}", r.text);
    let r = app
        .post("/v1/me/webhook/rotate-secret", &alice, json!({"grace": 1}))
        .await;
    assert_error(&r, 400, "invalid_request");

    let log = app.get("/v1/me/webhook/deliveries", &alice).await;
    assert_eq!(log.status, 200, "{}", log.text);
    assert!(log.body["deliveries"].is_array());
    for bad in ["limit=x", "limit=0", "limit=501", "after=not-a-cursor"] {
        assert_error(
            &app.get(&format!("/v1/me/webhook/deliveries?{bad}"), &alice)
                .await,
            400,
            "invalid_request",
        );
    }

    // Account settings: `manage` only; another owner sees none of it.
    let (_, api) = mint(&app, &alice, &["api"]).await;
    assert_error(&app.get("/v1/me/webhook", &api).await, 403, "forbidden");
    assert_error(
        &app.get("/v1/me/webhook", &app.owner_token).await,
        404,
        "not_found",
    );

    let r = app
        .call("DELETE", "/v1/me/webhook", Some(&alice), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_error(&app.get("/v1/me/webhook", &alice).await, 404, "not_found");
    let r = app
        .call("DELETE", "/v1/me/webhook", Some(&alice), None)
        .await;
    assert_error(&r, 404, "not_found");
    let r = app
        .call("POST", "/v1/me/webhook/rotate-secret", Some(&alice), None)
        .await;
    assert_error(&r, 404, "not_found");
}

async fn webhook_endpoints_must_be_public_https(backend: Backend) {
    let app = with_master_key(backend).await;
    for url in [
        "http://93.184.216.34/hook",
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://[::1]/hook",
        "https://user:pw@93.184.216.34/hook",
        "not a url",
    ] {
        let r = app
            .call(
                "PUT",
                "/v1/me/webhook",
                Some(&app.owner_token),
                Some(json!({ "url": url })),
            )
            .await;
        assert_error(&r, 400, "invalid_request");
    }
    assert_error(
        &app.get("/v1/me/webhook", &app.owner_token).await,
        404,
        "not_found",
    );
}
