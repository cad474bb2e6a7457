//! The Rust client (`ownership-client`) against the real server on both stores: every
//! operation called through it, every listing that pages read to its end two rows at a
//! time (and compared with the same listing in one page), refusals surfaced as typed
//! errors with the server's code (400, 401, 403, 404, 409, 429), the event stream, and a
//! downstream app checking tokens through the client. Two last tests compare the client's
//! operation list with the checked-in OpenAPI document (a route added without a client
//! method fails) and check that every client method is called here.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::collections::BTreeSet;
use std::future::IntoFuture;
use std::path::Path;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use ownership_client::{Client, CreateResource, CreateToken, Error, OPERATIONS, Secret};
use ownership_core::ids::{ResourceId, SecretName, TokenId};
use ownership_core::{ChannelName, ExternalId, OwnerId, TokenKind, UserRole, UserStatus};
use ownership_tests::app::{Backend, TestApp, spawn_app_with};
use ownership_tests::http::eventually;
use ownership_tests::logcheck::Kind;
use serde_json::Value;

#[path = "../../crates/ownership-client/examples/remote_downstream.rs"]
#[allow(dead_code, reason = "the example's `main` is not called here")]
mod remote_downstream;

ownership_tests::on_both_backends!(
    a_remote_downstream_app_checks_tokens_through_the_client,
    bootstrap_through_the_client,
    users_tokens_and_audit_through_the_client,
    pairing_through_the_client,
    secrets_resources_and_webhooks_through_the_client,
    the_event_stream_through_the_client,
);

/// A server with secrets, loopback webhooks and a quick event stream.
async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |c| {
        c.secrets.master_key = Some([9; 32]);
        c.service.allow_private_webhooks = true;
        c.service.events_poll = Duration::from_millis(50);
        c.service.webhooks.poll_interval = Duration::from_millis(50);
    })
    .await
}

fn owner(app: &TestApp) -> Client {
    Client::new(&app.base).unwrap().with_token(&app.owner_token)
}

fn id(raw: &str) -> OwnerId {
    raw.parse().unwrap()
}

/// A client acting with `token`, which the log check then looks for.
fn acting(app: &TestApp, token: &Secret) -> Client {
    app.secrets.record(Kind::Token, token.expose());
    Client::new(&app.base).unwrap().with_token(token.expose())
}

/// Asserts `result` is the server's refusal with `status` and `code`.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(result: Result<T, Error>, status: u16, code: &str) {
    match result {
        Err(Error::Api {
            status: s, code: c, ..
        }) => assert_eq!((s, c.as_str()), (status, code)),
        other => panic!("expected {status} {code}, got {other:?}"),
    }
}

async fn users_tokens_and_audit_through_the_client(backend: Backend) {
    let app = app(backend).await;
    let owner = owner(&app);
    assert_eq!(owner.healthz().await.unwrap().status, "ok");
    // On PostgreSQL the server is ready once its cache-invalidation listener has connected,
    // which may come a moment after it starts serving: `/readyz` says so until then.
    eventually("/readyz says ok", Duration::from_secs(10), || async {
        match owner.readyz().await.unwrap().status.as_str() {
            "ok" => Ok(()),
            other => {
                assert_eq!(other, "unavailable");
                Err(other.to_owned())
            }
        }
    })
    .await;
    // No bootstrap secret is configured: the route answers 404, typed.
    assert_refused(
        owner
            .bootstrap(&Secret::new("not-configured"), &id("first"))
            .await,
        404,
        "not_found",
    );

    let me = owner.me().await.unwrap();
    assert_eq!(me.user_id.as_str(), "owner");
    assert_eq!(me.role, UserRole::Owner);

    // Leak reports: received, never telling what matched; GitHub's endpoint is off here.
    let receipt = owner.revoke_leaked(&["nope", "own_u_nope"]).await.unwrap();
    assert_eq!(receipt.received, 2);
    assert_refused(
        owner.github_report("key-1", "c2ln", "[]").await,
        404,
        "not_found",
    );

    // Five users, so that six users page as 2 + 2 + 2.
    let mut tokens = Vec::new();
    for name in ["u1", "u2", "u3", "u4", "u5"] {
        let made = owner.create_user(&id(name), None).await.unwrap();
        assert_eq!(made.role, UserRole::Member);
        assert_eq!(made.status, UserStatus::Active);
        tokens.push(made.token);
    }
    assert_refused(owner.create_user(&id("u1"), None).await, 409, "conflict");
    let first = owner.list_users(None, Some(2)).await.unwrap();
    assert_eq!(first.users.len(), 2);
    assert!(first.next.is_some());
    let paged: Vec<_> = owner.users(2).try_collect().await.unwrap();
    let ids: Vec<_> = paged.iter().map(|u| u.user_id.to_string()).collect();
    assert_eq!(ids, ["owner", "u1", "u2", "u3", "u4", "u5"]);
    let whole = owner.list_users(None, Some(500)).await.unwrap();
    assert!(whole.next.is_none());
    assert_eq!(whole.users.len(), paged.len());

    // A Member may not manage users: 403, typed.
    let member = acting(&app, &tokens[0]);
    assert_refused(member.list_users(None, None).await, 403, "forbidden");
    assert_refused(
        member.users(2).try_collect::<Vec<_>>().await,
        403,
        "forbidden",
    );
    // A token that does not authenticate: 401, typed.
    assert_refused(
        Client::new(&app.base)
            .unwrap()
            .with_token("own_not-a-token")
            .me()
            .await,
        401,
        "unauthenticated",
    );

    let u2 = id("u2");
    assert_eq!(owner.get_user(&u2).await.unwrap().user_id, u2);
    let admin = owner.set_role(&u2, UserRole::Admin).await.unwrap();
    assert_eq!(admin.role, UserRole::Admin);
    let suspended = owner.set_status(&u2, UserStatus::Suspended).await.unwrap();
    assert_eq!(suspended.status, UserStatus::Suspended);
    assert_refused(acting(&app, &tokens[1]).me().await, 401, "unauthenticated");
    owner.set_status(&u2, UserStatus::Active).await.unwrap();
    owner.delete_user(&id("u5")).await.unwrap();
    assert_refused(owner.get_user(&id("u5")).await, 404, "not_found");
    assert_refused(owner.delete_user(&id("u5")).await, 404, "not_found");

    // The caller's tokens: mint, list, rotate, revoke.
    let made = owner
        .create_token(&CreateToken {
            kinds: vec![TokenKind::Api],
            label: Some("client test".into()),
            expires_in_seconds: Some(3600),
        })
        .await
        .unwrap();
    app.secrets.record(Kind::Token, made.token.expose());
    assert_eq!(made.meta.kinds, [TokenKind::Api]);
    assert!(made.meta.expires_at.is_some());
    let listed = owner.list_tokens().await.unwrap();
    assert!(listed.iter().any(|t| t.id == made.meta.id));
    let api = acting(&app, &made.token);
    assert_eq!(api.me().await.unwrap().token.kinds, [TokenKind::Api]);
    let rotated = owner.rotate_token(&made.meta.id, None).await.unwrap();
    app.secrets.record(Kind::Token, rotated.token.expose());
    assert_refused(api.me().await, 401, "unauthenticated");
    assert_refused(
        owner
            .revoke_token(&rotated.meta.id, Some(&TokenKind::Manage))
            .await,
        409,
        "conflict",
    );
    owner
        .revoke_token(&rotated.meta.id, Some(&TokenKind::Api))
        .await
        .unwrap();
    let unknown = TokenId::parse("tok_00000000000000000000").unwrap();
    assert_refused(owner.revoke_token(&unknown, None).await, 404, "not_found");
    assert_refused(owner.rotate_token(&unknown, None).await, 404, "not_found");

    // A `verify` service token checks tokens for services not written in Rust.
    let verifier = owner
        .service_token(&[TokenKind::Verify], Some("verifier"))
        .await
        .unwrap();
    let verifier = acting(&app, &verifier.token);
    let verdict = verifier
        .verify(&Secret::new(app.owner_token.clone()))
        .await
        .unwrap();
    assert!(verdict.valid);
    assert_eq!(verdict.owner_id, Some(id("owner")));
    assert_eq!(verdict.role, Some(UserRole::Owner));
    assert!(!verifier.verify(&rotated.token).await.unwrap().valid);
    assert_refused(
        member.verify(&Secret::new(app.owner_token.clone())).await,
        403,
        "forbidden",
    );

    // The audit log, two at a time to its end, is the same as in one page.
    let all: Vec<_> = owner.all_audit_events(2).try_collect().await.unwrap();
    let one = owner.all_audit(None, Some(500)).await.unwrap();
    assert!(one.next.is_none());
    let seqs: Vec<_> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, one.events.iter().map(|e| e.seq).collect::<Vec<_>>());
    assert!(seqs.len() > 10, "{seqs:?}");
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );
    assert!(all.iter().any(|e| e.action == "user.created"));
    let mine: Vec<_> = owner.my_audit_events(2).try_collect().await.unwrap();
    let mine_one = owner.my_audit(None, Some(500)).await.unwrap();
    assert!(mine.len() > 2);
    assert_eq!(
        mine.iter().map(|e| e.seq).collect::<Vec<_>>(),
        mine_one.events.iter().map(|e| e.seq).collect::<Vec<_>>()
    );
    assert!(mine.iter().all(|e| e.owner_id == Some(id("owner"))));
    // A cursor that is not one: 400, typed.
    assert_refused(
        owner.list_users(Some("not an id\u{7}"), Some(2)).await,
        400,
        "invalid_request",
    );
    app.stop().await;
}

async fn pairing_through_the_client(backend: Backend) {
    let app = app(backend).await;
    let owner = owner(&app);
    let alice_made = owner.create_user(&id("alice"), None).await.unwrap();
    let alice = acting(&app, &alice_made.token);
    let channel: ChannelName = "telegram".parse().unwrap();
    let bot = owner
        .service_token(&[TokenKind::Channel(channel.clone())], Some("bot"))
        .await
        .unwrap();
    let bot = acting(&app, &bot.token);

    let sender: ExternalId = "1001".parse().unwrap();
    assert_refused(bot.resolve(&channel, &sender).await, 404, "not_found");
    let code = bot.request_code(&channel, &sender, None).await.unwrap();
    app.secrets.record(Kind::PairingCode, code.code.expose());
    assert!(code.created);
    let again = bot.request_code(&channel, &sender, None).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.code, code.code);
    // Another channel's token may not ask on this one.
    let other: ChannelName = "discord".parse().unwrap();
    assert_refused(bot.resolve(&other, &sender).await, 403, "forbidden");

    let bound = alice.redeem(&channel, code.code.expose()).await.unwrap();
    assert_eq!(bound.owner_id, id("alice"));
    assert_eq!(bound.external_id, sender);
    assert_refused(
        alice.redeem(&channel, code.code.expose()).await,
        404,
        "invalid_code",
    );
    let resolved = bot.resolve(&channel, &sender).await.unwrap();
    assert_eq!(resolved.owner_id, id("alice"));
    assert_eq!(resolved.role, UserRole::Member);

    // A second sender is approved by an Admin instead.
    let second: ExternalId = "1002".parse().unwrap();
    let meta = serde_json::json!({"display_name": "Alice's phone"});
    let code2 = bot
        .request_code(&channel, &second, Some(meta.clone()))
        .await
        .unwrap();
    app.secrets.record(Kind::PairingCode, code2.code.expose());
    let pending = owner.pending(&channel).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].external_id, second);
    assert_eq!(pending[0].meta, Some(meta));
    assert_refused(alice.pending(&channel).await, 403, "forbidden");
    let approved = owner
        .approve(&channel, code2.code.expose(), &id("alice"))
        .await
        .unwrap();
    assert_eq!(approved.owner_id, id("alice"));
    assert!(owner.pending(&channel).await.unwrap().is_empty());

    let identities = alice.list_identities().await.unwrap();
    assert_eq!(identities.len(), 2);
    alice.unlink_identity(&channel, &sender).await.unwrap();
    assert_refused(
        alice.unlink_identity(&channel, &sender).await,
        404,
        "not_found",
    );
    assert_refused(bot.resolve(&channel, &sender).await, 404, "not_found");
    assert_eq!(alice.list_identities().await.unwrap().len(), 1);
    app.stop().await;
}

async fn secrets_resources_and_webhooks_through_the_client(backend: Backend) {
    let app = app(backend).await;
    let owner = owner(&app);
    assert_refused(owner.get_webhook().await, 404, "not_found");
    // A loopback endpoint that nobody answers: deliveries are queued and stay pending or
    // fail, which is all the listing needs.
    let hook = owner.put_webhook("http://127.0.0.1:9/hook").await.unwrap();
    app.secrets
        .record(Kind::SigningSecret, hook.secret.expose());
    assert!(hook.secret.expose().starts_with("whsec_"));
    assert_eq!(owner.get_webhook().await.unwrap().url, hook.url);
    let rotated = owner.rotate_webhook_secret(Some(60)).await.unwrap();
    app.secrets
        .record(Kind::SigningSecret, rotated.secret.expose());
    assert!(rotated.previous_secret_expires_at.is_some());
    assert_refused(
        owner.put_webhook("ftp://example.com/").await,
        400,
        "invalid_request",
    );

    let names: Vec<SecretName> = ["API_KEY", "DB_URL", "OTHER"]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    for (i, name) in names.iter().enumerate() {
        let value = Secret::new(format!("value-{i}-of-the-client-test"));
        app.secrets.record(Kind::SecretValue, value.expose());
        let meta = owner.put_secret(name, &value).await.unwrap();
        assert_eq!(&meta.name, name);
    }
    let listed = owner.list_secrets().await.unwrap();
    assert_eq!(listed.len(), 3);

    let made = owner
        .create_resource(&CreateResource {
            kind: "job".into(),
            external_ref: Some("job-42".into()),
            grants: names[..2].to_vec(),
        })
        .await
        .unwrap();
    let job = acting(&app, &made.token);
    let creds = job.credentials().await.unwrap();
    assert_eq!(creds.secrets.len(), 2);
    assert_eq!(
        creds.secrets[&names[0]].expose(),
        "value-0-of-the-client-test"
    );
    assert_eq!(
        owner.get_resource(&made.meta.id).await.unwrap().grants,
        names[..2]
    );
    assert_eq!(owner.list_resources().await.unwrap().len(), 1);
    owner.revoke_resource(&made.meta.id).await.unwrap();
    assert_refused(job.credentials().await, 403, "forbidden");
    let unknown = ResourceId::parse("res_00000000000000000000").unwrap();
    assert_refused(owner.get_resource(&unknown).await, 404, "not_found");
    owner.delete_secret(&names[2]).await.unwrap();
    assert_refused(owner.delete_secret(&names[2]).await, 404, "not_found");
    assert_eq!(owner.list_secrets().await.unwrap().len(), 2);

    // Every change above is queued for the endpoint by the worker, which follows the
    // audit log in order: once the last change (the deleted secret) is queued, all are.
    // Then page the log two at a time.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !owner
        .list_deliveries(None, Some(500))
        .await
        .unwrap()
        .deliveries
        .iter()
        .any(|d| d.event_type == "secret.deleted")
    {
        assert!(std::time::Instant::now() < deadline, "deliveries queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let paged: Vec<_> = owner.deliveries(2).try_collect().await.unwrap();
    let one = owner.list_deliveries(None, Some(500)).await.unwrap();
    assert!(one.next.is_none());
    assert!(paged.len() >= 5, "{} deliveries", paged.len());
    let paged_ids: Vec<_> = paged.iter().map(|d| d.id.to_string()).collect();
    let one_ids: Vec<_> = one.deliveries.iter().map(|d| d.id.to_string()).collect();
    assert_eq!(paged_ids, one_ids);
    assert_eq!(
        paged_ids.iter().collect::<BTreeSet<_>>().len(),
        paged_ids.len()
    );
    assert!(paged.iter().any(|d| d.event_type == "secret.put"));

    owner.delete_webhook().await.unwrap();
    assert_refused(owner.get_webhook().await, 404, "not_found");
    assert_refused(owner.delete_webhook().await, 404, "not_found");
    app.stop().await;
}

async fn the_event_stream_through_the_client(backend: Backend) {
    let app = app(backend).await;
    let owner = owner(&app);
    let bob_made = owner.create_user(&id("bob"), None).await.unwrap();
    // Calls must be answered within a second; the stream is not held to that.
    let bob = acting(&app, &bob_made.token).with_timeout(Duration::from_secs(1));
    let mut events = bob.my_events(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let minted = bob
        .create_token(&CreateToken {
            kinds: vec![TokenKind::Api],
            ..CreateToken::default()
        })
        .await
        .unwrap();
    app.secrets.record(Kind::Token, minted.token.expose());
    let event = tokio::time::timeout(Duration::from_secs(20), events.next())
        .await
        .expect("an event within 20 s")
        .expect("the stream goes on")
        .unwrap();
    assert_eq!(event.action, "token.issued");
    assert_eq!(event.owner_id, Some(id("bob")));
    assert!(event.target.contains(minted.meta.id.as_str()));
    drop(events);

    // Resuming after an earlier event replays what followed it.
    let mut replay = bob.my_events(Some(event.seq - 1)).await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(20), replay.next())
        .await
        .expect("a replayed event within 20 s")
        .expect("the stream goes on")
        .unwrap();
    assert_eq!(again.seq, event.seq);
    drop(replay);

    // A stream ticket opens the stream once, without the token in the request.
    let ticket = bob.stream_ticket().await.unwrap();
    assert!(ticket.expires_in_seconds > 0 && ticket.expires_in_seconds <= 60);
    let mut by_ticket = bob
        .my_events_with_ticket(&ticket.ticket, Some(event.seq - 1))
        .await
        .unwrap();
    let once = tokio::time::timeout(Duration::from_secs(20), by_ticket.next())
        .await
        .expect("a replayed event within 20 s")
        .expect("the stream goes on")
        .unwrap();
    assert_eq!(once.seq, event.seq);
    drop(by_ticket);
    assert_refused(
        bob.my_events_with_ticket(&ticket.ticket, None)
            .await
            .map(|_| ()),
        401,
        "unauthenticated",
    );

    // A `verify` token may not listen.
    let verifier = owner
        .service_token(&[TokenKind::Verify], None)
        .await
        .unwrap();
    let verifier = acting(&app, &verifier.token);
    assert_refused(verifier.my_events(None).await.map(|_| ()), 403, "forbidden");
    app.stop().await;
}

/// The first Owner is made once with the bootstrap secret; a wrong secret is 401 (429 with
/// `Retry-After` once the address failed too often), a second bootstrap 409.
async fn bootstrap_through_the_client(backend: Backend) {
    const SECRET: &str = "bootstrap-secret-of-the-client-test";
    let app = spawn_app_with(backend, |c| {
        c.secrets.bootstrap_token = Some(SECRET.into());
        c.service.limits.failed_auth_per_address = 2;
    })
    .await;
    app.secrets.record(Kind::Token, SECRET);
    let anonymous = Client::new(&app.base).unwrap();
    let secret = Secret::new(SECRET);
    let wrong = Secret::new("wrong");
    assert_refused(
        anonymous.bootstrap(&wrong, &id("root")).await,
        401,
        "unauthenticated",
    );
    // Once the address has failed too often: 429, with the time to wait.
    let mut refusal = None;
    for _ in 0..5 {
        match anonymous.bootstrap(&wrong, &id("root")).await {
            Err(Error::Api { status: 401, .. }) => continue,
            other => {
                refusal = Some(other);
                break;
            }
        }
    }
    match refusal {
        Some(Err(Error::Api {
            status: 429,
            code,
            retry_after: Some(wait),
            ..
        })) => assert!(
            code == "rate_limited" && wait > Duration::ZERO,
            "{code} {wait:?}"
        ),
        other => panic!("expected 429 with Retry-After, got {other:?}"),
    }
    // The right secret is never refused for where it came from.
    let first = anonymous.bootstrap(&secret, &id("root")).await.unwrap();
    app.secrets.record(Kind::Token, first.token.expose());
    assert_eq!(
        (first.user_id.as_str(), first.role),
        ("root", UserRole::Owner)
    );
    let root = acting(&app, &first.token);
    assert_eq!(root.me().await.unwrap().user_id, id("root"));
    assert_refused(
        anonymous.bootstrap(&secret, &id("again")).await,
        409,
        "conflict",
    );
    app.stop().await;
}

/// `examples/remote_downstream.rs`: its route greets the owner of a valid token, refuses
/// others with 401, and answers 503 when the ownership server is gone.
async fn a_remote_downstream_app_checks_tokens_through_the_client(backend: Backend) {
    let app = app(backend).await;
    let owner = owner(&app);
    let carol = owner.create_user(&id("carol"), None).await.unwrap();
    app.secrets.record(Kind::Token, carol.token.expose());
    let verify = owner
        .service_token(&[TokenKind::Verify], None)
        .await
        .unwrap();
    let verifier = acting(&app, &verify.token);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let downstream = format!("http://{}/hello", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, remote_downstream::app(verifier)).into_future());
    let http = reqwest::Client::new();
    let hello = async |token: Option<&str>| {
        let mut req = http.get(&downstream);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    };
    assert_eq!(
        hello(Some(carol.token.expose())).await,
        (200, "hello, carol".to_owned())
    );
    for bad in [None, Some("garbage"), Some("own_0000")] {
        assert_eq!(hello(bad).await.0, 401, "{bad:?}");
    }
    let base = app.base.clone();
    app.stop().await;
    assert_eq!(
        hello(Some(carol.token.expose())).await.0,
        503,
        "{base} is gone"
    );
}

/// Every operation of the checked-in OpenAPI document has a client method, and the client
/// calls nothing the document lacks.
#[test]
fn every_documented_operation_has_a_client_method() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (the checked-in OpenAPI document)", path.display()));
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut documented = BTreeSet::new();
    for (route, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let key = format!("{} {route}", method.to_uppercase());
            // The client's method is named after the operation id, when there is one.
            if let (Some(op_id), Some(ours)) = (
                operation["operationId"].as_str(),
                OPERATIONS
                    .iter()
                    .find(|op| op.method.eq_ignore_ascii_case(method) && op.path == route),
            ) {
                assert_eq!(ours.client_method, op_id, "{key}");
            }
            documented.insert(key);
        }
    }
    let client: BTreeSet<String> = OPERATIONS
        .iter()
        .map(|op| format!("{} {}", op.method, op.path))
        .collect();
    let missing: Vec<_> = documented.difference(&client).collect();
    assert!(missing.is_empty(), "no client method for {missing:?}");
    let extra: Vec<_> = client.difference(&documented).collect();
    assert!(extra.is_empty(), "the client calls undocumented {extra:?}");
    let names: BTreeSet<_> = OPERATIONS.iter().map(|op| op.client_method).collect();
    assert_eq!(names.len(), OPERATIONS.len(), "one method per operation");
}

/// Every client method is called by the scenarios above (so every route is exercised
/// through the client on both stores): a method added without a scenario fails here.
#[test]
fn every_client_method_is_called_by_these_tests() {
    let source = include_str!("client.rs");
    let uncalled: Vec<_> = OPERATIONS
        .iter()
        .map(|op| op.client_method)
        .filter(|name| !source.contains(&format!(".{name}(")))
        .collect();
    assert!(uncalled.is_empty(), "never called: {uncalled:?}");
}
