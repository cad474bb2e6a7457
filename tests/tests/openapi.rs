//! The OpenAPI document at `/v1/openapi.json` and the routes the server really serves are
//! the same set: every documented operation is routed (an unauthenticated request reaches
//! its handler and gets the handler's 401, not the fallback's 404 or a 405), every
//! undocumented method on a documented path is a 405, every handler registered in
//! `ownership-http`'s `routes` is documented, and the list is exactly the one below.
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
    "GET /v1/me/identities",
    "DELETE /v1/me/identities/{channel}/{external_id}",
    "GET /v1/me/audit",
    "GET /v1/me/events",
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
    ("GET /v1/resource/credentials", 403),
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
            if status.starts_with('4') {
                assert!(
                    response
                        .to_string()
                        .contains("#/components/schemas/ErrorBody"),
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
        assert_eq!(doc["paths"][path]["get"]["security"], json!([{}]), "{path}");
    }
    assert!(doc["paths"]["/v1/me"]["get"].get("security").is_none());
}
