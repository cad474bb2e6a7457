//! The real `ownership serve` behind a real TLS-terminating nginx, configured by a file
//! (`--config`): `[http] trusted_proxies = ["127.0.0.1/32"]`, an `https://` `public_url`
//! and a small `[limits] failed_auth_per_address`.
//!
//! Clients get distinct source addresses by binding to 127.0.0.x; nginx appends each one
//! to `X-Forwarded-For`. On both stores:
//!
//! - client A's bad tokens spend A's budget (429), while client B's valid token, and A's
//!   own valid token, still pass through the proxy;
//! - the console's session cookie, set through the proxy, is `__Host-` prefixed, `Secure`,
//!   `HttpOnly` and `SameSite=Strict`;
//! - a forged `X-Forwarded-For` sent straight to the server (not through nginx) from
//!   127.0.0.4 is ignored: the failures count against 127.0.0.4, not the forged address.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::net::IpAddr;
use std::time::Duration;

use ownership_core::token::{TokenFamily, TokenSecret};
use ownership_store::OsRandom;
use ownership_tests::nginx::{Nginx, free_port};
use ownership_tests::pg::PgCluster;
use ownership_tests::serve::{Serve, serve_command, start_command};
use serde_json::{Value, json};

/// `[limits] failed_auth_per_address` in the server's configuration file.
const BUDGET: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libsql() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("ownership.db").display().to_string();
    behind_nginx(&url, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let cluster = PgCluster::shared().unwrap_or_else(|e| panic!("PostgreSQL is required: {e}"));
    let url = cluster
        .fresh_database_url()
        .unwrap_or_else(|e| panic!("fresh database: {e}"));
    let dir = tempfile::tempdir().unwrap();
    behind_nginx(&url, dir.path()).await;
}

/// `ownership serve --config <dir>/ownership.toml` on `database_url`, with nginx on
/// `proxy_port` in front of it (the port goes into `public_url`).
fn serve_with_config(database_url: &str, dir: &std::path::Path, proxy_port: u16) -> Serve {
    let config = dir.join("ownership.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\n\
             trusted_proxies = [\"127.0.0.1/32\"]\n\
             public_url = \"https://127.0.0.1:{proxy_port}\"\n\
             \n\
             [limits]\n\
             failed_auth_per_address = {BUDGET}\n\
             failed_auth_window_seconds = 600\n"
        ),
    )
    .unwrap();
    let mut cmd = serve_command(database_url);
    cmd.arg("--config").arg(&config);
    start_command(cmd, true)
}

/// A client whose connections come from `local`, trusting `cert_pem`.
fn client(local: &str, cert_pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(local.parse::<IpAddr>().unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The status and JSON body of a request.
async fn call(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = http.request(method, format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `GET /v1/me` with `token`: the status.
async fn me(http: &reqwest::Client, base: &str, token: &str, headers: &[(&str, &str)]) -> u16 {
    call(http, base, "GET", "/v1/me", Some(token), headers, None)
        .await
        .0
}

/// A bad token: alternately well-formed but unknown, and malformed.
fn bad_token(i: usize) -> String {
    if i.is_multiple_of(2) {
        TokenSecret::generate(TokenFamily::User, &mut OsRandom)
            .expose()
            .to_owned()
    } else {
        format!("own_u_wrong{i}")
    }
}

/// `n` bad tokens: their statuses.
async fn fail(http: &reqwest::Client, base: &str, n: usize, headers: &[(&str, &str)]) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(n);
    for i in 0..n {
        statuses.push(me(http, base, &bad_token(i), headers).await);
    }
    statuses
}

/// What `n` failures get from an address with a fresh budget of [`BUDGET`]: 401 until the
/// failure that spends it, 429 from then on.
fn spent(n: usize) -> Vec<u16> {
    (0..n)
        .map(|i| if i + 1 < BUDGET { 401 } else { 429 })
        .collect()
}

async fn behind_nginx(database_url: &str, dir: &std::path::Path) {
    let proxy_port = free_port();
    let server = serve_with_config(database_url, dir, proxy_port);
    let owner = server.token.clone().expect("the first Owner's token");
    let upstream = server.base.trim_start_matches("http://").to_owned();
    let nginx = Nginx::start_tls_proxy(proxy_port, &upstream);
    let via = nginx.base();

    // A user for client B, made through the proxy from yet another address.
    let admin = client("127.0.0.5", &nginx.cert_pem);
    let (status, body) = call(
        &admin,
        &via,
        "POST",
        "/v1/admin/users",
        Some(&owner),
        &[],
        Some(json!({"user_id": "bob", "role": "member"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let bob = body["token"].as_str().unwrap().to_owned();

    // Client A: 40 bad tokens through the proxy spend its budget.
    let a = client("127.0.0.2", &nginx.cert_pem);
    assert_eq!(
        fail(&a, &via, 40, &[]).await,
        spent(40),
        "client A's failures"
    );
    // Client B, behind the same proxy, is not blocked: its valid token passes, and its
    // own failures are still plain 401s.
    let b = client("127.0.0.3", &nginx.cert_pem);
    assert_eq!(me(&b, &via, &bob, &[]).await, 200, "client B's valid token");
    assert_eq!(fail(&b, &via, 1, &[]).await, [401], "B has its own budget");
    // Client A's own valid token passes; its failures are still refused.
    assert_eq!(
        me(&a, &via, &owner, &[]).await,
        200,
        "client A's valid token"
    );
    assert_eq!(fail(&a, &via, 1, &[]).await, [429]);

    // The console through the proxy, from blocked client A: the cookies are for HTTPS.
    let form = a.get(format!("{via}/console/login")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let login_cookie = set_cookie(&form, "__Host-ownership_login=");
    assert_https_cookie(&login_cookie);
    let html = form.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form's CSRF value")
        .to_owned();
    let signed = a
        .post(format!("{via}/console/login"))
        .header("cookie", pair(&login_cookie))
        .header("origin", &via)
        .form(&[("csrf", csrf.as_str()), ("access_token", owner.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303, "the Owner signs in through the proxy");
    let session = set_cookie(&signed, "__Host-ownership_session=");
    assert_https_cookie(&session);
    let home = a
        .get(format!("{via}/console"))
        .header("cookie", pair(&session))
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200, "a console page with the session");

    // Straight to the server (not through nginx) from 127.0.0.4 with a forged
    // X-Forwarded-For: 127.0.0.4 is no trusted proxy, so the header is ignored and the
    // failures count against 127.0.0.4.
    let direct = client("127.0.0.4", &nginx.cert_pem);
    let forged = [("x-forwarded-for", "127.0.0.6")];
    assert_eq!(
        fail(&direct, &server.base, BUDGET, &forged).await,
        spent(BUDGET),
        "counted against 127.0.0.4"
    );
    assert_eq!(me(&direct, &server.base, &owner, &forged).await, 200);
    // Through the proxy, the forged address's budget is whole, and 127.0.0.4's is spent.
    let forged_client = client("127.0.0.6", &nginx.cert_pem);
    assert_eq!(
        fail(&forged_client, &via, 1, &[]).await,
        [401],
        "127.0.0.6 untouched"
    );
    assert_eq!(fail(&direct, &via, 1, &[]).await, [429], "127.0.0.4 spent");

    // nginx really was in the path: it saw each client and sent X-Forwarded-For on. (It
    // writes its access log after answering, so the last lines may take a moment.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for address in ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.6"] {
        loop {
            let log = nginx.access_log();
            if log.lines().any(|l| l.starts_with(&format!("{address} "))) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "nginx saw {address}:\n{log}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    drop(nginx);
    drop(server);
}

/// The `Set-Cookie` of `response` that starts with `prefix`.
fn set_cookie(response: &reqwest::Response, prefix: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` cookie in {:?}", response.headers()))
        .to_owned()
}

/// `name=value` of a `Set-Cookie`.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_owned()
}

/// `__Host-` cookie rules and ours: `Secure`, `Path=/`, no `Domain`, `HttpOnly`,
/// `SameSite=Strict`.
fn assert_https_cookie(set_cookie: &str) {
    let attributes: Vec<String> = set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for want in ["secure", "httponly", "samesite=strict", "path=/"] {
        assert!(
            attributes.iter().any(|a| a == want),
            "`{want}` missing: {set_cookie}"
        );
    }
    assert!(
        !attributes.iter().any(|a| a.starts_with("domain")),
        "a __Host- cookie has no Domain: {set_cookie}"
    );
}
