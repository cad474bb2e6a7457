//! Faults against the real `ownership serve` binary on real stores (issue 9, part 1):
//!
//! - PostgreSQL stopped while the server runs: requests that need the store fail closed
//!   with 503 (never a 401 for a token that could not be checked), `/readyz` says so,
//!   `/healthz` does not, and the service comes back by itself when PostgreSQL does.
//! - SIGKILL in the middle of a burst of mutations from 16 clients, on libSQL and on
//!   PostgreSQL: after a restart on the same store the audit chain is intact and every
//!   mutation that was acknowledged with a 2xx is there.
//! - libSQL on a read-only and on a full filesystem: clear errors, and no corruption.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ownership_core::token::{TokenFamily, TokenSecret};
use ownership_store::OsRandom;
use ownership_store::libsql::LibsqlStore;
use ownership_tests::http::{Reply, client as http, eventually, try_call};
use ownership_tests::pg::PgCluster;
use ownership_tests::serve::{
    operator_command, run_to_end, serve_command, serve_command_via, start_command,
};
use serde_json::{Value, json};

/// How long a condition polled for may take (debug build, loaded 2-core machine).
const PATIENCE: Duration = Duration::from_secs(90);

/// A fixed master key (base64 of 32 bytes), so secrets can be stored and a restarted
/// server opens what the killed one sealed.
fn master_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([7u8; 32])
}

async fn call(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    try_call(http, base, method, path, token, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// [`call`], waiting out 429s (the per-identity limit), for the checks after a burst.
async fn call_patiently(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let start = Instant::now();
    loop {
        let r = call(http, base, method, path, token, body.clone()).await;
        if r.status != 429 || start.elapsed() > PATIENCE {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `GET path` answers `want`.
async fn answers_eventually(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: Option<&str>,
    want: u16,
) -> Reply {
    eventually(
        &format!("GET {path} answers {want}"),
        PATIENCE,
        || async move {
            let r = call(http, base, "GET", path, token, None).await;
            if r.status == want {
                Ok(r)
            } else {
                Err(format!("{r:?}"))
            }
        },
    )
    .await
}

/// The JSON error body of a store outage.
fn assert_unavailable(r: &Reply, what: &str) {
    assert_eq!(r.status, 503, "{what}: {r:?}");
    assert_eq!(r.body["error"]["code"], "unavailable", "{what}: {r:?}");
    assert!(
        r.body["error"]["message"].is_string(),
        "{what}: the error has a message: {r:?}"
    );
    assert!(
        !r.challenged,
        "{what}: an outage is not a refused authentication: {r:?}"
    );
}

/// `ownership audit verify --json` on `database_url`, with the fixed master key the
/// servers of these tests were given (the chain is keyed under it): the chain is intact;
/// returns how many events it holds.
fn audit_intact(database_url: &str) -> u64 {
    let mut verify = operator_command(&["--json", "audit", "verify"], database_url);
    verify.env("OWNERSHIP_MASTER_KEY", master_key());
    audit_verdict(verify)
}

/// [`audit_intact`] for a libSQL store whose server made its own master key (the key file
/// beside the database, which the command finds the same way).
fn audit_intact_by_key_file(database_url: &str) -> u64 {
    audit_verdict(operator_command(
        &["--json", "audit", "verify"],
        database_url,
    ))
}

/// Runs `ownership audit verify --json` as `verify`: the chain is intact; returns how many
/// events it holds.
fn audit_verdict(verify: std::process::Command) -> u64 {
    let (code, out) = run_to_end(verify);
    assert_eq!(code, Some(0), "audit verify: {out}");
    // Stdout (the verdict, pretty-printed) comes first.
    let at = out
        .find('{')
        .unwrap_or_else(|| panic!("audit verify printed no JSON: {out}"));
    let verdict: Value = serde_json::Deserializer::from_str(&out[at..])
        .into_iter()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("audit verify printed no JSON: {out}"));
    assert_eq!(verdict["state"], "intact", "{out}");
    verdict["events"].as_u64().expect("events")
}

/// `PRAGMA integrity_check` on a libSQL file answers exactly `ok`.
async fn integrity_ok(db: &Path) {
    let store = LibsqlStore::open_file(db, Arc::new(ownership_store::SystemClock))
        .await
        .unwrap();
    let rows = store
        .query_count_for_tests("SELECT count(*) FROM pragma_integrity_check")
        .await
        .unwrap();
    let ok = store
        .query_count_for_tests(
            "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check = 'ok'",
        )
        .await
        .unwrap();
    assert_eq!(
        (rows, ok),
        (1, 1),
        "PRAGMA integrity_check is not just `ok`"
    );
}

/// A token of our format (prefix, 256 random bits, valid checksum) that no store holds.
fn unknown_token() -> String {
    TokenSecret::generate(TokenFamily::User, &mut OsRandom)
        .expose()
        .to_owned()
}

/// `ownership serve` with a master key. Its clients verify many revoked tokens from one
/// loopback address, and `valid: false` answers count against the caller's address like
/// failed authentications: the budget is raised so that limit (tested in `http_e2e`)
/// stays out of these tests.
fn serve_with_key(database_url: &str) -> Command {
    let mut cmd = serve_command(database_url);
    cmd.env("OWNERSHIP_MASTER_KEY", master_key())
        .env("OWNERSHIP_LIMITS__FAILED_AUTH_PER_ADDRESS", "1000000");
    cmd
}

async fn add_user(http: &reqwest::Client, base: &str, by: &str, id: &str, role: &str) -> String {
    let r = call(
        http,
        base,
        "POST",
        "/v1/admin/users",
        Some(by),
        Some(json!({ "user_id": id, "role": role })),
    )
    .await;
    assert_eq!(r.status, 201, "add user {id}: {r:?}");
    r.body["token"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------
// 1. PostgreSQL stopped mid-run
// ---------------------------------------------------------------------------------------

/// What this shows, on a private PostgreSQL cluster (the shared one is never stopped):
///
/// - while PostgreSQL is down, a token the server has not verified before — valid,
///   unknown-but-well-formed, or of a user the server never saw — gets 503 with the JSON
///   error body and no `WWW-Authenticate`: never 200 and never 401, since the server could
///   not check it. A malformed token is still 401: that check is offline.
/// - a token verified just before the stop may be served from the cache only until the
///   invalidation listener sees its connection drop and flushes the whole cache
///   (docs/operations.md, "Several processes"); after that it gets 503 too. It is never
///   401.
/// - `/readyz` answers 503 `{"status":"unavailable"}`, `/healthz` still 200.
/// - once PostgreSQL is back, the same process serves again by itself: `/readyz` 200,
///   the never-verified token 200, the unknown one 401, and mutations work.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_stopped_mid_run_fails_closed_and_the_service_resumes() {
    let cluster = PgCluster::private().expect("a private PostgreSQL cluster");
    let url = cluster.fresh_database_url().unwrap();
    let server = start_command(serve_command(&url), true);
    let base = server.base.clone();
    let http = http();
    answers_eventually(&http, &base, "/readyz", None, 200).await;
    let owner = server.token.clone().expect("the first Owner's token");

    let alice = add_user(&http, &base, &owner, "alice", "member").await;
    let bob = add_user(&http, &base, &owner, "bob", "member").await;
    let unknown = unknown_token();
    let malformed = "own_u_this-is-not-a-token";
    // Alice is verified now (and cached); Bob's token has never been presented.
    let r = call(&http, &base, "GET", "/v1/me", Some(&alice), None).await;
    assert_eq!(r.status, 200, "{r:?}");

    cluster.stop().expect("PostgreSQL stops");

    let r = call(&http, &base, "GET", "/healthz", None, None).await;
    assert_eq!((r.status, &r.body), (200, &json!({ "status": "ok" })));
    let r = call(&http, &base, "GET", "/readyz", None, None).await;
    assert_eq!(
        (r.status, &r.body),
        (503, &json!({ "status": "unavailable" }))
    );

    // Alice: served from the cache at most until the listener sees the drop and flushes;
    // then 503. Never 401. (Polled: when the listener notices is not ours to time.)
    let mut alice_answers = Vec::new();
    let start = Instant::now();
    loop {
        let r = call(&http, &base, "GET", "/v1/me", Some(&alice), None).await;
        alice_answers.push(r.status);
        match r.status {
            503 => {
                assert_unavailable(&r, "a cached token after the flush");
                break;
            }
            200 => assert!(
                start.elapsed() < PATIENCE,
                "a cached token is still served {PATIENCE:?} after PostgreSQL stopped"
            ),
            _ => panic!("a valid cached token while PostgreSQL is down: {r:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "alice (verified before the stop) answered {alice_answers:?} while PostgreSQL was down"
    );

    let r = call(&http, &base, "GET", "/v1/me", Some(&bob), None).await;
    assert_unavailable(&r, "a valid token never verified before");
    let r = call(&http, &base, "GET", "/v1/me", Some(&unknown), None).await;
    assert_unavailable(&r, "a well-formed token the server could not look up");
    let r = call(
        &http,
        &base,
        "POST",
        "/v1/me/tokens",
        Some(&alice),
        Some(json!({ "kinds": ["api"] })),
    )
    .await;
    assert_unavailable(&r, "a mutation");
    let r = call(
        &http,
        &base,
        "POST",
        "/v1/admin/users",
        Some(&owner),
        Some(json!({ "user_id": "carol" })),
    )
    .await;
    assert_unavailable(&r, "an admin mutation");
    let r = call(&http, &base, "GET", "/v1/me", Some(malformed), None).await;
    assert_eq!(r.status, 401, "a malformed token is refused offline: {r:?}");
    assert!(r.challenged, "{r:?}");
    let r = call(&http, &base, "GET", "/healthz", None, None).await;
    assert_eq!(r.status, 200, "liveness is not readiness: {r:?}");
    let r = call(&http, &base, "GET", "/readyz", None, None).await;
    assert_eq!(r.status, 503, "{r:?}");

    cluster.start_again().expect("PostgreSQL starts again");

    // The same process, not restarted.
    let r = answers_eventually(&http, &base, "/readyz", None, 200).await;
    assert_eq!(r.body, json!({ "status": "ok" }));
    let r = answers_eventually(&http, &base, "/v1/me", Some(&bob), 200).await;
    assert_eq!(r.body["user_id"], "bob");
    let r = call(&http, &base, "GET", "/v1/me", Some(&alice), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = call(&http, &base, "GET", "/v1/me", Some(&unknown), None).await;
    assert_eq!(r.status, 401, "an unknown token, checked now: {r:?}");
    let r = call(
        &http,
        &base,
        "POST",
        "/v1/me/tokens",
        Some(&alice),
        Some(json!({ "kinds": ["api"] })),
    )
    .await;
    assert_eq!(r.status, 201, "a mutation after the outage: {r:?}");
    let minted = r.body["token"].as_str().unwrap().to_owned();
    let r = call(&http, &base, "GET", "/v1/me", Some(&minted), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    add_user(&http, &base, &owner, "carol", "member").await;
    assert_eq!(
        cluster
            .psql(&url, "SELECT count(*) FROM users WHERE id = 'carol'")
            .unwrap(),
        "1"
    );
    drop(server);
}

// ---------------------------------------------------------------------------------------
// 2. SIGKILL during a burst of mutations
// ---------------------------------------------------------------------------------------

/// Clients in the burst.
const CLIENTS: usize = 16;

/// Acknowledged mutations (in all) after which the server is killed.
const KILL_AFTER: usize = 160;

/// What one client saw acknowledged (2xx) before the server died.
#[derive(Debug, Default)]
struct Acked {
    /// The client's own user (an Admin) and token.
    user: String,
    token: String,
    /// Users it created, with their first token.
    users: Vec<(String, String)>,
    /// Tokens it minted for itself: id → value.
    minted: BTreeMap<String, String>,
    /// Minted tokens whose revocation was acknowledged.
    revoked: BTreeSet<String>,
    /// Minted tokens whose revocation was sent but not acknowledged: either outcome is
    /// allowed.
    maybe_revoked: BTreeSet<String>,
    /// Secrets it stored.
    secrets: BTreeSet<String>,
    /// Every acknowledged mutation.
    count: usize,
}

/// One client: a round of create user, mint, revoke, put secret, until the server stops
/// answering (or a bound, so the loop ends by itself).
async fn client(
    base: String,
    mut acked: Acked,
    total: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> Acked {
    let http = http();
    let token = acked.token.clone();
    let me = acked.user.clone();
    let ack = |acked: &mut Acked| {
        acked.count += 1;
        total.fetch_add(1, Ordering::SeqCst);
    };
    let started = Instant::now();
    for round in 0..10_000 {
        if stop.load(Ordering::SeqCst) || started.elapsed() > PATIENCE * 2 {
            break;
        }
        let step = round % 4;
        let sent = match step {
            0 => {
                let id = format!("{me}-u{round}");
                try_call(
                    &http,
                    &base,
                    "POST",
                    "/v1/admin/users",
                    Some(&token),
                    Some(json!({ "user_id": id })),
                )
                .await
                .map(|r| {
                    if r.status == 201 {
                        let t = r.body["token"].as_str().unwrap().to_owned();
                        acked.users.push((id, t));
                        ack(&mut acked);
                    }
                })
            }
            1 => try_call(
                &http,
                &base,
                "POST",
                "/v1/me/tokens",
                Some(&token),
                Some(json!({ "kinds": ["api"] })),
            )
            .await
            .map(|r| {
                if r.status == 201 {
                    let id = r.body["id"].as_str().unwrap().to_owned();
                    let t = r.body["token"].as_str().unwrap().to_owned();
                    acked.minted.insert(id, t);
                    ack(&mut acked);
                }
            }),
            2 => {
                // Revoke every other minted token, oldest first.
                let Some(id) = acked
                    .minted
                    .keys()
                    .find(|id| !acked.revoked.contains(*id) && !acked.maybe_revoked.contains(*id))
                    .cloned()
                else {
                    continue;
                };
                acked.maybe_revoked.insert(id.clone());
                try_call(
                    &http,
                    &base,
                    "DELETE",
                    &format!("/v1/me/tokens/{id}"),
                    Some(&token),
                    None,
                )
                .await
                .map(|r| {
                    if r.status == 200 || r.status == 204 {
                        acked.maybe_revoked.remove(&id);
                        acked.revoked.insert(id);
                        ack(&mut acked);
                    } else if r.status < 500 {
                        // Refused (429): certainly not revoked.
                        acked.maybe_revoked.remove(&id);
                    }
                })
            }
            _ => {
                let name = format!("S{round}");
                try_call(
                    &http,
                    &base,
                    "PUT",
                    &format!("/v1/me/secrets/{name}"),
                    Some(&token),
                    Some(json!({ "value": format!("value of {me} {round}") })),
                )
                .await
                .map(|r| {
                    if r.status == 201 || r.status == 200 {
                        acked.secrets.insert(name);
                        ack(&mut acked);
                    }
                })
            }
        };
        if sent.is_err() {
            // The server is gone.
            break;
        }
    }
    acked
}

/// Whether `token` is valid, asked through `POST /v1/tokens/verify` (a refused token is
/// then not a failed authentication of this address).
async fn valid(http: &reqwest::Client, base: &str, verifier: &str, token: &str) -> bool {
    let r = call_patiently(
        http,
        base,
        "POST",
        "/v1/tokens/verify",
        Some(verifier),
        Some(json!({ "token": token })),
    )
    .await;
    assert_eq!(r.status, 200, "verify: {r:?}");
    r.body["valid"].as_bool().expect("valid")
}

/// Checks through the restarted server that what `acked` records is there.
async fn check_acked(base: String, owner: String, acked: Acked) {
    let http = http();
    let token = &acked.token;
    let r = call_patiently(
        &http,
        &base,
        "POST",
        "/v1/admin/service-tokens",
        Some(token),
        Some(json!({ "kinds": ["verify"], "label": "after the crash" })),
    )
    .await;
    assert_eq!(r.status, 201, "{}: service token: {r:?}", acked.user);
    let verifier = r.body["token"].as_str().unwrap().to_owned();

    for (id, t) in &acked.users {
        let r = call_patiently(
            &http,
            &base,
            "GET",
            &format!("/v1/admin/users/{id}"),
            Some(&owner),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "acknowledged user {id} is there: {r:?}");
        assert!(
            valid(&http, &base, &verifier, t).await,
            "the first token of acknowledged user {id} works"
        );
    }
    for (id, t) in &acked.minted {
        if acked.maybe_revoked.contains(id) {
            continue;
        }
        let revoked = acked.revoked.contains(id);
        assert_eq!(
            valid(&http, &base, &verifier, t).await,
            !revoked,
            "{}: token {id}, acknowledged as minted{}",
            acked.user,
            if revoked { " and revoked" } else { "" }
        );
    }
    let r = call_patiently(&http, &base, "GET", "/v1/me/secrets", Some(token), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let listed: BTreeSet<String> = r.body["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    let missing: Vec<_> = acked.secrets.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "{}: acknowledged secrets lost: {missing:?}",
        acked.user
    );
}

/// Kills the server mid-burst and checks the store after a restart; `database_url` is a
/// libSQL path or a PostgreSQL URL.
async fn sigkill_mid_burst(database_url: &str) {
    let mut server = start_command(serve_with_key(database_url), true);
    let base = server.base.clone();
    let owner = server.token.clone().expect("the first Owner's token");
    let http = http();
    answers_eventually(&http, &base, "/readyz", None, 200).await;

    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let user = format!("c{i}");
        let token = add_user(&http, &base, &owner, &user, "admin").await;
        clients.push(Acked {
            user,
            token,
            ..Acked::default()
        });
    }
    let total = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|acked| {
            tokio::spawn(client(
                base.clone(),
                acked,
                Arc::clone(&total),
                Arc::clone(&stop),
            ))
        })
        .collect();

    let start = Instant::now();
    while total.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(
            start.elapsed() < PATIENCE * 2,
            "only {} mutations acknowledged in {:?}",
            total.load(Ordering::SeqCst),
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    for task in tasks {
        acked.push(task.await.unwrap());
    }
    let count: usize = acked.iter().map(|a| a.count).sum();
    let in_doubt: usize = acked.iter().map(|a| a.maybe_revoked.len()).sum();
    eprintln!(
        "killed after {count} acknowledged mutations from {CLIENTS} clients \
         ({in_doubt} revocations in flight)"
    );
    assert!(count >= KILL_AFTER);
    drop(server);

    // The same store, a new process (for libSQL: the killed one's lock is gone with it).
    let server = start_command(serve_with_key(database_url), false);
    let base = server.base.clone();
    answers_eventually(&http, &base, "/readyz", None, 200).await;
    let events = audit_intact(database_url);
    // Each acknowledged mutation and each client's creation appended one event at least.
    assert!(
        events >= (count + CLIENTS) as u64,
        "{events} events for {count} acknowledged mutations and {CLIENTS} users"
    );
    let checks: Vec<_> = acked
        .into_iter()
        .map(|a| tokio::spawn(check_acked(base.clone(), owner.clone(), a)))
        .collect();
    for check in checks {
        check.await.unwrap();
    }
    // The chain is still intact after the checks' own mutations.
    audit_intact(database_url);
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_burst_loses_nothing_acknowledged_on_libsql() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ownership.db");
    sigkill_mid_burst(db.to_str().unwrap()).await;
    integrity_ok(&db).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_burst_loses_nothing_acknowledged_on_postgres() {
    let cluster = PgCluster::shared().expect("PostgreSQL for the tests");
    let url = cluster.fresh_database_url().unwrap();
    sigkill_mid_burst(&url).await;
}

// ---------------------------------------------------------------------------------------
// 3. libSQL on a read-only or full filesystem
// ---------------------------------------------------------------------------------------
//
// How the faults are made. The tests run as root, whom file modes do not stop, and a
// mount (a small tmpfs, a read-only bind mount) needs privileges a CI sandbox may not
// give. So:
//
// - read-only: the files and their directory lose their write bits, and the server runs
//   under `setpriv --bounding-set=-dac_override,-dac_read_search`: still uid 0 (it can
//   read everything as the files' owner) but without the capability that lets root
//   ignore modes, so writes are refused (EACCES) as on a read-only filesystem (EROFS).
// - full: the server runs under `prlimit --fsize=N` (RLIMIT_FSIZE), with SIGXFSZ
//   ignored (`trap '' XFSZ`, inherited across `exec`) so that a write past N bytes fails
//   with an error (EFBIG) instead of killing the process: to SQLite a write that cannot
//   grow a file, which is what a full disk is. "Space is freed" is a restart without the
//   limit.
// Both need nothing but util-linux, which every Debian has, and leave nothing behind.

/// `setpriv`, so that root obeys file modes.
const NO_DAC_OVERRIDE: [&str; 3] = [
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--",
];

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Sets the mode of `dir` and of every file in it.
fn set_modes(dir: &Path, dir_mode: u32, file_mode: u32) {
    for entry in std::fs::read_dir(dir).unwrap() {
        set_mode(&entry.unwrap().path(), file_mode);
    }
    set_mode(dir, dir_mode);
}

/// A libSQL store with an Owner and an acknowledged user (`alice`), its server killed
/// (SIGKILL: the write-ahead log is left as a crash leaves it). Returns the Owner's and
/// Alice's tokens.
async fn seeded_libsql(db: &str) -> (String, String) {
    let server = start_command(serve_command(db), true);
    let http = http();
    let owner = server.token.clone().unwrap();
    let alice = add_user(&http, &server.base, &owner, "alice", "member").await;
    drop(server);
    (owner, alice)
}

/// Read-only: a server cannot start on it, and says why; the store is untouched.
///
/// - Directory and files read-only (a read-only filesystem): the start stops at the
///   single-server lock file, `error: cannot open the lock file <path>: Permission denied`,
///   exit 1.
/// - Only the database read-only (its lock file writable): the start opens and reads the
///   store, then stops at its first write (the stored pairing-code key), exit 1, with
///   `attempt to write a readonly database` in the log and one `error: …` line.
///
/// Either way, with write access back, the chain is intact, `PRAGMA integrity_check` is
/// `ok`, and the acknowledged user is there.
#[tokio::test(flavor = "multi_thread")]
async fn libsql_read_only_refuses_to_start_with_a_clear_error_and_no_damage() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ownership.db");
    let db_arg = db.to_str().unwrap().to_owned();
    let (owner, alice) = seeded_libsql(&db_arg).await;
    let lock = dir.path().join("ownership.db.lock");
    assert!(lock.exists(), "the serve lock file is beside the database");
    let events_before = audit_intact_by_key_file(&db_arg);

    let no_dac: Vec<&OsStr> = NO_DAC_OVERRIDE.iter().map(OsStr::new).collect();

    // Everything read-only.
    set_modes(dir.path(), 0o555, 0o444);
    let (code, out) = run_to_end(serve_command_via(&no_dac, &db_arg));
    set_modes(dir.path(), 0o755, 0o644);
    assert_eq!(code, Some(1), "{out}");
    let expected = format!(
        "error: cannot open the lock file {}: Permission denied",
        lock.display()
    );
    assert!(out.contains(&expected), "wanted `{expected}` in:\n{out}");

    // Only the database read-only.
    set_modes(dir.path(), 0o555, 0o444);
    set_mode(&lock, 0o644);
    let (code, out) = run_to_end(serve_command_via(&no_dac, &db_arg));
    set_modes(dir.path(), 0o755, 0o644);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("attempt to write a readonly database"),
        "the log names the cause:\n{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("error: ")).count(),
        1,
        "one error line:\n{out}"
    );
    assert!(!out.contains(r#""serving""#), "it did not serve:\n{out}");

    // Nothing was damaged or lost.
    assert_eq!(audit_intact_by_key_file(&db_arg), events_before);
    integrity_ok(&db).await;
    let server = start_command(serve_command(&db_arg), false);
    let http = http();
    let r = call(&http, &server.base, "GET", "/v1/me", Some(&alice), None).await;
    assert_eq!((r.status, &r.body["user_id"]), (200, &json!("alice")));
    let r = call(&http, &server.base, "GET", "/v1/me", Some(&owner), None).await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// Largest file the server may write in the full-disk test.
const FULL_AT: u64 = 1_500_000;

/// Full disk: mutations fail with 503 and the JSON error body while the server keeps
/// answering (health and reads); after a restart with room again, the chain is intact,
/// `PRAGMA integrity_check` is `ok`, every acknowledged secret is there, and writes work.
#[tokio::test(flavor = "multi_thread")]
async fn libsql_on_a_full_disk_fails_mutations_clearly_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ownership.db");
    let db_arg = db.to_str().unwrap().to_owned();

    let fsize = format!("--fsize={FULL_AT}");
    let wrapper = [
        "sh",
        "-c",
        r#"trap '' XFSZ; exec "$@""#,
        "sh",
        "prlimit",
        fsize.as_str(),
        "--",
    ];
    let wrapper: Vec<&OsStr> = wrapper.iter().map(OsStr::new).collect();
    let mut cmd = serve_command_via(&wrapper, &db_arg);
    cmd.env("OWNERSHIP_MASTER_KEY", master_key());
    let server = start_command(cmd, true);
    let owner = server.token.clone().unwrap();
    let base = server.base.clone();
    let http = http();

    // Secrets of 24 KB until the disk is "full", and a few more after.
    let value: String = "x".repeat(24 * 1024);
    let mut acked = BTreeSet::new();
    let mut failures = Vec::new();
    for i in 0..400 {
        let name = format!("S{i}");
        let r = call(
            &http,
            &base,
            "PUT",
            &format!("/v1/me/secrets/{name}"),
            Some(&owner),
            Some(json!({ "value": value })),
        )
        .await;
        match r.status {
            200 | 201 => {
                acked.insert(name);
            }
            _ => failures.push(r),
        }
        if failures.len() >= 5 {
            break;
        }
    }
    eprintln!(
        "{} secrets stored before the disk was full; then {:?}",
        acked.len(),
        failures.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(!acked.is_empty(), "some writes fit");
    assert!(
        !failures.is_empty(),
        "the size limit was never hit (is the value too small?)"
    );
    for r in &failures {
        assert_unavailable(r, "a write to a full disk");
    }
    let log = server.log();
    assert!(
        log.contains("disk I/O error") || log.contains("database or disk is full"),
        "the log names the cause"
    );

    // The server keeps answering: liveness and reads.
    let r = call(&http, &base, "GET", "/healthz", None, None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = call(&http, &base, "GET", "/v1/me", Some(&owner), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = call(&http, &base, "GET", "/v1/me/secrets", Some(&owner), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let listed: BTreeSet<String> = r.body["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, acked, "exactly the acknowledged secrets");
    drop(server);

    // Room again (no limit): nothing lost, nothing damaged, writes work.
    let events = audit_intact(&db_arg);
    assert!(events as usize > acked.len(), "{events} events");
    integrity_ok(&db).await;
    let server = start_command(serve_with_key(&db_arg), false);
    let base = server.base.clone();
    let r = call(&http, &base, "GET", "/v1/me/secrets", Some(&owner), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let listed: BTreeSet<String> = r.body["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, acked, "the acknowledged secrets, after the restart");
    let r = call(
        &http,
        &base,
        "PUT",
        "/v1/me/secrets/AFTER",
        Some(&owner),
        Some(json!({ "value": value })),
    )
    .await;
    assert!(r.status == 201 || r.status == 200, "{r:?}");
    audit_intact(&db_arg);
}
