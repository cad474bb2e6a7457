//! Helpers the scenarios share: error-body assertions, and the few steps most scenarios
//! take (users, service tokens, pairing codes, linked chat accounts).

use std::collections::BTreeSet;

use ownership_core::ids::TokenId;
use ownership_core::token::{TokenFamily, TokenSecret};
use ownership_store::OsRandom;
use ownership_tests::app::{Reply, TestApp};
use serde_json::{Value, json};

/// Asserts an error reply: `status`, and a body that is exactly
/// `{"error":{"code":<code>,"message":<non-empty text>}}`, sent as JSON.
#[track_caller]
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "status of {}", reply.text);
    let content_type = reply
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "error sent as `{content_type}`: {}",
        reply.text
    );
    let outer = reply.body.as_object().expect("error body is an object");
    assert_eq!(
        outer.keys().collect::<Vec<_>>(),
        ["error"],
        "error body: {}",
        reply.text
    );
    let inner = reply.body["error"]
        .as_object()
        .expect("`error` is an object");
    let mut keys: Vec<_> = inner.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message"], "error body: {}", reply.text);
    assert_eq!(
        reply.body["error"]["code"], code,
        "error body: {}",
        reply.text
    );
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error message: {}",
        reply.text
    );
}

/// Asserts the one 401: `WWW-Authenticate: Bearer` and code `unauthenticated`.
#[track_caller]
pub fn assert_unauthenticated(reply: &Reply) {
    assert_error(reply, 401, "unauthenticated");
    assert_eq!(
        reply.headers.get("www-authenticate").map(|v| v.as_bytes()),
        Some(&b"Bearer"[..]),
        "401 without the challenge"
    );
}

/// Asserts a 429 with a positive `Retry-After` (in seconds).
#[track_caller]
pub fn assert_rate_limited(reply: &Reply) {
    assert_error(reply, 429, "rate_limited");
    let after: u64 = reply
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("429 carries Retry-After in seconds");
    assert!(after >= 1, "Retry-After: {after}");
}

/// The strings of a JSON array, as a set.
pub fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

/// A set of string literals.
pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A token id in the right format that names no token.
pub fn absent_token_id() -> String {
    TokenId::generate(&mut OsRandom).to_string()
}

/// A well-formed token (prefix, length, checksum) of `family` that the store never saw.
pub fn unknown_token(family: TokenFamily) -> String {
    TokenSecret::generate(family, &mut OsRandom)
        .expose()
        .to_owned()
}

/// The id of the token `token` (from `GET /v1/me`).
pub async fn token_id(app: &TestApp, token: &str) -> String {
    let me = app.get("/v1/me", token).await;
    assert_eq!(me.status, 200, "{}", me.text);
    me.body["token"]["id"]
        .as_str()
        .expect("token id")
        .to_owned()
}

/// Mints a token of `kinds` with `token`; returns `(id, value)`.
pub async fn mint(app: &TestApp, token: &str, kinds: &[&str]) -> (String, String) {
    let r = app
        .post("/v1/me/tokens", token, json!({ "kinds": kinds }))
        .await;
    assert_eq!(r.status, 201, "mint {kinds:?}: {}", r.text);
    (
        r.body["id"].as_str().expect("id").to_owned(),
        r.body["token"].as_str().expect("token").to_owned(),
    )
}

/// A service token of `kinds` minted by the first Owner; returns its value.
/// Stores the secret `db-password` (`hunter2`) for the caller and registers a `job`
/// resource granted it: `(resource id, resource credential)`.
pub async fn granted_resource(app: &TestApp, token: &str) -> (String, String) {
    let r = app
        .call(
            "PUT",
            "/v1/me/secrets/db-password",
            Some(token),
            Some(json!({"value": "hunter2"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .post(
            "/v1/me/resources",
            token,
            json!({"kind": "job", "grants": ["db-password"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["token"].as_str().unwrap().to_owned(),
    )
}

pub async fn service_token(app: &TestApp, kinds: &[&str]) -> String {
    let r = app
        .post(
            "/v1/admin/service-tokens",
            &app.owner_token,
            json!({ "kinds": kinds, "label": "adapter" }),
        )
        .await;
    assert_eq!(r.status, 201, "service token {kinds:?}: {}", r.text);
    r.body["token"].as_str().expect("token").to_owned()
}

/// Asks for a pairing code for `external_id` with a channel token; returns the code.
pub async fn pairing_code(
    app: &TestApp,
    channel_token: &str,
    channel: &str,
    external_id: &str,
) -> String {
    let r = app
        .post(
            &format!("/v1/channels/{channel}/pairing-requests"),
            channel_token,
            json!({ "external_id": external_id }),
        )
        .await;
    assert!(
        r.status == 201 || r.status == 200,
        "pairing request: {}",
        r.text
    );
    r.body["code"].as_str().expect("code").to_owned()
}

/// Links `(channel, external_id)` to the user of `user_token` by self-claim.
pub async fn link(
    app: &TestApp,
    channel_token: &str,
    user_token: &str,
    channel: &str,
    external_id: &str,
) {
    let code = pairing_code(app, channel_token, channel, external_id).await;
    let r = app
        .post(
            &format!("/v1/pairing/{channel}/redeem"),
            user_token,
            json!({ "code": code }),
        )
        .await;
    assert_eq!(r.status, 200, "redeem: {}", r.text);
}

/// `GET /v1/channels/{channel}/identities/{external_id}`.
pub async fn resolve(
    app: &TestApp,
    channel_token: &str,
    channel: &str,
    external_id: &str,
) -> Reply {
    app.get(
        &format!("/v1/channels/{channel}/identities/{external_id}"),
        channel_token,
    )
    .await
}

/// Sends raw bytes with the given headers (for bodies `TestApp::call` cannot send).
pub async fn send_raw(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = app
        .http
        .request(method, format!("{}{path}", app.base))
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let res = request.send().await.expect("request sent");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}
