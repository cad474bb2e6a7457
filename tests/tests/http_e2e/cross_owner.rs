//! Another owner's objects do not exist for you: every owner-scoped route answers 404 on
//! them — never 200, never 403 — with a body byte-identical to the one for an object that
//! does not exist, whatever the caller's role.

use ownership_core::ids::ResourceId;
use ownership_store::OsRandom;
use ownership_tests::app::{Backend, TestApp, spawn_app, spawn_app_with};
use serde_json::{Value, json};

use crate::support::*;

on_both_backends!(
    other_users_get_404_on_a_users_objects_exactly_as_on_absent_ones,
    other_users_get_404_on_a_users_secrets_and_resources,
    listings_show_only_the_callers_own_objects,
);

/// An owner-scoped request: method, path, body.
type Probe = (&'static str, String, Option<Value>);

/// Every owner-scoped route, aimed at a token id and a chat account.
fn probes(token_id: &str, channel: &str, external_id: &str) -> Vec<Probe> {
    vec![
        ("DELETE", format!("/v1/me/tokens/{token_id}"), None),
        ("DELETE", format!("/v1/me/tokens/{token_id}?kind=api"), None),
        (
            "DELETE",
            format!("/v1/me/tokens/{token_id}?kind=manage"),
            None,
        ),
        ("POST", format!("/v1/me/tokens/{token_id}/rotate"), None),
        (
            "POST",
            format!("/v1/me/tokens/{token_id}/rotate"),
            Some(json!({"grace_seconds": 3600})),
        ),
        (
            "DELETE",
            format!("/v1/me/identities/{channel}/{external_id}"),
            None,
        ),
    ]
}

async fn send(app: &TestApp, token: &str, (method, path, body): &Probe) -> (u16, String) {
    let r = app.call(method, path, Some(token), body.clone()).await;
    (r.status, r.text)
}

/// Asserts that every probe, by every intruder, answers exactly what `absent[0]` answers
/// them: a 404 whose body is byte-identical to the one for an absent object.
async fn assert_all_read_as_absent(
    app: &TestApp,
    intruders: &[&String],
    absent: &[Probe],
    theirs: &[Probe],
) {
    for intruder in intruders {
        let (status, absent_body) = send(app, intruder, &absent[0]).await;
        assert_eq!(status, 404, "{absent_body}");
        for probe in absent.iter().chain(theirs) {
            let (status, body) = send(app, intruder, probe).await;
            assert_eq!(
                status, 404,
                "{} {} by another user: {body}",
                probe.0, probe.1
            );
            assert_eq!(
                body, absent_body,
                "{} {}: `not yours` must read exactly like `absent`",
                probe.0, probe.1
            );
        }
    }
}

async fn other_users_get_404_on_a_users_objects_exactly_as_on_absent_ones(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let bob = app.create_user("bob", "member").await;
    let admin = app.create_user("adm", "admin").await;
    let telegram = service_token(&app, &["channel:telegram"]).await;

    // Alice's objects: her first token, an `api` token, and a chat account.
    let alice_first = token_id(&app, &alice).await;
    let (alice_api_id, alice_api) = mint(&app, &alice, &["api"]).await;
    link(&app, &telegram, &alice, "telegram", "alice-chat").await;

    let absent = probes(&absent_token_id(), "telegram", "nobody-chat");
    let theirs: Vec<Probe> = [&alice_first, &alice_api_id]
        .iter()
        .flat_map(|id| probes(id, "telegram", "alice-chat"))
        .collect();

    // A Member, an Admin and an Owner: no role reaches another owner's objects.
    assert_all_read_as_absent(&app, &[&bob, &admin, &app.owner_token], &absent, &theirs).await;

    // Nothing of Alice's changed.
    assert_eq!(app.get("/v1/me", &alice).await.status, 200);
    assert_eq!(app.get("/v1/me", &alice_api).await.status, 200);
    let resolved = resolve(&app, &telegram, "telegram", "alice-chat").await;
    assert_eq!(resolved.status, 200, "{}", resolved.text);
    assert_eq!(resolved.body["owner_id"], "alice");
    let tokens = app.get("/v1/me/tokens", &alice).await;
    for t in tokens.body["tokens"].as_array().unwrap() {
        assert!(t["revoked_at"].is_null(), "revoked by another user: {t}");
    }
    assert_eq!(
        tokens.body["tokens"].as_array().unwrap().len(),
        2,
        "no token added"
    );

    // And Alice herself reaches them.
    let r = app
        .call(
            "DELETE",
            &format!("/v1/me/tokens/{alice_api_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = app
        .call(
            "DELETE",
            "/v1/me/identities/telegram/alice-chat",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

async fn other_users_get_404_on_a_users_secrets_and_resources(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.secrets.master_key = Some([7; 32])).await;
    let alice = app.create_user("alice", "member").await;
    let bob = app.create_user("bob", "member").await;
    let admin = app.create_user("adm", "admin").await;
    let (resource, resource_token) = granted_resource(&app, &alice).await;

    let probes = |resource: &str, secret: &str| -> Vec<Probe> {
        vec![
            ("GET", format!("/v1/me/resources/{resource}"), None),
            ("DELETE", format!("/v1/me/resources/{resource}"), None),
            ("DELETE", format!("/v1/me/secrets/{secret}"), None),
        ]
    };
    let absent = probes(&ResourceId::generate(&mut OsRandom).to_string(), "no-such");
    let theirs = probes(&resource, "db-password");
    assert_all_read_as_absent(&app, &[&bob, &admin, &app.owner_token], &absent, &theirs).await;

    // Nothing of Alice's changed: her resource still fetches her secret.
    let r = app.get("/v1/resource/credentials", &resource_token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["secrets"]["db-password"], "hunter2");
    let r = app
        .get(&format!("/v1/me/resources/{resource}"), &alice)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // And the listings of others do not show them.
    for intruder in [&bob, &app.owner_token] {
        let secrets = app.get("/v1/me/secrets", intruder).await;
        assert!(!secrets.text.contains("db-password"), "{}", secrets.text);
        let resources = app.get("/v1/me/resources", intruder).await;
        assert!(!resources.text.contains(&resource), "{}", resources.text);
    }
}

async fn listings_show_only_the_callers_own_objects(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let bob = app.create_user("bob", "member").await;
    let telegram = service_token(&app, &["channel:telegram"]).await;
    let (alice_api_id, _) = mint(&app, &alice, &["api"]).await;
    link(&app, &telegram, &alice, "telegram", "alice-chat").await;
    let alice_first = token_id(&app, &alice).await;

    let tokens = app.get("/v1/me/tokens", &bob).await;
    assert_eq!(tokens.status, 200);
    assert_eq!(
        tokens.body["tokens"].as_array().unwrap().len(),
        1,
        "{}",
        tokens.text
    );
    assert!(!tokens.text.contains(&alice_api_id) && !tokens.text.contains(&alice_first));
    let ids = app.get("/v1/me/identities", &bob).await;
    assert_eq!(ids.body, json!({"identities": []}));
    let audit = app.get("/v1/me/audit", &bob).await;
    for e in audit.body["events"].as_array().unwrap() {
        assert_eq!(e["owner_id"], "bob", "{e}");
    }
    assert!(!audit.text.contains("alice"), "{}", audit.text);

    // The Owner's own listings are theirs only, too: the role gates user management,
    // never another owner's objects.
    let owner_tokens = app.get("/v1/me/tokens", &app.owner_token).await;
    assert!(!owner_tokens.text.contains(&alice_api_id));
    let owner_ids = app.get("/v1/me/identities", &app.owner_token).await;
    assert_eq!(owner_ids.body, json!({"identities": []}));
}
