//! Metrics of the real server (`ownership_cli::server` with `metrics_listen` set), on a
//! libSQL file and on PostgreSQL: after requests that succeed, fail each way
//! authentication can fail, pair a chat account and queue a webhook, the exposition holds
//! every series family with the expected labels, and no label value carries a token, an
//! owner id, a chat account id or a raw path.
//!
//! One test runs both stores in turn: the recorder is global to the process, and run one
//! after the other, each store's counts can be compared before and after exactly.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::time::{Duration, Instant};

use ownership_core::OwnerId;
use ownership_core::token::{TokenFamily, TokenSecret};
use ownership_store::OsRandom;
use ownership_tests::app::{Backend, spawn_app_with};
use ownership_tests::exposition::{assert_labels_bounded, assert_no_label_carries, present, value};
use serde_json::json;

const OWNER: &str = "root-mx7q";
const ALICE: &str = "alice-mx7q";
const BOB: &str = "bob-mx7q";
const EXTERNAL: &str = "ext-4242-mx7q";
const UNMATCHED: &str = "/no/such/place-mx7q";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_family_is_exposed_with_bounded_labels_on_both_stores() {
    let handle = ownership_http::metrics::install().expect("recorder installs");
    assert!(
        ownership_http::metrics::install().is_ok(),
        "install is idempotent"
    );
    for backend in Backend::ALL {
        exercise(backend, &handle).await;
    }
}

/// The change of a sample between two renders.
fn delta(before: &str, after: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(after, name, labels) - value(before, name, labels)
}

async fn exercise(backend: Backend, handle: &ownership_http::metrics::PrometheusHandle) {
    let store = match backend {
        Backend::Libsql => "libsql",
        Backend::Postgres => "postgres",
    };
    // A port nothing listens on: webhook deliveries to it fail and are retried.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app = spawn_app_with(backend, |c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        c.first_owner = OwnerId::parse(OWNER).unwrap();
        c.secrets.master_key = Some([7; 32]);
        c.service.allow_private_webhooks = true;
        c.service.webhooks.poll_interval = Duration::from_millis(50);
        c.service.limits.failed_auth_per_address = 20;
    })
    .await;
    let before = handle.render();
    let mut used: Vec<String> = vec![
        OWNER.into(),
        ALICE.into(),
        BOB.into(),
        EXTERNAL.into(),
        UNMATCHED.into(),
        app.owner_token.clone(),
    ];

    // ok (and a cache miss, then hits)
    for _ in 0..3 {
        assert_eq!(app.get("/v1/me", &app.owner_token).await.status, 200);
    }
    let alice = app.create_user(ALICE, "member").await;
    let bob = app.create_user(BOB, "member").await;
    used.extend([alice.clone(), bob.clone()]);
    assert_eq!(
        app.get(&format!("/v1/admin/users/{ALICE}"), &app.owner_token)
            .await
            .status,
        200
    );
    // missing, malformed, unknown
    assert_eq!(app.call("GET", "/v1/me", None, None).await.status, 401);
    let malformed = "garbage-token-mx7q";
    assert_eq!(app.get("/v1/me", malformed).await.status, 401);
    let unknown = TokenSecret::generate(TokenFamily::User, &mut OsRandom)
        .expose()
        .to_owned();
    assert_eq!(app.get("/v1/me", &unknown).await.status, 401);
    used.extend([malformed.to_owned(), unknown]);
    // revoked: used once (cached), revoked, refused
    let minted = app
        .post("/v1/me/tokens", &alice, json!({"kinds": ["api"]}))
        .await;
    assert_eq!(minted.status, 201, "{}", minted.text);
    let revoked = minted.body["token"].as_str().unwrap().to_owned();
    let revoked_id = minted.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/v1/me", &revoked).await.status, 200);
    let r = app
        .call(
            "DELETE",
            &format!("/v1/me/tokens/{revoked_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.get("/v1/me", &revoked).await.status, 401);
    // expired
    let minted = app
        .post(
            "/v1/me/tokens",
            &alice,
            json!({"kinds": ["api"], "expires_in_seconds": 1}),
        )
        .await;
    assert_eq!(minted.status, 201, "{}", minted.text);
    let expired = minted.body["token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.get("/v1/me", &expired).await.status, 401);
    // inactive: bob suspended
    let r = app
        .call(
            "PUT",
            &format!("/v1/admin/users/{BOB}/status"),
            Some(&app.owner_token),
            Some(json!({"status": "suspended"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.get("/v1/me", &bob).await.status, 401);
    used.extend([revoked, revoked_id, expired]);
    // unmatched route
    assert_eq!(app.get(UNMATCHED, &app.owner_token).await.status, 404);

    // pairing: created, existing, a wrong code, a redemption, resolution (identity cache)
    let adapter = app
        .post(
            "/v1/admin/service-tokens",
            &app.owner_token,
            json!({"kinds": ["channel:telegram"], "label": "adapter"}),
        )
        .await;
    assert_eq!(adapter.status, 201, "{}", adapter.text);
    let telegram = adapter.body["token"].as_str().unwrap().to_owned();
    let path = "/v1/channels/telegram/pairing-requests";
    let first = app
        .post(path, &telegram, json!({"external_id": EXTERNAL}))
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let code = first.body["code"].as_str().unwrap().to_owned();
    let again = app
        .post(path, &telegram, json!({"external_id": EXTERNAL}))
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    let wrong = app
        .post(
            "/v1/pairing/telegram/redeem",
            &alice,
            json!({"code": "ABCD-EFGH"}),
        )
        .await;
    assert_eq!(wrong.status, 404, "{}", wrong.text);
    let redeemed = app
        .post("/v1/pairing/telegram/redeem", &alice, json!({"code": code}))
        .await;
    assert_eq!(redeemed.status, 200, "{}", redeemed.text);
    // Resolved until one is served from the cache: on PostgreSQL the process also hears
    // its own invalidation of the link, which may land after the first resolution.
    let identity_hits = |text: &str| {
        delta(
            &before,
            text,
            "ownership_cache_hits_total",
            &[("cache", "identities")],
        )
    };
    let mut resolved = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while identity_hits(&handle.render()) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "no identity cache hit on {store}"
        );
        let r = app
            .get(
                &format!("/v1/channels/telegram/identities/{EXTERNAL}"),
                &telegram,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        resolved += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    used.extend([telegram, code]);

    // a webhook whose deliveries fail: an event of the owner's, attempted and retried
    let hook = app
        .call(
            "PUT",
            "/v1/me/webhook",
            Some(&app.owner_token),
            Some(json!({"url": format!("http://127.0.0.1:{closed}/hook")})),
        )
        .await;
    assert!(hook.status == 200 || hook.status == 201, "{}", hook.text);
    used.push(hook.body["secret"].as_str().unwrap().to_owned());
    let minted = app
        .post("/v1/me/tokens", &app.owner_token, json!({"kinds": ["api"]}))
        .await;
    assert_eq!(minted.status, 201, "{}", minted.text);
    used.push(minted.body["token"].as_str().unwrap().to_owned());
    let deadline = Instant::now() + Duration::from_secs(60);
    while delta(
        &before,
        &handle.render(),
        "ownership_webhook_deliveries_total",
        &[("outcome", "retry")],
    ) < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "no webhook attempt counted within 60 s on {store}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // rate_limited: the address is blocked after 20 failures
    let mut blocked = false;
    for _ in 0..25 {
        blocked |= app.get("/v1/me", malformed).await.status == 429;
    }
    assert!(blocked, "the address was blocked");

    let after = handle.render();
    let d = |name: &str, labels: &[(&str, &str)]| delta(&before, &after, name, labels);

    // HTTP: route templates, statuses, latency histograms with buckets
    let requests = "ownership_http_requests_total";
    assert!(
        d(
            requests,
            &[("method", "GET"), ("route", "/v1/me"), ("status", "200")]
        ) >= 4.0
    );
    assert!(
        d(
            requests,
            &[("method", "GET"), ("route", "/v1/me"), ("status", "401")]
        ) >= 5.0
    );
    assert!(
        d(
            requests,
            &[("method", "GET"), ("route", "/v1/me"), ("status", "429")]
        ) >= 1.0
    );
    assert_eq!(
        d(
            requests,
            &[
                ("method", "GET"),
                ("route", "/v1/admin/users/{id}"),
                ("status", "200")
            ]
        ),
        1.0
    );
    assert_eq!(
        d(
            requests,
            &[("method", "GET"), ("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    assert_eq!(
        d(
            requests,
            &[
                ("method", "POST"),
                ("route", "/v1/channels/{channel}/pairing-requests"),
                ("status", "201")
            ]
        ),
        1.0
    );
    assert_eq!(
        d(
            requests,
            &[
                ("method", "GET"),
                ("route", "/v1/channels/{channel}/identities/{external_id}"),
                ("status", "200")
            ]
        ),
        f64::from(resolved)
    );
    let duration = "ownership_http_request_duration_seconds";
    assert!(d(&format!("{duration}_count"), &[("route", "/v1/me")]) >= 10.0);
    assert!(present(
        &after,
        &format!("{duration}_bucket"),
        &[("route", "/v1/me"), ("le", "0.005")]
    ));
    assert!(present(
        &after,
        &format!("{duration}_bucket"),
        &[("route", "/v1/me"), ("le", "+Inf")]
    ));

    // authentication outcomes, each told apart
    let auth = "ownership_auth_attempts_total";
    for outcome in [
        "ok",
        "missing",
        "malformed",
        "unknown",
        "revoked",
        "expired",
        "inactive",
        "rate_limited",
    ] {
        assert!(
            d(auth, &[("outcome", outcome)]) >= 1.0,
            "{store}: no `{outcome}` authentication counted:\n{after}"
        );
    }
    assert_eq!(d(auth, &[("outcome", "unknown")]), 1.0, "{store}");
    assert_eq!(d(auth, &[("outcome", "revoked")]), 1.0, "{store}");
    assert_eq!(d(auth, &[("outcome", "expired")]), 1.0, "{store}");
    assert_eq!(d(auth, &[("outcome", "inactive")]), 1.0, "{store}");

    // cache
    assert!(d("ownership_cache_hits_total", &[("cache", "principals")]) >= 2.0);
    assert!(d("ownership_cache_misses_total", &[("cache", "principals")]) >= 1.0);
    assert!(d("ownership_cache_hits_total", &[("cache", "identities")]) >= 1.0);
    assert!(d("ownership_cache_misses_total", &[("cache", "identities")]) >= 1.0);
    assert!(present(
        &after,
        "ownership_cache_evictions_total",
        &[("cache", "principals")]
    ));
    assert!(
        value(
            &after,
            "ownership_cache_entries",
            &[("cache", "principals")]
        ) >= 1.0
    );

    // store calls by backend
    let store_count = "ownership_store_operation_duration_seconds_count";
    assert!(d(store_count, &[("backend", store), ("op", "write")]) >= 5.0);
    assert!(d(store_count, &[("backend", store)]) >= 10.0);
    assert!(present(
        &after,
        "ownership_store_errors_total",
        &[("backend", store)]
    ));
    assert_eq!(
        d("ownership_store_errors_total", &[("backend", store)]),
        0.0
    );

    // pairing
    assert_eq!(
        d("ownership_pairing_requests_total", &[("result", "created")]),
        1.0
    );
    assert_eq!(
        d(
            "ownership_pairing_requests_total",
            &[("result", "existing")]
        ),
        1.0
    );
    assert_eq!(d("ownership_pairing_redemptions_total", &[]), 1.0);
    assert_eq!(d("ownership_pairing_failures_total", &[]), 1.0);
    assert!(present(&after, "ownership_pairing_burns_total", &[]));
    assert!(present(&after, "ownership_pairing_codes_burned_total", &[]));

    // webhooks
    assert!(
        d(
            "ownership_webhook_deliveries_total",
            &[("outcome", "retry")]
        ) >= 1.0
    );
    assert!(present(&after, "ownership_webhook_due_deliveries", &[]));
    assert!(present(
        &after,
        "ownership_webhook_circuits",
        &[("state", "open")]
    ));

    // PostgreSQL: this process hears its own invalidations
    if backend == Backend::Postgres {
        assert!(
            d(
                "ownership_cache_invalidations_received_total",
                &[("kind", "token")]
            ) >= 1.0,
            "{after}"
        );
        assert_eq!(
            value(&after, "ownership_invalidation_listener_up", &[]),
            1.0
        );
        assert!(present(
            &after,
            "ownership_invalidation_listener_reconnects_total",
            &[]
        ));
    }

    // No label carries what a client chose or a secret.
    let used: Vec<&str> = used.iter().map(String::as_str).collect();
    assert_no_label_carries(&after, &used);
    assert_labels_bounded(&after);
    app.stop().await;
}
