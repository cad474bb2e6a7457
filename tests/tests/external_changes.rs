//! An operator's CLI change is honoured by a running libSQL server within 1 s.
//!
//! The real `ownership serve` runs on a libSQL file; the real `ownership` CLI, a separate
//! process, changes the same file. Each credential is first used once (so the server has
//! it in its cache, whose TTL of 30 s is far above the bound), then the CLI suspends its
//! user, revokes it, removes its user or unlinks its chat account, and the server must
//! refuse it within 1 s of the command returning. The server learns of the change by
//! polling SQLite's `PRAGMA data_version` and reading the audit events since
//! (`libsql::watch_external_changes`); the times it took are printed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "tests; the detection times are printed"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ownership_core::ports::{Clock, TokenStore};
use ownership_store::cache::{CacheConfig, Cached};
use ownership_store::libsql::{LibsqlStore, watch_external_changes};
use ownership_tests::backends;
use ownership_tests::conformance::support::boot;
use ownership_tests::http::{Reply, client, try_call};
use ownership_tests::serve::{Serve, operator_command, run_to_end, start};
use serde_json::{Value, json};

/// What the CLI's messages promise.
const BOUND: Duration = Duration::from_secs(1);

/// Runs an operator command on `db`; panics unless it exits 0. Returns its stdout and
/// stderr.
fn cli(db: &str, args: &[&str]) -> String {
    let (code, out) = run_to_end(operator_command(args, db));
    assert_eq!(
        code,
        Some(0),
        "`ownership {}` failed: {out}",
        args.join(" ")
    );
    out
}

/// `cli` with `--json`, parsed (the document is the first line that parses).
fn cli_json(db: &str, args: &[&str]) -> Value {
    let mut with = vec!["--json"];
    with.extend_from_slice(args);
    let out = cli(db, &with);
    serde_json::from_str(out.trim())
        .ok()
        .or_else(|| {
            out.lines()
                .find_map(|l| serde_json::from_str::<Value>(l).ok())
        })
        .unwrap_or_else(|| panic!("no JSON in {out}"))
}

async fn call(
    http: &reqwest::Client,
    server: &Serve,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Reply {
    try_call(http, &server.base, method, path, Some(token), body)
        .await
        .expect("the server answers")
}

/// Runs `change` (a CLI command), then polls `GET path` with `token` until it answers
/// `refused`; asserts that happened within [`BOUND`] of the command returning, and that a
/// request made after the bound is refused too. Returns how long it took.
async fn refused_within_bound(
    http: &reqwest::Client,
    server: &Serve,
    path: &str,
    token: &str,
    refused: &[u16],
    change: impl FnOnce(),
) -> Duration {
    let warm = call(http, server, "GET", path, token, None).await;
    assert_eq!(warm.status, 200, "warm-up of {path}: {warm:?}");
    change();
    let returned = Instant::now();
    let took = loop {
        let r = call(http, server, "GET", path, token, None).await;
        if refused.contains(&r.status) {
            break returned.elapsed();
        }
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert!(
            returned.elapsed() <= BOUND,
            "{path} still served {:?} after the CLI returned",
            returned.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    if let Some(rest) = BOUND.checked_sub(returned.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let after = call(http, server, "GET", path, token, None).await;
    assert!(
        refused.contains(&after.status),
        "{path} served again after the bound: {after:?}"
    );
    took
}

/// A new user's first token (`users add` prints it alone on stdout).
fn add_user(db: &str, id: &str) -> String {
    let json = cli_json(db, &["users", "add", id]);
    json["token"].as_str().unwrap().to_owned()
}

/// Binds `external_id` on telegram to the user of `user_token`: the adapter (`bot`) asks
/// for a code, the user redeems it.
async fn pair(
    http: &reqwest::Client,
    server: &Serve,
    bot: &str,
    user_token: &str,
    external_id: &str,
) {
    let asked = call(
        http,
        server,
        "POST",
        "/v1/channels/telegram/pairing-requests",
        bot,
        Some(json!({ "external_id": external_id })),
    )
    .await;
    assert_eq!(asked.status, 201, "{asked:?}");
    let code = asked.body["code"].as_str().unwrap().to_owned();
    let redeemed = call(
        http,
        server,
        "POST",
        "/v1/pairing/telegram/redeem",
        user_token,
        Some(json!({ "code": code })),
    )
    .await;
    assert_eq!(redeemed.status, 200, "{redeemed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_changes_reach_a_running_libsql_server_within_1s() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ownership.db");
    let db = db.to_str().unwrap().to_owned();
    let server = start(&db, true);
    let http = client();

    let carol = add_user(&db, "carol");
    let dave = add_user(&db, "dave");
    let erin = add_user(&db, "erin");
    let frank = add_user(&db, "frank");
    let bot = cli_json(
        &db,
        &[
            "tokens",
            "issue",
            "--user",
            "owner",
            "--kinds",
            "channel:telegram",
        ],
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut took = Vec::new();

    // users suspend
    took.push((
        "users suspend",
        refused_within_bound(&http, &server, "/v1/me", &carol, &[401, 403], || {
            cli(&db, &["users", "suspend", "carol"]);
        })
        .await,
    ));

    // tokens revoke
    let listed = cli_json(&db, &["tokens", "list", "--user", "dave"]);
    let dave_id = listed["tokens"][0]["id"].as_str().unwrap().to_owned();
    took.push((
        "tokens revoke",
        refused_within_bound(&http, &server, "/v1/me", &dave, &[401, 403], || {
            cli(&db, &["tokens", "revoke", "--user", "dave", &dave_id]);
        })
        .await,
    ));

    // users remove
    took.push((
        "users remove",
        refused_within_bound(&http, &server, "/v1/me", &erin, &[401, 403], || {
            cli(&db, &["users", "remove", "erin"]);
        })
        .await,
    ));

    // pairing unlink: frank pairs a chat account through the server, the adapter resolves
    // it (cached), the operator unlinks it.
    pair(&http, &server, &bot, &frank, "777").await;
    took.push((
        "pairing unlink",
        refused_within_bound(
            &http,
            &server,
            "/v1/channels/telegram/identities/777",
            &bot,
            &[404],
            || {
                let said = cli(
                    &db,
                    &["pairing", "unlink", "telegram", "777", "--user", "frank"],
                );
                assert!(said.contains("within 1 s"), "{said}");
            },
        )
        .await,
    ));

    // Unaffected credentials still work: nothing was flushed that should not be.
    let me = call(&http, &server, "GET", "/v1/me", &frank, None).await;
    assert_eq!(me.status, 200, "{me:?}");

    for (what, took) in &took {
        println!("{what}: refused {took:?} after the CLI returned");
    }
    let log = server.log();
    assert!(
        !log.contains("flushing the cache"),
        "every change was read from the audit log, none flushed everything:\n{log}"
    );
}

#[test]
fn the_cli_says_what_the_server_does() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ownership.db");
    let db = db.to_str().unwrap();
    cli(db, &["migrate"]);
    add_user(db, "gina");
    let suspended = cli(db, &["users", "suspend", "gina"]);
    assert!(
        suspended.contains("refused (by a running server within 1 s)"),
        "{suspended}"
    );
    let removed = cli(db, &["users", "remove", "gina"]);
    assert!(removed.contains("within 1 s"), "{removed}");
}

/// A commit by another connection that no audit event explains (here a row changed by
/// hand, with only the audit head moved) cannot be mapped to what it invalidates: the
/// watcher flushes the whole cache. The clock is manual, so the cache's TTL never expires
/// during the test: only the flush can make the change visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_the_watcher_cannot_read_flushes_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ownership.db");
    let clock = backends::manual_clock();
    let mine = LibsqlStore::open_file(&path, Arc::clone(&clock) as Arc<dyn Clock>)
        .await
        .unwrap();
    mine.migrate_to(None).await.unwrap();
    // Its own connection: to SQLite, another process.
    let other = LibsqlStore::open_file(&path, Arc::clone(&clock) as Arc<dyn Clock>)
        .await
        .unwrap();
    let cache = Cached::new(mine, clock as Arc<dyn Clock>, CacheConfig::default());
    let root = boot(&cache).await;
    let digest = root.secret.digest();
    assert!(cache.authenticate(&digest).await.unwrap().is_some());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(watch_external_changes(
        cache.clone(),
        Duration::from_millis(20),
        async move {
            let _ = stopped.await;
        },
    ));
    // Let the watcher read where the database stands before the change.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        cache.authenticate(&digest).await.unwrap().is_some(),
        "served from the cache"
    );
    other
        .execute_batch_for_tests(
            "UPDATE users SET status = 'suspended' WHERE id = 'root';
             UPDATE audit_head SET seq = seq + 1 WHERE id = 1;",
        )
        .await
        .unwrap();
    let changed = Instant::now();
    while cache.authenticate(&digest).await.unwrap().is_some() {
        assert!(
            changed.elapsed() < BOUND,
            "the cache still serves the token {:?} after an unexplained change",
            changed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(stop);
}
