//! Leaked tokens revoked by value: the public report endpoint and GitHub's secret-scanning
//! partner endpoint.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ownership_tests::app::{Backend, TestApp, spawn_app_with};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

use crate::support::*;

on_both_backends!(
    a_leak_report_revokes_live_tokens_and_answers_alike,
    a_leaked_resource_credential_is_revoked_too,
    leak_reports_are_bounded_and_rate_limited_per_address,
    github_reports_revoke_what_a_verified_signature_names,
);

async fn report(app: &TestApp, tokens: &[&str]) -> (u16, Value) {
    let r = app
        .call(
            "POST",
            "/v1/tokens/revoke-leaked",
            None,
            Some(json!({"tokens": tokens})),
        )
        .await;
    (r.status, r.body)
}

async fn a_leak_report_revokes_live_tokens_and_answers_alike(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let alice = app.create_user("alice", "member").await;
    let (_, api) = mint(&app, &alice, &["api"]).await;
    let service = service_token(&app, &["channel:telegram"]).await;
    assert_eq!(app.get("/v1/me", &api).await.status, 200, "warm the cache");

    // Garbage and real tokens get the same answer, byte for byte.
    let garbage = report(&app, &["nope", "own_u_not-a-token", "ghp_xxxxxxxx"]).await;
    let real = report(&app, &[&api, &service, "still-garbage"]).await;
    assert_eq!(garbage, (202, json!({"received": 3})));
    assert_eq!(real, garbage, "the answer never says what matched");

    // Both are revoked on the next request, cache or not.
    assert_unauthenticated(&app.get("/v1/me", &api).await);
    assert_unauthenticated(&app.get("/v1/me", &service).await);
    assert_eq!(
        app.get("/v1/me", &alice).await.status,
        200,
        "the rest lives"
    );

    // The owner sees why, in their audit log (and so in their stream and webhook).
    let audit = app.get("/v1/me/audit", &alice).await;
    let leaked: Vec<&Value> = audit.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "token.revoked_as_leaked")
        .collect();
    assert_eq!(leaked.len(), 1, "{}", audit.text);
    assert_eq!(leaked[0]["details"]["source"], "report");

    // Reporting it again changes nothing and answers the same.
    assert_eq!(report(&app, &[&api]).await, (202, json!({"received": 1})));
    let again = app.get("/v1/me/audit", &alice).await;
    let count = again.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "token.revoked_as_leaked")
        .count();
    assert_eq!(count, 1, "revoked once");
}

async fn a_leaked_resource_credential_is_revoked_too(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.secrets.master_key = Some([7; 32])).await;
    let alice = app.create_user("alice", "member").await;
    let (resource, credential) = granted_resource(&app, &alice).await;
    let r = app.get("/v1/resource/credentials", &credential).await;
    assert_eq!(r.status, 200, "warm the cache: {}", r.text);

    // The same answer as for garbage; the credential stops working on the next request.
    assert_eq!(
        report(&app, &[&credential, "garbage"]).await,
        (202, json!({"received": 2}))
    );
    // (A refused resource credential is the route's one 403, whatever the cause.)
    assert_error(
        &app.get("/v1/resource/credentials", &credential).await,
        403,
        "forbidden",
    );
    let r = app
        .get(&format!("/v1/me/resources/{resource}"), &alice)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.body["revoked_at"].is_null(), "{}", r.text);

    // The owner hears of it, once, with the source.
    let leaked = |audit: &Value| -> Vec<Value> {
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "resource.revoked_as_leaked")
            .cloned()
            .collect()
    };
    let audit = app.get("/v1/me/audit", &alice).await;
    let found = leaked(&audit.body);
    assert_eq!(found.len(), 1, "{}", audit.text);
    assert_eq!(found[0]["target"], resource.as_str(), "{}", audit.text);
    assert_eq!(found[0]["details"]["source"], "report");
    report(&app, &[&credential]).await;
    let again = app.get("/v1/me/audit", &alice).await;
    assert_eq!(leaked(&again.body).len(), 1, "revoked once: {}", again.text);
}

async fn leak_reports_are_bounded_and_rate_limited_per_address(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.service.limits.leak_reports_per_address = 3).await;
    let many: Vec<String> = (0..1001).map(|i| format!("value-{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let (status, body) = report(&app, &many).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tokens"),
        "{body}"
    );
    // That refusal spent one report; two more pass, the next is 429 with Retry-After.
    for _ in 0..2 {
        assert_eq!(report(&app, &["x"]).await.0, 202);
    }
    let r = app
        .call(
            "POST",
            "/v1/tokens/revoke-leaked",
            None,
            Some(json!({"tokens": ["x"]})),
        )
        .await;
    assert_error(&r, 429, "rate_limited");
}

/// A P-256 key pair as GitHub holds one, and its PEM public key as an operator configures it.
fn github_key() -> (EcdsaKeyPair, String) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let pem = ownership_http::github::pem_of_point(pair.public_key().as_ref());
    (pair, pem)
}

async fn github(app: &TestApp, key_id: &str, signature: &str, body: &str) -> (u16, Value) {
    let r = app
        .http
        .post(format!("{}/v1/secret-scanning/github", app.base))
        .header("content-type", "application/json")
        .header("Github-Public-Key-Identifier", key_id)
        .header("Github-Public-Key-Signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn github_reports_revoke_what_a_verified_signature_names(backend: Backend) {
    let (pair, pem) = github_key();
    let (other, _) = github_key();
    let app = spawn_app_with(backend, |c| {
        c.service.github_keys =
            ownership_http::github::GitHubKeys::from_pem([("key-1", pem.as_str())]).unwrap();
    })
    .await;
    let alice = app.create_user("alice", "member").await;
    let (_, api) = mint(&app, &alice, &["api"]).await;
    // GitHub's documented payload shape.
    let body = json!([
        {"token": api, "type": "ownership_user_token",
         "url": "https://github.com/octo/repo/blob/main/.env", "source": "content"},
        {"token": "own_u_something-else", "type": "ownership_user_token",
         "url": "https://github.com/octo/repo/blob/main/README.md", "source": "content"},
    ])
    .to_string();
    let rng = SystemRandom::new();
    let sign = |pair: &EcdsaKeyPair, body: &str| {
        STANDARD.encode(pair.sign(&rng, body.as_bytes()).unwrap().as_ref())
    };

    // A wrong signature, another key's signature and an unknown key id: 401, nothing revoked.
    let (status, _) = github(&app, "key-1", &sign(&other, &body), &body).await;
    assert_eq!(status, 401);
    let (status, _) = github(&app, "key-2", &sign(&pair, &body), &body).await;
    assert_eq!(status, 401);
    let (status, _) = github(&app, "key-1", "bm90IGEgc2lnbmF0dXJl", &body).await;
    assert_eq!(status, 401);
    assert_eq!(app.get("/v1/me", &api).await.status, 200, "still live");

    // Signed by the configured key: revoked, and labelled in GitHub's feedback format.
    let (status, labels) = github(&app, "key-1", &sign(&pair, &body), &body).await;
    assert_eq!(status, 200, "{labels}");
    let labels = labels.as_array().unwrap();
    assert_eq!(labels.len(), 2);
    assert_eq!(labels[0]["label"], "true_positive");
    assert_eq!(labels[0]["token_type"], "ownership_user_token");
    assert_eq!(
        labels[0]["token_hash"],
        ownership_core::token::digest_of(&api).to_hex()
    );
    assert_eq!(labels[1]["label"], "false_positive");
    assert_unauthenticated(&app.get("/v1/me", &api).await);
    let audit = app.get("/v1/me/audit", &alice).await;
    assert!(
        audit.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "token.revoked_as_leaked" && e["details"]["source"] == "github"),
        "{}",
        audit.text
    );

    // Without a configured key the endpoint does not exist.
    let bare = spawn_app_with(backend, |_| {}).await;
    let (status, _) = github(&bare, "key-1", &sign(&pair, &body), &body).await;
    assert_eq!(status, 404);
}
