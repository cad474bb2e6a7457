//! The OpenAPI document at `/v1/openapi.json` and the routes the server really serves are
//! the same set: every documented operation is routed (an unauthenticated request reaches
//! its handler and gets the handler's 401, not the fallback's 404 or a 405), every
//! undocumented method on a documented path is a 405, every handler registered in
//! `ownership-http`'s `routes` is documented, and the list is exactly the one below.
//!
//! The served document is also the checked-in `docs/openapi.json`
//! (`the_checked_in_document_is_the_served_one`), so every API change shows in review as
//! a diff of that file. Together these make a route added to the router but missing from
//! the checked-in document fail a test:
//!
//! - the `/v1` routes come only from `routes::api()`, whose `routes!(…)` entries also
//!   generate the served document: a plain axum `.route(` in the route modules fails
//!   `every_registered_handler_is_documented`, and one in the router beside the
//!   document's own route fails `the_router_adds_no_undocumented_route`;
//! - every handler named in `routes!(…)` must be an operation of the served document
//!   (`every_registered_handler_is_documented`) and be listed in [`EXPECTED`]
//!   (`the_document_lists_exactly_the_served_operations`);
//! - and the served document must equal the checked-in one.
//!
//! Regenerate the file with `cargo xtask openapi`; the tests never write it. Beyond the
//! route list, every status the server answers to a sweep of ordinary and hostile requests
//! must be documented for its operation (`every_status_the_server_answers_is_documented`).
//!
//! Routing does not depend on the backend, so this runs on libSQL only.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::collections::BTreeSet;
use std::path::Path;

use ownership_tests::app::{Backend, TestApp, spawn_app_with};
use serde_json::{Value, json};

/// Every operation the service serves, as `METHOD path` (docs/api.md).
const EXPECTED: &[&str] = &[
    "GET /healthz",
    "GET /readyz",
    "POST /v1/bootstrap",
    "GET /v1/me",
    "GET /v1/me/tokens",
    "POST /v1/me/tokens",
    "POST /v1/me/tokens/{id}/rotate",
    "DELETE /v1/me/tokens/{id}",
    "POST /v1/tokens/revoke-leaked",
    "POST /v1/secret-scanning/github",
    "GET /v1/me/identities",
    "DELETE /v1/me/identities/{channel}/{external_id}",
    "GET /v1/me/audit",
    "GET /v1/me/events",
    "POST /v1/me/events/ticket",
    "GET /v1/admin/users",
    "POST /v1/admin/users",
    "GET /v1/admin/users/{id}",
    "DELETE /v1/admin/users/{id}",
    "PUT /v1/admin/users/{id}/role",
    "PUT /v1/admin/users/{id}/status",
    "POST /v1/admin/service-tokens",
    "GET /v1/admin/audit",
    "POST /v1/channels/{channel}/pairing-requests",
    "GET /v1/channels/{channel}/identities/{external_id}",
    "POST /v1/pairing/{channel}/redeem",
    "GET /v1/admin/pairing/{channel}",
    "POST /v1/admin/pairing/{channel}/approve",
    "POST /v1/tokens/verify",
    "GET /v1/me/secrets",
    "PUT /v1/me/secrets/{name}",
    "DELETE /v1/me/secrets/{name}",
    "GET /v1/me/resources",
    "POST /v1/me/resources",
    "GET /v1/me/resources/{id}",
    "DELETE /v1/me/resources/{id}",
    "GET /v1/resource/credentials",
    "GET /v1/me/webhook",
    "PUT /v1/me/webhook",
    "DELETE /v1/me/webhook",
    "POST /v1/me/webhook/rotate-secret",
    "GET /v1/me/webhook/deliveries",
];

/// Operations that take no user or service token, and what an anonymous probe gets from
/// them. `/v1/bootstrap` takes the bootstrap secret as its bearer token; the credentials
/// route takes a resource token and answers every failure with the same 403 (docs/secrets.md).
const PUBLIC: &[(&str, u16)] = &[
    ("GET /healthz", 200),
    ("GET /readyz", 200),
    ("POST /v1/bootstrap", 401),
    ("GET /v1/resource/credentials", 401),
    // Holding a token is the proof: the probe's body is not a report.
    ("POST /v1/tokens/revoke-leaked", 400),
    // No GitHub key is configured here: the endpoint does not exist.
    ("POST /v1/secret-scanning/github", 404),
];

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

async fn app() -> TestApp {
    spawn_app_with(Backend::Libsql, |c| {
        c.secrets.bootstrap_token = Some("bootstrap-secret-for-the-openapi-test".into());
    })
    .await
}

async fn document(app: &TestApp) -> Value {
    let r = app.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// `(METHOD, path, operation)` for every operation of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if METHODS.iter().any(|m| m.eq_ignore_ascii_case(method)) {
                out.push((method.to_uppercase(), path.clone(), operation.clone()));
            }
        }
    }
    out
}

/// A concrete path for a templated one.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "probe"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn probe(app: &TestApp, method: &str, path: &str) -> ownership_tests::app::Reply {
    let body = matches!(method, "POST" | "PUT" | "PATCH").then(|| json!({"user_id": "probe"}));
    app.call(method, &concrete(path), None, body).await
}

#[tokio::test]
async fn the_document_lists_exactly_the_served_operations() {
    let app = app().await;
    let doc = document(&app).await;
    let documented: BTreeSet<String> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| format!("{method} {path}"))
        .collect();
    let expected: BTreeSet<String> = EXPECTED.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        documented.difference(&expected).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "documented but not expected"
    );
    assert_eq!(
        expected.difference(&documented).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "expected but not documented"
    );
    // The served document is the library's.
    assert_eq!(
        doc,
        serde_json::to_value(ownership_http::openapi()).unwrap()
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn every_documented_operation_reaches_its_handler() {
    let app = app().await;
    let doc = document(&app).await;
    for (method, path, _) in operations(&doc) {
        let operation = format!("{method} {path}");
        let r = probe(&app, &method, &path).await;
        let expected = PUBLIC
            .iter()
            .find(|(op, _)| *op == operation)
            .map_or(401, |(_, status)| *status);
        assert_eq!(
            r.status, expected,
            "{operation}: an anonymous request should reach the handler: {}",
            r.text
        );
        if r.status == 401 {
            assert_eq!(r.body["error"]["code"], "unauthenticated", "{operation}");
            assert_eq!(
                r.headers.get("www-authenticate").map(|v| v.as_bytes()),
                Some(&b"Bearer"[..]),
                "{operation}"
            );
        }
    }
}

#[tokio::test]
async fn undocumented_methods_on_documented_paths_are_405() {
    let app = app().await;
    let doc = document(&app).await;
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let paths: BTreeSet<&String> = documented.iter().map(|(_, path)| path).collect();
    for path in paths {
        for method in METHODS {
            if documented.contains(&(method.to_owned(), path.clone())) {
                continue;
            }
            let r = probe(&app, method, path).await;
            assert_eq!(
                r.status, 405,
                "{method} {path} is served but not documented: {}",
                r.text
            );
            assert_eq!(r.body["error"]["code"], "method_not_allowed");
        }
    }
    // And off the documented paths there is only the JSON fallback.
    let r = app.call("GET", "/v1/undocumented", None, None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["code"], "not_found");
}

/// The handlers named in `routes!(…)` in `ownership-http`'s route modules.
fn registered_handlers() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/ownership-http/src/routes");
    let mut handlers = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        assert!(
            !source.contains(".route("),
            "{}: a plain axum `.route(` bypasses the OpenAPI document; use `routes!`",
            path.display()
        );
        for call in source.split("routes!(").skip(1) {
            let list = call.split(')').next().unwrap();
            for handler in list.split(',') {
                let name = handler.trim().rsplit("::").next().unwrap().trim();
                if !name.is_empty() {
                    handlers.insert(name.to_owned());
                }
            }
        }
    }
    handlers
}

/// The router itself (`ownership_http::router`) adds exactly one route beside
/// `routes::api()` and the console: the document's own.
#[test]
fn the_router_adds_no_undocumented_route() {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/ownership-http/src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    let added: Vec<&str> = source
        .split(".route(")
        .skip(1)
        .map(|call| call.trim_start().split(',').next().unwrap().trim())
        .collect();
    assert_eq!(
        added,
        ["\"/v1/openapi.json\""],
        "{}: a route added with `.route(` is missing from the OpenAPI document; add it \
         to `routes::api()` with `routes!` instead",
        lib.display()
    );
}

#[tokio::test]
async fn every_registered_handler_is_documented() {
    let handlers = registered_handlers();
    assert_eq!(handlers.len(), EXPECTED.len(), "{handlers:?}");
    let app = app().await;
    let doc = document(&app).await;
    let operation_ids: BTreeSet<String> = operations(&doc)
        .into_iter()
        .map(|(_, _, op)| op["operationId"].as_str().expect("operationId").to_owned())
        .collect();
    assert_eq!(handlers, operation_ids);
}

/// The checked-in document, as text.
fn checked_in() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask openapi`", path.display()))
}

/// The JSON pointer of the first place where `a` and `b` differ, with both values there.
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (x.get(k), y.get(k)) {
                    (Some(v), Some(w)) => first_difference(v, w, &here),
                    (v, w) => Some(format!("{here}: served {v:?}, checked in {w:?}")),
                }
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(v, w, &format!("{at}/{i}"))),
        _ if a == b => None,
        _ => Some(format!("{at}: served {a}, checked in {b}")),
    }
}

/// `docs/openapi.json` is exactly what the server serves, byte for byte as `cargo xtask
/// openapi` writes it, so an API change cannot land without its diff in that file.
#[tokio::test]
async fn the_checked_in_document_is_the_served_one() {
    let app = app().await;
    let served = document(&app).await;
    let text = checked_in();
    let file: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!("docs/openapi.json is not JSON ({e}); run `cargo xtask openapi`")
    });
    if let Some(difference) = first_difference(&served, &file, "") {
        panic!(
            "docs/openapi.json is not the document the server serves (first difference at \
             {difference}).\nRun `cargo xtask openapi` to regenerate it, then review the \
             change with `git diff docs/openapi.json` and commit it with the code."
        );
    }
    assert!(
        text == ownership_http::openapi_json(),
        "docs/openapi.json holds the served document but not as `cargo xtask openapi` \
         writes it (formatting or key order); run `cargo xtask openapi`"
    );
}

/// A response of an operation, with a `$ref` to `#/components/responses/…` followed.
fn resolve<'d>(doc: &'d Value, response: &'d Value) -> &'d Value {
    match response["$ref"].as_str() {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/components/responses/")
                .unwrap_or_else(|| {
                    panic!("a response $ref outside components/responses: {reference}")
                });
            let target = &doc["components"]["responses"][name];
            assert!(target.is_object(), "{reference} names no response");
            target
        }
        None => response,
    }
}

#[tokio::test]
async fn every_operation_documents_its_error_body() {
    let app = app().await;
    let doc = document(&app).await;
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    for (method, path, operation) in operations(&doc) {
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{method} {path} documents no success"
        );
        for (status, response) in responses {
            let response = resolve(&doc, response);
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.trim().is_empty()),
                "{method} {path} {status} has no description"
            );
            let is_error = status.starts_with('4') || status.starts_with('5');
            // `/readyz` answers 503 with its health body, not an error.
            if is_error && path != "/readyz" {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status} is not documented as ErrorBody"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_operation_that_takes_a_token_documents_401() {
    let app = app().await;
    let doc = document(&app).await;
    let missing: Vec<String> = operations(&doc)
        .into_iter()
        .filter(|(method, path, _)| {
            let operation = format!("{method} {path}");
            PUBLIC
                .iter()
                .all(|(public, status)| *public != operation || *status == 401)
        })
        .filter(|(_, _, operation)| operation["responses"].get("401").is_none())
        .map(|(method, path, _)| format!("{method} {path}"))
        .collect();
    assert!(missing.is_empty(), "no 401 documented: {missing:#?}");
}

#[tokio::test]
async fn health_checks_are_documented_as_needing_no_token() {
    let app = app().await;
    let doc = document(&app).await;
    assert_eq!(
        doc["security"],
        json!([{"bearer": []}]),
        "bearer by default"
    );
    for path in ["/healthz", "/readyz"] {
        assert_eq!(doc["paths"][path]["get"]["security"], json!([]), "{path}");
    }
    assert!(doc["paths"]["/v1/me"]["get"].get("security").is_none());
}

/// A raw request with a body of the given content type, for what `call` cannot send.
async fn send_raw(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> u16 {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    app.http
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Every status the server answers in a sweep of ordinary and hostile requests is one the
/// document lists for that operation: no token, the Owner's token with a probe body,
/// and, where the operation takes a body, one sent as `text/plain`, one that is not
/// JSON, one over the body limit and an empty one; where it pages, `limit` outside its
/// bounds and a cursor that is none. Each operation is also asked with a path whose
/// parameters cannot be valid. Rate limits are raised, so a 429 here would be a real
/// finding (the event stream is left out: with a valid token it never ends).
#[tokio::test]
async fn every_status_the_server_answers_is_documented() {
    let app = spawn_app_with(Backend::Libsql, |c| {
        c.secrets.master_key = Some([7; 32]);
        c.service.limits.identity_per_second = 1_000_000;
        c.service.limits.identity_burst = 1_000_000;
    })
    .await;
    assert!(!app.owner_token.is_empty(), "the app has a first Owner");
    let token = app.owner_token.clone();
    let doc = document(&app).await;
    let mut undocumented = Vec::new();
    let mut answers = 0;
    for (method, path, operation) in operations(&doc) {
        let documented: BTreeSet<u16> = operation["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut seen: Vec<(String, u16)> = Vec::new();
        let target = concrete(&path);
        seen.push(("no token".into(), probe(&app, &method, &path).await.status));
        if path == "/v1/me/events" {
            check(&method, &path, &documented, &seen, &mut undocumented);
            answers += seen.len();
            continue;
        }
        let body = matches!(method.as_str(), "POST" | "PUT").then(|| json!({"user_id": "probe"}));
        let r = app.call(&method, &target, Some(&token), body).await;
        seen.push(("owner token".into(), r.status));
        let bad_path = path.replace('{', "%FF{");
        if bad_path != path {
            let r = app
                .call(&method, &concrete(&bad_path), Some(&token), None)
                .await;
            seen.push(("invalid path parameter".into(), r.status));
        }
        if operation.get("requestBody").is_some() {
            for (what, content_type, bytes) in [
                ("text/plain body", "text/plain", b"{}".to_vec()),
                ("body that is not JSON", "application/json", b"{".to_vec()),
                ("empty body", "application/json", Vec::new()),
                (
                    "body over the limit",
                    "application/json",
                    format!("{{\"user_id\": \"{}\"}}", "x".repeat(70 * 1024)).into_bytes(),
                ),
            ] {
                let status = send_raw(&app, &method, &target, &token, content_type, bytes).await;
                seen.push((what.into(), status));
            }
        }
        let pages = operation["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == "limit"));
        if pages {
            for query in [
                "limit=0",
                "limit=501",
                "limit=x",
                "after=%00",
                "after=zz:zz",
            ] {
                let r = app
                    .call(&method, &format!("{target}?{query}"), Some(&token), None)
                    .await;
                seen.push((query.into(), r.status));
            }
        }
        check(&method, &path, &documented, &seen, &mut undocumented);
        answers += seen.len();
    }
    assert!(answers > 150, "only {answers} answers checked");
    assert!(
        undocumented.is_empty(),
        "answers the document does not list for their operation:\n{}",
        undocumented.join("\n")
    );
}

fn check(
    method: &str,
    path: &str,
    documented: &BTreeSet<u16>,
    seen: &[(String, u16)],
    undocumented: &mut Vec<String>,
) {
    for (what, status) in seen {
        if !documented.contains(status) {
            undocumented.push(format!("{method} {path}: {status} ({what})"));
        }
    }
}
