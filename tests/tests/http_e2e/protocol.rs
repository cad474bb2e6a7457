//! The wire protocol every route shares: the one 401, JSON error bodies for framework
//! errors too, the body limit, and where a token may be presented.

use ownership_core::token::TokenFamily;
use ownership_tests::app::{Backend, spawn_app, spawn_app_with};
use serde_json::json;

use crate::support::*;

on_both_backends!(
    every_bad_credential_gets_the_same_401_with_a_bearer_challenge,
    a_query_string_token_is_accepted_only_on_the_event_stream,
    responses_that_reveal_a_token_or_secret_are_not_stored,
    user_ids_refuse_invisible_format_characters,
    webhook_urls_are_audited_without_user_information_or_query,
    unknown_routes_and_methods_answer_json,
    malformed_and_unexpected_json_is_400,
    a_body_over_the_limit_is_413,
    repeated_failed_authentication_blocks_the_address,
);

async fn every_bad_credential_gets_the_same_401_with_a_bearer_challenge(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.secrets.master_key = Some([7; 32])).await;
    let mut checksum_broken = unknown_token(TokenFamily::User);
    let last = checksum_broken.pop().unwrap();
    checksum_broken.push(if last == 'A' { 'B' } else { 'A' });
    let alice = app.create_user("alice", "member").await;
    let revoked = {
        let (id, value) = mint(&app, &alice, &["api"]).await;
        let r = app
            .call("DELETE", &format!("/v1/me/tokens/{id}"), Some(&alice), None)
            .await;
        assert_eq!(r.status, 204);
        value
    };

    // A real resource token: it fetches its credentials, and is no bearer token anywhere
    // else.
    let resource = app
        .post(
            "/v1/me/resources",
            &alice,
            json!({"kind": "job", "grants": []}),
        )
        .await;
    assert_eq!(resource.status, 201, "{}", resource.text);
    let resource = resource.body["token"].as_str().unwrap().to_owned();
    assert!(resource.starts_with("own_r_"));
    assert_eq!(
        app.get("/v1/resource/credentials", &resource).await.status,
        200
    );

    let missing = app.call("GET", "/v1/me", None, None).await;
    assert_unauthenticated(&missing);
    let presented = [
        "garbage".to_owned(),
        checksum_broken,
        unknown_token(TokenFamily::User),
        unknown_token(TokenFamily::Service),
        // Resource tokens fetch credentials only; they are never bearer tokens here.
        unknown_token(TokenFamily::Resource),
        resource,
        app.owner_token.to_uppercase(),
        revoked,
    ];
    for token in &presented {
        let r = app.get("/v1/me", token).await;
        assert_unauthenticated(&r);
        assert_eq!(r.text, missing.text, "every 401 is the same");
    }
    // Other schemes and a bare token are no bearer token.
    for header in [
        format!("Basic {}", app.owner_token),
        app.owner_token.clone(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
    ] {
        let r = send_raw(&app, "GET", "/v1/me", &[("authorization", &header)], "").await;
        assert_unauthenticated(&r);
        assert_eq!(r.text, missing.text);
    }
    // The scheme is case-insensitive.
    let r = send_raw(
        &app,
        "GET",
        "/v1/me",
        &[("authorization", &format!("bearer {}", app.owner_token))],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Errors are never cached.
    assert_eq!(
        missing.headers.get("cache-control").map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
}

async fn a_query_string_token_is_accepted_only_on_the_event_stream(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = &app.owner_token;
    for path in ["/v1/me", "/v1/me/tokens", "/v1/me/audit", "/v1/admin/users"] {
        let r = app
            .call("GET", &format!("{path}?access_token={token}"), None, None)
            .await;
        assert_unauthenticated(&r);
    }
    let r = app
        .call(
            "POST",
            &format!("/v1/me/tokens?access_token={token}"),
            None,
            Some(json!({"kinds": ["api"]})),
        )
        .await;
    assert_unauthenticated(&r);

    // The stream takes it (its content is tested in `events`), but never a token that
    // holds `manage` (URLs reach proxy logs): 403, and the header still works for it.
    let r = app
        .call(
            "GET",
            &format!("/v1/me/events?access_token={token}"),
            None,
            None,
        )
        .await;
    assert_error(&r, 403, "forbidden");
    assert!(r.text.contains("manage"), "{}", r.text);
    let (_, api) = mint(&app, token, &["api"]).await;
    // Parsed as a query string: percent-encoding is decoded (`_` written as `%5F`).
    let encoded = api.replace('_', "%5F");
    let res = app
        .http
        .get(format!("{}/v1/me/events?access_token={encoded}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
    );
    drop(res);
    let r = app
        .call("GET", "/v1/me/events?access_token=garbage", None, None)
        .await;
    assert_unauthenticated(&r);
}

/// `Cache-Control: no-store` on every answer that carries a token, a signing secret, a
/// pairing code or a secret value (and on the rest of the API alike).
async fn responses_that_reveal_a_token_or_secret_are_not_stored(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.secrets.master_key = Some([7; 32]);
        c.service.allow_private_webhooks = true;
    })
    .await;
    let owner = app.owner_token.clone();
    let no_store = |r: &ownership_tests::app::Reply, what: &str| {
        assert_eq!(
            r.headers.get("cache-control").and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "{what}: {} {}",
            r.status,
            r.text
        );
    };
    let minted = app
        .post("/v1/me/tokens", &owner, json!({"kinds": ["api"]}))
        .await;
    assert_eq!(minted.status, 201, "{}", minted.text);
    no_store(&minted, "POST /v1/me/tokens");
    let id = minted.body["id"].as_str().unwrap();
    let rotated = app
        .post(&format!("/v1/me/tokens/{id}/rotate"), &owner, json!({}))
        .await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    no_store(&rotated, "POST /v1/me/tokens/{id}/rotate");
    let user = app
        .post(
            "/v1/admin/users",
            &owner,
            json!({"user_id": "alice", "role": "member"}),
        )
        .await;
    assert_eq!(user.status, 201, "{}", user.text);
    no_store(&user, "POST /v1/admin/users");
    let service = app
        .post(
            "/v1/admin/service-tokens",
            &owner,
            json!({"kinds": ["channel:telegram"]}),
        )
        .await;
    assert_eq!(service.status, 201, "{}", service.text);
    no_store(&service, "POST /v1/admin/service-tokens");
    let channel_token = service.body["token"].as_str().unwrap().to_owned();
    let code = app
        .post(
            "/v1/channels/telegram/pairing-requests",
            &channel_token,
            json!({"external_id": "42"}),
        )
        .await;
    assert!(code.status == 201 || code.status == 200, "{}", code.text);
    no_store(&code, "POST /v1/channels/{channel}/pairing-requests");
    let put = app
        .call(
            "PUT",
            "/v1/me/secrets/api_key",
            Some(&owner),
            Some(json!({"value": "s3cret-value"})),
        )
        .await;
    assert!(put.status == 201 || put.status == 200, "{}", put.text);
    let resource = app
        .post(
            "/v1/me/resources",
            &owner,
            json!({"kind": "job", "grants": ["api_key"]}),
        )
        .await;
    assert_eq!(resource.status, 201, "{}", resource.text);
    no_store(&resource, "POST /v1/me/resources");
    let resource_token = resource.body["token"].as_str().unwrap().to_owned();
    let credentials = app.get("/v1/resource/credentials", &resource_token).await;
    assert_eq!(credentials.status, 200, "{}", credentials.text);
    no_store(&credentials, "GET /v1/resource/credentials");
    let hook = app
        .call(
            "PUT",
            "/v1/me/webhook",
            Some(&owner),
            Some(json!({"url": "http://127.0.0.1:9/hook"})),
        )
        .await;
    assert!(hook.status == 201 || hook.status == 200, "{}", hook.text);
    no_store(&hook, "PUT /v1/me/webhook");
    let secret = app
        .post("/v1/me/webhook/rotate-secret", &owner, json!({}))
        .await;
    assert_eq!(secret.status, 200, "{}", secret.text);
    no_store(&secret, "POST /v1/me/webhook/rotate-secret");
    // And the rest of the API, errors included.
    no_store(&app.get("/v1/me", &owner).await, "GET /v1/me");
    no_store(&app.call("GET", "/v1/me", None, None).await, "a 401");
    app.stop().await;
}

/// Ids refuse Unicode format characters (category Cf), so `b\u{200B}ob` cannot pass for
/// `bob` on a page or in a log.
async fn user_ids_refuse_invisible_format_characters(backend: Backend) {
    let app = spawn_app(backend).await;
    for id in [
        "b\u{200B}ob",
        "bob\u{2060}",
        "\u{FEFF}bob",
        "bo\u{00AD}b",
        "b\u{202E}ob",
    ] {
        let r = app
            .post(
                "/v1/admin/users",
                &app.owner_token,
                json!({"user_id": id, "role": "member"}),
            )
            .await;
        assert_error(&r, 400, "invalid_request");
        assert!(r.text.contains("format characters"), "{id:?}: {}", r.text);
    }
    app.stop().await;
}

/// A webhook URL is recorded in the audit trail (read by Admins, streamed, delivered)
/// without user information, query or fragment: a receiver's secret often rides there.
async fn webhook_urls_are_audited_without_user_information_or_query(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.secrets.master_key = Some([7; 32]);
        c.service.allow_private_webhooks = true;
    })
    .await;
    let owner = app.owner_token.clone();
    let r = app
        .call(
            "PUT",
            "/v1/me/webhook",
            Some(&owner),
            Some(json!({"url": "http://127.0.0.1:9/in?token=hunter2-receiver-secret"})),
        )
        .await;
    assert!(r.status == 201 || r.status == 200, "{}", r.text);
    let audit = app.get("/v1/me/audit", &owner).await;
    assert_eq!(audit.status, 200, "{}", audit.text);
    let set = audit.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "webhook.set")
        .expect("a webhook.set event");
    assert_eq!(set["details"]["url"], "http://127.0.0.1:9/in");
    for path in ["/v1/me/audit", "/v1/admin/audit"] {
        let r = app.get(path, &owner).await;
        assert!(!r.text.contains("hunter2"), "{path}: {}", r.text);
    }
    app.stop().await;
}

async fn unknown_routes_and_methods_answer_json(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/v1/nope", "/nope", "/v1/me/tokens/x/y/z", "/v2/me"] {
        let r = app.get(path, &app.owner_token).await;
        assert_error(&r, 404, "not_found");
        let r = app.call("GET", path, None, None).await;
        assert_error(&r, 404, "not_found");
    }
    for (method, path) in [
        ("PATCH", "/v1/me"),
        ("DELETE", "/v1/me"),
        ("PUT", "/v1/me/tokens"),
        ("GET", "/v1/bootstrap"),
        ("POST", "/healthz"),
    ] {
        let r = app.call(method, path, Some(&app.owner_token), None).await;
        assert_error(&r, 405, "method_not_allowed");
    }
    // Every response carries a request id.
    let r = app.get("/v1/me", &app.owner_token).await;
    assert!(r.headers.get("x-request-id").is_some_and(|v| !v.is_empty()));
}

async fn malformed_and_unexpected_json_is_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let auth = format!("Bearer {}", app.owner_token);
    let json_headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    for body in [
        "{not json",
        "",
        "[]",
        "null",
        r#"{"kinds": ["api"]"#,
        r#"{"kinds": ["api"], "admin": true}"#,
        r#"{"kinds": [1]}"#,
    ] {
        let r = send_raw(&app, "POST", "/v1/me/tokens", &json_headers, body).await;
        assert_error(&r, 400, "invalid_request");
    }
    // Unknown fields are refused on every body, not just this one.
    for (path, body) in [
        ("/v1/admin/users", r#"{"user_id": "x", "is_admin": true}"#),
        (
            "/v1/pairing/telegram/redeem",
            r#"{"code": "ABCD-EFGH", "for": "x"}"#,
        ),
        ("/v1/me/tokens/{absent}/rotate", r#"{"grace": 5}"#),
    ] {
        let path = path.replace("{absent}", &absent_token_id());
        let r = send_raw(&app, "POST", &path, &json_headers, body).await;
        assert_error(&r, 400, "invalid_request");
    }
    // A body that is not declared JSON.
    let r = send_raw(
        &app,
        "POST",
        "/v1/me/tokens",
        &[
            ("authorization", auth.as_str()),
            ("content-type", "text/plain"),
        ],
        r#"{"kinds": ["api"]}"#,
    )
    .await;
    assert_error(&r, 415, "unsupported_media_type");
}

async fn a_body_over_the_limit_is_413(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.service.body_limit = 1024).await;
    let auth = format!("Bearer {}", app.owner_token);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let big = json!({"kinds": ["api"], "label": "x".repeat(4096)}).to_string();
    let r = send_raw(&app, "POST", "/v1/me/tokens", &headers, big.clone()).await;
    assert_error(&r, 413, "payload_too_large");
    let id = token_id(&app, &app.owner_token).await;
    let r = send_raw(
        &app,
        "POST",
        &format!("/v1/me/tokens/{id}/rotate"),
        &headers,
        big,
    )
    .await;
    assert_error(&r, 413, "payload_too_large");
    // Under the limit, the same route works.
    let r = send_raw(
        &app,
        "POST",
        "/v1/me/tokens",
        &headers,
        r#"{"kinds": ["api"]}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

async fn repeated_failed_authentication_blocks_the_address(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.service.limits.failed_auth_per_address = 3;
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(app.get("/v1/me", "garbage").await);
    }
    let first_refusal = statuses
        .iter()
        .position(|r| r.status == 429)
        .expect("the address is blocked");
    assert!(
        first_refusal <= 3,
        "blocked after the budget: {first_refusal}"
    );
    for r in &statuses[..first_refusal] {
        assert_unauthenticated(r);
    }
    for r in &statuses[first_refusal..] {
        assert_rate_limited(r);
    }
    // Only failures are refused: a valid token from the blocked address still works.
    let r = app.get("/v1/me", &app.owner_token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_rate_limited(&app.get("/v1/me", "garbage").await);
}
