//! Client addresses behind trusted proxies, and failed-authentication limits that refuse
//! only failures: a valid credential is never refused for where it came from.
//!
//! Clients get distinct source addresses by binding to 127.0.0.x (all of 127.0.0.0/8 is
//! local on Linux). Windows are long (10 minutes) so no budget refills during a test.

use std::net::IpAddr;
use std::time::Duration;

use ownership_core::token::TokenFamily;
use ownership_tests::app::{Backend, Reply, TestApp, spawn_app_with};
use ownership_tests::logcheck::Kind;
use serde_json::{Value, json};

use crate::support::{assert_rate_limited, assert_unauthenticated, service_token, unknown_token};

on_both_backends!(
    a_valid_token_passes_from_a_blocked_address,
    forwarded_for_from_an_untrusted_peer_is_ignored,
    a_trusted_peer_names_the_client_by_the_right_most_untrusted_entry,
    ipv6_clients_are_counted_per_64,
    verify_failures_count_against_the_caller,
    bootstrap_and_resource_credentials_refuse_only_failures,
    console_sign_in_refuses_only_failures,
);

const WINDOW: Duration = Duration::from_secs(600);
const MASTER_KEY: [u8; 32] = [9; 32];

/// A client whose connections come from `local` (127.0.0.x).
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(local.parse::<IpAddr>().expect("address"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A request from `client` with an optional bearer token, extra headers and JSON body.
async fn send(
    app: &TestApp,
    client: &reqwest::Client,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client.request(method, format!("{}{path}", app.base));
    if let Some(t) = token {
        app.secrets.record(Kind::Token, t);
        req = req.bearer_auth(t);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(b) = body {
        app.secrets.record_json(&b);
        req = req.json(&b);
    }
    let res = req.send().await.expect("request sent");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    app.secrets.record_set_cookies(&headers);
    let text = res.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    app.secrets.record_json(&body);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

/// `GET /v1/me` from `client` with `token` and `headers`.
async fn me(
    app: &TestApp,
    client: &reqwest::Client,
    token: &str,
    headers: &[(&str, &str)],
) -> Reply {
    send(app, client, "GET", "/v1/me", Some(token), headers, None).await
}

/// A bad token: alternately well-formed but unknown (a store read) and malformed (refused
/// offline), so both kinds of failure are counted.
fn bad_token(i: usize) -> String {
    if i.is_multiple_of(2) {
        unknown_token(TokenFamily::User)
    } else {
        format!("own_u_wrong{i}")
    }
}

/// 40 bad tokens from one address: 29 answered 401, then 429 (the default budget of 30
/// per window; the 30th failure spends it). Then that address's valid tokens still work,
/// and only its failures keep getting 429.
async fn a_valid_token_passes_from_a_blocked_address(backend: Backend) {
    assert_eq!(
        ownership_http::limits::LimitsConfig::default().failed_auth_per_address,
        30,
        "the default budget this test counts on"
    );
    let app = spawn_app_with(backend, |c| {
        c.service.limits.failed_auth_window = WINDOW;
    })
    .await;
    let alice = app.create_user("alice", "member").await;
    let a = client_from("127.0.0.1");
    let mut statuses = Vec::new();
    for i in 0..40 {
        let r = me(&app, &a, &bad_token(i), &[]).await;
        if r.status == 401 {
            assert_unauthenticated(&r);
        } else {
            assert_rate_limited(&r);
        }
        statuses.push(r.status);
    }
    assert_eq!(
        statuses,
        [vec![401; 29], vec![429; 11]].concat(),
        "29 failures answered, the 30th spends the budget"
    );

    for token in [&app.owner_token, &alice] {
        let r = me(&app, &a, token, &[]).await;
        assert_eq!(
            r.status, 200,
            "a valid token from the blocked address: {}",
            r.text
        );
    }
    assert_rate_limited(&me(&app, &a, &unknown_token(TokenFamily::User), &[]).await);
    assert_rate_limited(&me(&app, &a, "own_u_malformed", &[]).await);
    assert_rate_limited(&send(&app, &a, "GET", "/v1/me", None, &[], None).await);
    // Another address is untouched.
    let b = client_from("127.0.0.2");
    assert_unauthenticated(&me(&app, &b, &unknown_token(TokenFamily::User), &[]).await);
    app.stop().await;
}

/// From a peer that is not a trusted proxy, `X-Forwarded-For` and `Forwarded` are
/// ignored: failures count against the peer, whatever address the headers claim.
async fn forwarded_for_from_an_untrusted_peer_is_ignored(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.service.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.service.limits.failed_auth_per_address = 3;
        c.service.limits.failed_auth_window = WINDOW;
    })
    .await;
    let stranger = client_from("127.0.0.4");
    let mut statuses = Vec::new();
    for i in 0..4 {
        let forged = format!("198.51.100.{}", i + 1);
        let forwarded = format!("for={forged}");
        let r = me(
            &app,
            &stranger,
            &bad_token(i),
            &[("x-forwarded-for", &forged), ("forwarded", &forwarded)],
        )
        .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses, [401, 401, 429, 429], "counted against 127.0.0.4");
    let r = me(
        &app,
        &stranger,
        &app.owner_token,
        &[("x-forwarded-for", "198.51.100.1")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Through the trusted proxy (127.0.0.1), the forged addresses' budgets are unspent,
    // and 127.0.0.4's is.
    let proxy = client_from("127.0.0.1");
    for forged in ["198.51.100.1", "198.51.100.2"] {
        let r = me(&app, &proxy, &bad_token(0), &[("x-forwarded-for", forged)]).await;
        assert_unauthenticated(&r);
    }
    let r = me(
        &app,
        &proxy,
        &bad_token(0),
        &[("x-forwarded-for", "127.0.0.4")],
    )
    .await;
    assert_rate_limited(&r);
    app.stop().await;
}

/// From a trusted proxy, the client is the right-most entry that is not itself a trusted
/// proxy; whatever the client wrote to its left is not believed.
async fn a_trusted_peer_names_the_client_by_the_right_most_untrusted_entry(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.service.trusted_proxies = vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        c.service.limits.failed_auth_per_address = 3;
        c.service.limits.failed_auth_window = WINDOW;
    })
    .await;
    let proxy = client_from("127.0.0.1");
    let mut statuses = Vec::new();
    for i in 0..3 {
        // A different forged left part and inner proxy each time; one client.
        let xff = format!("6.6.6.{i}, 198.51.100.7:5555, 10.1.1.{i}");
        statuses.push(
            me(&app, &proxy, &bad_token(i), &[("x-forwarded-for", &xff)])
                .await
                .status,
        );
    }
    assert_eq!(statuses, [401, 401, 429]);
    // The same client however the header is spelled.
    for headers in [
        &[("x-forwarded-for", "198.51.100.7")][..],
        &[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "198.51.100.7, 10.9.9.9"),
        ],
        &[("forwarded", "for=198.51.100.7;proto=https")],
        &[(
            "forwarded",
            "for=\"[::ffff:198.51.100.7]:443\", for=10.2.2.2",
        )],
    ] {
        assert_rate_limited(&me(&app, &proxy, &bad_token(0), headers).await);
    }
    // Its valid token passes.
    let r = me(
        &app,
        &proxy,
        &app.owner_token,
        &[("x-forwarded-for", "198.51.100.7")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Other clients behind the same proxy, and the proxy itself, are not blocked.
    for headers in [
        &[("x-forwarded-for", "198.51.100.8")][..],
        &[("x-forwarded-for", "198.51.100.7, 198.51.100.8")],
        &[("forwarded", "for=\"[2001:db8::1]:443\"")],
        &[],
    ] {
        assert_unauthenticated(&me(&app, &proxy, &bad_token(1), headers).await);
    }
    // `unknown` ends the walk at the last trusted hop: 10.3.3.3 is the client.
    let unknown = [("x-forwarded-for", "198.51.100.7, unknown, 10.3.3.3")];
    assert_unauthenticated(&me(&app, &proxy, &bad_token(0), &unknown).await);
    app.stop().await;
}

/// IPv6 clients are counted per /64; IPv4-mapped IPv6 addresses as IPv4.
async fn ipv6_clients_are_counted_per_64(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.service.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.service.limits.failed_auth_per_address = 3;
        c.service.limits.failed_auth_window = WINDOW;
    })
    .await;
    let proxy = client_from("127.0.0.1");
    let mut statuses = Vec::new();
    for xff in [
        "2001:db8:1:2::1",
        "2001:db8:1:2:ffff:eeee:dddd:cccc",
        "\"[2001:db8:1:2::3]:443\"",
        "2001:db8:1:2::4",
    ] {
        statuses.push(
            me(&app, &proxy, &bad_token(0), &[("x-forwarded-for", xff)])
                .await
                .status,
        );
    }
    assert_eq!(statuses, [401, 401, 429, 429], "one /64, one budget");
    assert_unauthenticated(
        &me(
            &app,
            &proxy,
            &bad_token(0),
            &[("x-forwarded-for", "2001:db8:1:3::1")],
        )
        .await,
    );

    let mut statuses = Vec::new();
    for xff in [
        "::ffff:198.51.100.9",
        "198.51.100.9",
        "[::ffff:198.51.100.9]:80",
    ] {
        statuses.push(
            me(&app, &proxy, &bad_token(1), &[("x-forwarded-for", xff)])
                .await
                .status,
        );
    }
    assert_eq!(statuses, [401, 401, 429], "IPv4-mapped is IPv4");
    app.stop().await;
}

/// `POST /v1/tokens/verify`: a token that does not check out counts against the caller's
/// address; past the budget such answers are 429, while a valid token is still
/// `valid: true`. The caller's own `verify` token keeps working.
async fn verify_failures_count_against_the_caller(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.service.limits.failed_auth_per_address = 3;
        c.service.limits.failed_auth_window = WINDOW;
    })
    .await;
    let verifier = service_token(&app, &["verify"]).await;
    let alice = app.create_user("alice", "member").await;
    let a = client_from("127.0.0.1");
    let verify = |token: String| {
        let (app, a, verifier) = (&app, &a, &verifier);
        async move {
            send(
                app,
                a,
                "POST",
                "/v1/tokens/verify",
                Some(verifier),
                &[],
                Some(json!({ "token": token })),
            )
            .await
        }
    };
    let r = verify(unknown_token(TokenFamily::User)).await;
    assert_eq!(
        (r.status, &r.body["valid"]),
        (200, &json!(false)),
        "{}",
        r.text
    );
    let r = verify("own_u_malformed".to_owned()).await;
    assert_eq!(
        (r.status, &r.body["valid"]),
        (200, &json!(false)),
        "{}",
        r.text
    );
    assert_rate_limited(&verify(unknown_token(TokenFamily::User)).await);
    assert_rate_limited(&verify("not-even-close".to_owned()).await);
    let r = verify(alice.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["valid"], true);
    assert_eq!(r.body["owner_id"], "alice");
    // The same budget as bearer tokens': this address's failures are refused there too.
    assert_rate_limited(&me(&app, &a, &bad_token(0), &[]).await);
    assert_eq!(me(&app, &a, &alice, &[]).await.status, 200);
    // Another caller's address is untouched.
    let b = client_from("127.0.0.2");
    let r = send(
        &app,
        &b,
        "POST",
        "/v1/tokens/verify",
        Some(&verifier),
        &[],
        Some(json!({ "token": unknown_token(TokenFamily::User) })),
    )
    .await;
    assert_eq!(
        (r.status, &r.body["valid"]),
        (200, &json!(false)),
        "{}",
        r.text
    );
    app.stop().await;
}

const BOOTSTRAP_SECRET: &str = "a-long-random-bootstrap-secret-for-proxy-tests";

/// `POST /v1/bootstrap` and `GET /v1/resource/credentials`: wrong secrets and tokens are
/// counted and, past the budget, refused with 429; the right ones work from the same
/// address.
async fn bootstrap_and_resource_credentials_refuse_only_failures(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.secrets.bootstrap_token = Some(BOOTSTRAP_SECRET.to_owned());
        c.secrets.master_key = Some(MASTER_KEY);
        c.service.limits.failed_auth_per_address = 3;
        c.service.limits.failed_auth_window = WINDOW;
    })
    .await;
    let a = client_from("127.0.0.1");
    let body = json!({"user_id": "root"});
    let bootstrap = |secret: &'static str| {
        let (app, a, body) = (&app, &a, body.clone());
        async move {
            send(
                app,
                a,
                "POST",
                "/v1/bootstrap",
                Some(secret),
                &[],
                Some(body),
            )
            .await
        }
    };
    assert_unauthenticated(&bootstrap("not-the-secret-1").await);
    assert_unauthenticated(&bootstrap("not-the-secret-2").await);
    assert_rate_limited(&bootstrap("not-the-secret-3").await);
    assert_rate_limited(&bootstrap("not-the-secret-4").await);
    let r = bootstrap(BOOTSTRAP_SECRET).await;
    assert_eq!(
        r.status, 201,
        "the right secret from a blocked address: {}",
        r.text
    );
    let owner = r.body["token"].as_str().expect("token").to_owned();
    app.secrets.record(Kind::Token, &owner);

    let r = send(
        &app,
        &a,
        "POST",
        "/v1/me/resources",
        Some(&owner),
        &[],
        Some(json!({"kind": "job", "grants": []})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let resource = r.body["token"].as_str().expect("token").to_owned();
    let creds = |token: String| {
        let (app, a) = (&app, &a);
        async move {
            send(
                app,
                a,
                "GET",
                "/v1/resource/credentials",
                Some(&token),
                &[],
                None,
            )
            .await
        }
    };
    let r = creds(resource.clone()).await;
    assert_eq!(
        r.status, 200,
        "a live resource token from a blocked address: {}",
        r.text
    );
    assert_eq!(r.body, json!({"secrets": {}}));
    assert_rate_limited(&creds(unknown_token(TokenFamily::Resource)).await);
    assert_rate_limited(&creds("garbage".to_owned()).await);
    // From an address with budget left, the same refusals are the usual 403.
    let b = client_from("127.0.0.2");
    let r = send(
        &app,
        &b,
        "GET",
        "/v1/resource/credentials",
        Some("garbage"),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text);
    app.stop().await;
}

/// The sign-in form's CSRF cookie and value, fetched by `client`.
async fn login_form(app: &TestApp, client: &reqwest::Client) -> (String, String) {
    let form = client
        .get(format!("{}/console/login", app.base))
        .send()
        .await
        .expect("sign-in form");
    assert_eq!(form.status(), 200);
    app.secrets.record_set_cookies(form.headers());
    let cookie = form.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = form.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf field")
        .to_owned();
    app.secrets.record(Kind::ConsoleSession, &csrf);
    (cookie, csrf)
}

/// Signs in to the console from `client` with `token`: the status and the `Set-Cookie`
/// values.
async fn sign_in(app: &TestApp, client: &reqwest::Client, token: &str) -> (u16, Vec<String>) {
    let (cookie, csrf) = login_form(app, client).await;
    app.secrets.record(Kind::Token, token);
    let res = client
        .post(format!("{}/console/login", app.base))
        .header("cookie", &cookie)
        .header("origin", &app.base)
        .form(&[("csrf", csrf.as_str()), ("access_token", token)])
        .send()
        .await
        .expect("sign-in");
    app.secrets.record_set_cookies(res.headers());
    let cookies = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    (res.status().as_u16(), cookies)
}

/// The console sign-in: wrong tokens count against the address (shared with the API's
/// budget) and are refused past it; the Owner's token still signs in from there.
async fn console_sign_in_refuses_only_failures(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.service.limits.failed_auth_per_address = 3;
        c.service.limits.failed_auth_window = WINDOW;
    })
    .await;
    let a = client_from("127.0.0.1");
    assert_eq!(sign_in(&app, &a, &bad_token(0)).await.0, 401);
    assert_eq!(sign_in(&app, &a, &bad_token(1)).await.0, 401);
    assert_eq!(sign_in(&app, &a, &bad_token(2)).await.0, 429);
    assert_eq!(sign_in(&app, &a, &bad_token(3)).await.0, 429);
    assert_rate_limited(&me(&app, &a, &bad_token(4), &[]).await);
    let (status, cookies) = sign_in(&app, &a, &app.owner_token).await;
    assert_eq!(status, 303, "the Owner signs in from the blocked address");
    assert!(
        cookies.iter().any(|c| c.starts_with("ownership_session=")),
        "a session cookie: {cookies:?}"
    );
    app.stop().await;
}
