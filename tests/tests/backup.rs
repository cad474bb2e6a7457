//! `ownership backup`, `ownership restore` and `ownership store copy`, through the real
//! binary on both stores:
//!
//! 1. a populated store (every table non-empty, 10 000 provisioned tokens) is backed up
//!    while 16 clients keep mutating it over HTTP; the backup restores into a new store
//!    whose audit chain verifies and ends at the backup's head, and every token
//!    acknowledged before the backup began authenticates through a server on it;
//! 2. libSQL → PostgreSQL → libSQL with `store copy` answers every read through the ports
//!    exactly as the first store, every token authenticates and a sealed secret opens;
//! 3. refusals write nothing: a copy into a non-empty store, a truncated and an altered
//!    backup, and a backup onto a full disk (which leaves no complete-looking file);
//! 4. peak resident memory of `store copy` (libSQL to PostgreSQL) for 100k tokens stays
//!    within twice that for 10k (printed with `--nocapture`; about 20 s).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "tests"
)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ownership_core::authz::{AdminScope, OwnerScope};
use ownership_core::passkeys::{CredentialId, NewPasskey, PasskeyLabel};
use ownership_core::ports::{AuditFilter, Clock, PageRequest, Store};
use ownership_core::{ChannelName, service};
use ownership_store::SystemClock;
use ownership_store::libsql::LibsqlStore;
use ownership_store::postgres::PgStore;
use ownership_tests::bin::ownership_bin;
use ownership_tests::http::{Reply, client as http, try_call};
use ownership_tests::pg::PgCluster;
use ownership_tests::serve::{Serve, operator_command, run_to_end, serve_command, start_command};
use serde_json::{Value, json};

/// Clients mutating during the backup.
const CLIENTS: usize = 16;

/// How long a condition polled for may take (debug build, loaded 2-core machine).
const PATIENCE: Duration = Duration::from_secs(90);

fn master_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([11u8; 32])
}

fn pg_url() -> String {
    PgCluster::shared()
        .unwrap_or_else(|e| panic!("PostgreSQL is required: {e}"))
        .fresh_database_url()
        .unwrap_or_else(|e| panic!("fresh database: {e}"))
}

/// A call, waiting out 429s (the per-identity limit).
async fn call(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let start = Instant::now();
    loop {
        let r = try_call(http, base, method, path, token, body.clone())
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        if r.status != 429 || start.elapsed() > PATIENCE {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `ownership serve` with the fixed master key and private webhook URLs allowed (the
/// test's webhook points at a closed loopback port).
fn serve(database_url: &str) -> Serve {
    let mut cmd = serve_command(database_url);
    cmd.env("OWNERSHIP_MASTER_KEY", master_key())
        .env("OWNERSHIP_HTTP__ALLOW_PRIVATE_WEBHOOKS", "true");
    start_command(cmd, false)
}

/// Runs an operator command; returns (exit code, stdout+stderr).
fn op(args: &[&str], database_url: &str) -> (Option<i32>, String) {
    let mut cmd = operator_command(args, database_url);
    cmd.env("OWNERSHIP_MASTER_KEY", master_key());
    run_to_end(cmd)
}

/// The first JSON document in a command's output.
fn json_of(out: &str) -> Value {
    let at = out.find('{').unwrap_or_else(|| panic!("no JSON in: {out}"));
    serde_json::Deserializer::from_str(&out[at..])
        .into_iter()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no JSON in: {out}"))
}

/// `audit verify` passes; returns how many events the chain holds.
fn audit_intact(database_url: &str) -> u64 {
    let (code, out) = op(&["--json", "audit", "verify"], database_url);
    assert_eq!(code, Some(0), "audit verify: {out}");
    let verdict = json_of(&out);
    assert_eq!(verdict["state"], "intact", "{out}");
    verdict["events"].as_u64().expect("events")
}

/// The raw store at `url`, on its own connection.
async fn open(url: &str) -> Arc<dyn Store> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    if url.starts_with("postgres") {
        Arc::new(PgStore::connect(url, clock).await.unwrap())
    } else {
        Arc::new(LibsqlStore::open_file(Path::new(url), clock).await.unwrap())
    }
}

fn provisioned_token(i: usize) -> String {
    format!("backup-static-token-{i:06}-of-the-provisioned-table")
}

/// Everything a populated store holds that a test checks afterwards.
#[derive(Debug, Clone)]
struct Fixture {
    owner: String,
    admin: String,
    member: String,
    telegram: String,
    resource_token: String,
    secret_value: String,
    provisioned: usize,
}

impl Fixture {
    /// Every bearer token (user and service) it knows.
    fn tokens(&self) -> Vec<String> {
        let mut all = vec![
            self.owner.clone(),
            self.admin.clone(),
            self.member.clone(),
            self.telegram.clone(),
        ];
        all.extend((0..self.provisioned).map(provisioned_token));
        all
    }
}

/// Creates and populates a store at `url` and leaves a server running on it: every
/// table gets rows (users of each role, `provisioned` tokens applied through the store
/// API, a secret, a resource credential with a grant, a webhook and its deliveries, a
/// binding and a pending pairing request, the pairing key setting, the audit log).
async fn populate(url: &str, provisioned: usize) -> (Serve, Fixture) {
    let (code, out) = op(&["migrate"], url);
    assert_eq!(code, Some(0), "migrate: {out}");
    {
        let store = open(url).await;
        let table: Vec<Value> = (0..provisioned)
            .map(|i| {
                json!({
                    "token": provisioned_token(i),
                    "user_id": format!("p{:02}", i % 100),
                })
            })
            .collect();
        service::provision(
            store.as_ref(),
            &AdminScope::operator("tester"),
            &Value::Array(table).to_string(),
            false,
        )
        .await
        .unwrap();
        // A passkey row (registering a real one takes a browser: see console_browser),
        // written before an operator command keys the audit chain.
        let admin = AdminScope::operator("tester");
        let p00 = ownership_core::OwnerId::parse("p00").unwrap();
        let scope = OwnerScope::for_operator(&admin, p00).unwrap();
        store
            .register_passkey(
                &scope,
                NewPasskey {
                    credential_id: CredentialId::parse("q83vEjRWeJA").unwrap(),
                    label: PasskeyLabel::parse("backup test key").unwrap(),
                    credential: "{\"credential\":\"opaque to the store\"}".into(),
                    sign_count: 0,
                },
            )
            .await
            .unwrap();
    }
    let (code, out) = op(&["users", "add", "root", "--role", "owner"], url);
    assert_eq!(code, Some(0), "users add: {out}");
    let owner = out
        .split_whitespace()
        .find(|w| w.starts_with("own_u_"))
        .unwrap_or_else(|| panic!("no token in: {out}"))
        .to_owned();
    let (code, out) = op(
        &[
            "users",
            "link-oidc",
            "root",
            "--issuer",
            "https://idp.example",
            "--subject",
            "root-at-idp",
        ],
        url,
    );
    assert_eq!(code, Some(0), "users link-oidc: {out}");

    let server = serve(url);
    let base = server.base.clone();
    let http = http();
    let add_user = |id: &'static str, role: &'static str| {
        let (http, base, owner) = (http.clone(), base.clone(), owner.clone());
        async move {
            let r = call(
                &http,
                &base,
                "POST",
                "/v1/admin/users",
                Some(&owner),
                Some(json!({"user_id": id, "role": role})),
            )
            .await;
            assert_eq!(r.status, 201, "add {id}: {r:?}");
            r.body["token"].as_str().unwrap().to_owned()
        }
    };
    let admin = add_user("adm", "admin").await;
    let member = add_user("mem", "member").await;

    let r = call(
        &http,
        &base,
        "PUT",
        "/v1/me/webhook",
        Some(&owner),
        Some(json!({"url": "http://127.0.0.1:9/hook"})),
    )
    .await;
    assert_eq!(r.status, 201, "webhook: {r:?}");
    let secret_value = "the database password, sealed".to_owned();
    let r = call(
        &http,
        &base,
        "PUT",
        "/v1/me/secrets/db.password",
        Some(&owner),
        Some(json!({"value": secret_value})),
    )
    .await;
    assert!(r.status == 201 || r.status == 200, "secret: {r:?}");
    let r = call(
        &http,
        &base,
        "POST",
        "/v1/me/resources",
        Some(&owner),
        Some(json!({"kind": "job", "external_ref": "build-42", "grants": ["db.password"]})),
    )
    .await;
    assert_eq!(r.status, 201, "resource: {r:?}");
    let resource_token = r.body["token"].as_str().unwrap().to_owned();
    let r = call(
        &http,
        &base,
        "POST",
        "/v1/admin/service-tokens",
        Some(&owner),
        Some(json!({"kinds": ["channel:telegram"], "label": "adapter"})),
    )
    .await;
    assert_eq!(r.status, 201, "service token: {r:?}");
    let telegram = r.body["token"].as_str().unwrap().to_owned();
    for external in ["41", "42"] {
        let r = call(
            &http,
            &base,
            "POST",
            "/v1/channels/telegram/pairing-requests",
            Some(&telegram),
            Some(json!({"external_id": external})),
        )
        .await;
        assert_eq!(r.status, 201, "pairing request: {r:?}");
        if external == "42" {
            let code = r.body["code"].as_str().unwrap().to_owned();
            let r = call(
                &http,
                &base,
                "POST",
                "/v1/pairing/telegram/redeem",
                Some(&member),
                Some(json!({"code": code})),
            )
            .await;
            assert_eq!(r.status, 200, "redeem: {r:?}");
        }
    }
    // The dispatcher enqueues deliveries for the owner's events behind the log.
    let start = Instant::now();
    loop {
        let r = call(
            &http,
            &base,
            "GET",
            "/v1/me/webhook/deliveries",
            Some(&owner),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "deliveries: {r:?}");
        if r.body["deliveries"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "no webhook delivery was enqueued: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (
        server,
        Fixture {
            owner,
            admin,
            member,
            telegram,
            resource_token,
            secret_value,
            provisioned,
        },
    )
}

/// Through a server on a restored or copied store: every token answers `/v1/me`, the
/// resource credential opens its granted secret, the binding and the pending request
/// are there, and the webhook is set.
async fn check_works(base: &str, f: &Fixture, also: &[String]) {
    let http = http();
    let tokens: Vec<String> = f.tokens().into_iter().chain(also.iter().cloned()).collect();
    let failed = Arc::new(AtomicUsize::new(0));
    let chunks: Vec<Vec<String>> = tokens
        .chunks(tokens.len().div_ceil(8).max(1))
        .map(<[String]>::to_vec)
        .collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let (http, base, failed) = (http.clone(), base.to_owned(), Arc::clone(&failed));
        tasks.push(tokio::spawn(async move {
            for t in chunk {
                // A channel service token has no `/v1/me`: it answers its own route
                // (the identity lookup, checked below) and is refused as a stranger
                // (401) or as the wrong kind (403) elsewhere, so 403 means it
                // authenticated.
                let r = if t.starts_with("own_s_") {
                    let mut r = call(&http, &base, "GET", "/v1/me", Some(&t), None).await;
                    if r.status == 403 {
                        r.status = 200;
                    }
                    r
                } else {
                    call(&http, &base, "GET", "/v1/me", Some(&t), None).await
                };
                if r.status != 200 {
                    failed.fetch_add(1, Ordering::SeqCst);
                    eprintln!("a token no longer authenticates: {} {r:?}", &t[..10]);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "of {} tokens",
        tokens.len()
    );

    let r = call(
        &http,
        base,
        "GET",
        "/v1/resource/credentials",
        Some(&f.resource_token),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "credentials: {r:?}");
    assert!(
        r.body.to_string().contains(&f.secret_value),
        "the secret did not open: {r:?}"
    );
    let r = call(
        &http,
        base,
        "GET",
        "/v1/channels/telegram/identities/42",
        Some(&f.telegram),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "binding: {r:?}");
    assert_eq!(r.body["owner_id"], "mem", "{r:?}");
    let r = call(
        &http,
        base,
        "GET",
        "/v1/admin/pairing/telegram",
        Some(&f.owner),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "pending: {r:?}");
    assert!(
        r.body.to_string().contains("\"41\""),
        "pending request lost: {r:?}"
    );
    let r = call(&http, base, "GET", "/v1/me/webhook", Some(&f.owner), None).await;
    assert_eq!(r.status, 200, "webhook: {r:?}");
    assert_eq!(r.body["url"], "http://127.0.0.1:9/hook");
}

// ---------------------------------------------------------------------------------------
// 1. Backup while 16 clients mutate; restore; everything works again
// ---------------------------------------------------------------------------------------

/// A client: creates tokens and stores secrets in a loop until told to stop. Returns
/// the tokens acknowledged, each with when its answer arrived.
async fn mutate(
    base: String,
    token: String,
    me: usize,
    stop: Arc<AtomicBool>,
    total: Arc<AtomicUsize>,
) -> Vec<(Instant, String)> {
    let http = http();
    let mut acked = Vec::new();
    let mut round = 0u64;
    while !stop.load(Ordering::SeqCst) {
        round += 1;
        let r = if round.is_multiple_of(2) {
            try_call(
                &http,
                &base,
                "POST",
                "/v1/me/tokens",
                Some(&token),
                Some(json!({"kinds": ["manage", "api"], "label": format!("c{me}-{round}")})),
            )
            .await
        } else {
            try_call(
                &http,
                &base,
                "PUT",
                &format!("/v1/me/secrets/S{round}"),
                Some(&token),
                Some(json!({"value": format!("v{me}-{round}")})),
            )
            .await
        };
        let Ok(r) = r else { break };
        if r.status == 201 || r.status == 200 {
            total.fetch_add(1, Ordering::SeqCst);
            if let Some(t) = r.body["token"].as_str() {
                acked.push((Instant::now(), t.to_owned()));
            }
        } else if r.status == 429 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        } else {
            panic!("client {me}: {r:?}");
        }
    }
    acked
}

async fn backup_while_serving(url: &str, restored_url: &str, dir: &Path) {
    let (server, fixture) = populate(url, 10_000).await;
    let base = server.base.clone();
    let http = http();
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let r = call(
            &http,
            &base,
            "POST",
            "/v1/admin/users",
            Some(&fixture.owner),
            Some(json!({"user_id": format!("c{i}"), "role": "admin"})),
        )
        .await;
        assert_eq!(r.status, 201, "client user: {r:?}");
        clients.push(r.body["token"].as_str().unwrap().to_owned());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, t)| {
            tokio::spawn(mutate(
                base.clone(),
                t.clone(),
                i,
                Arc::clone(&stop),
                Arc::clone(&total),
            ))
        })
        .collect();
    let start = Instant::now();
    while total.load(Ordering::SeqCst) < 100 {
        if let Some(done) = tasks.iter().position(tokio::task::JoinHandle::is_finished) {
            let mut tasks = tasks;
            tasks.swap_remove(done).await.unwrap();
            panic!("a client stopped early");
        }
        assert!(start.elapsed() < PATIENCE, "the clients made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let file = dir.join("store.backup");
    let file_arg = file.to_str().unwrap().to_owned();
    let began = Instant::now();
    let during_before = total.load(Ordering::SeqCst);
    let (code, out) = op(&["--json", "backup", &file_arg], url);
    let during = total.load(Ordering::SeqCst) - during_before;
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert_eq!(code, Some(0), "backup: {out}");
    let backup = json_of(&out);
    eprintln!(
        "backup of {} rows while the clients made {during} mutations",
        backup["total_rows"]
    );
    assert!(during > 0, "no mutation ran during the backup");
    // `settings` holds a generated pairing-code key only when no master key is given;
    // this store has one (secrets need it), so that table alone is empty.
    for t in backup["tables"].as_array().unwrap() {
        assert!(
            t["table"] == "settings" || t["rows"].as_u64().unwrap() > 0,
            "an empty table in the backup: {t}"
        );
    }
    assert!(file.exists() && !dir.join("store.backup.partial").exists());
    drop(server);

    let (code, out) = op(&["--json", "restore", &file_arg], restored_url);
    assert_eq!(code, Some(0), "restore: {out}");
    let restored = json_of(&out);
    assert_eq!(restored["audit_head"], backup["audit_head"], "{out}");
    // Every event of the backup (of every chain: the system chain's head alone no longer
    // counts them) is restored, and every chain verifies.
    let events = audit_intact(restored_url);
    let backed_up = backup["tables"].as_array().unwrap().iter();
    let mut rows = backed_up
        .filter(|t| t["table"] == "audit_events")
        .map(|t| t["rows"].as_u64().unwrap());
    assert_eq!(Some(events), rows.next(), "{out}");

    let server = serve(restored_url);
    let before: Vec<String> = clients
        .into_iter()
        .chain(
            acked
                .into_iter()
                .filter(|(at, _)| *at < began)
                .map(|(_, t)| t),
        )
        .collect();
    check_works(&server.base, &fixture, &before).await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_libsql_backup_taken_under_load_restores_everything() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ownership.db");
    let restored = dir.path().join("restored.db");
    backup_while_serving(db.to_str().unwrap(), restored.to_str().unwrap(), dir.path()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_backup_taken_under_load_restores_everything() {
    let dir = tempfile::tempdir().unwrap();
    backup_while_serving(&pg_url(), &pg_url(), dir.path()).await;
}

// ---------------------------------------------------------------------------------------
// 2. libSQL → PostgreSQL → libSQL answers every read the same
// ---------------------------------------------------------------------------------------

/// Each item's `Debug` text, sorted.
fn sorted<T: std::fmt::Debug>(items: Vec<T>) -> Vec<String> {
    let mut out: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    out.sort();
    out
}

/// Everything the ports answer about a store, as text.
async fn dump(store: &dyn Store) -> Vec<String> {
    let admin = AdminScope::operator("tester");
    let mut out = Vec::new();
    let mut users = Vec::new();
    let mut page = PageRequest {
        after: None,
        limit: 100,
    };
    loop {
        let got = store.list_users(&admin, &page).await.unwrap();
        users.extend(got.items);
        match got.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    for user in &users {
        out.push(format!("{user:?}"));
        let scope = OwnerScope::for_operator(&admin, user.id.clone()).unwrap();
        // Listings order ties (equal creation times) as each backend finds them: compare
        // their items as sets.
        out.push(format!(
            "tokens {:?}",
            sorted(store.list_tokens(&scope).await.unwrap())
        ));
        out.push(format!(
            "identities {:?}",
            sorted(store.list_identities(&scope).await.unwrap())
        ));
        out.push(format!(
            "secrets {:?}",
            sorted(store.list_secrets(&scope).await.unwrap())
        ));
        out.push(format!(
            "resources {:?}",
            sorted(store.list_resources(&scope).await.unwrap())
        ));
        out.push(format!(
            "webhook {:?}",
            store.get_endpoint(&scope).await.unwrap()
        ));
        out.push(format!(
            "passkeys {:?}",
            sorted(store.list_passkeys(&scope).await.unwrap())
        ));
        let deliveries = store
            .list_deliveries(
                &scope,
                &PageRequest {
                    after: None,
                    limit: 500,
                },
            )
            .await
            .unwrap();
        out.push(format!("deliveries {:?}", sorted(deliveries.items)));
    }
    out.push(format!(
        "pending {:?}",
        store
            .list_pending(&admin, &ChannelName::parse("telegram").unwrap())
            .await
            .map(sorted)
            .unwrap()
    ));
    let mut page = PageRequest {
        after: None,
        limit: 200,
    };
    loop {
        let got = store
            .list_events(AuditFilter::All(&admin), &page)
            .await
            .unwrap();
        out.extend(got.items.iter().map(|e| format!("{e:?}")));
        match got.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn libsql_to_postgres_to_libsql_answers_every_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.db");
    let last = dir.path().join("last.db");
    let (first, last) = (first.to_str().unwrap(), last.to_str().unwrap());
    let pg = pg_url();
    let (server, fixture) = populate(first, 2_000).await;
    drop(server);

    let (code, out) = op(
        &["--json", "store", "copy", "--from", first, "--to", &pg],
        first,
    );
    assert_eq!(code, Some(0), "copy to PostgreSQL: {out}");
    let there = json_of(&out);
    let (code, out) = op(
        &["--json", "store", "copy", "--from", &pg, "--to", last],
        first,
    );
    assert_eq!(code, Some(0), "copy back: {out}");
    let back = json_of(&out);
    assert_eq!(there["audit_head"], back["audit_head"]);
    assert_eq!(there["tables"], back["tables"]);
    assert!(out.contains("copied 2"), "no progress lines: {out}");

    let a = dump(open(first).await.as_ref()).await;
    let b = dump(open(&pg).await.as_ref()).await;
    let c = dump(open(last).await.as_ref()).await;
    assert!(a.len() > 100, "{}", a.len());
    assert_eq!(a, b, "PostgreSQL answers differently");
    assert_eq!(a, c, "the libSQL copy answers differently");
    audit_intact(last);
    audit_intact(&pg);

    // Tokens through the ports, then a server on the final copy.
    let store = open(last).await;
    for t in fixture.tokens() {
        service::authenticate(store.as_ref(), &t, true)
            .await
            .unwrap_or_else(|e| panic!("a token does not authenticate: {e}"));
    }
    let server = serve(last);
    check_works(&server.base, &fixture, &[]).await;
    drop(server);
}

// ---------------------------------------------------------------------------------------
// 3. Refusals write nothing
// ---------------------------------------------------------------------------------------

fn count_rows(url: &str, table: &str) -> i64 {
    if url.starts_with("postgres") {
        let cluster = PgCluster::shared().unwrap();
        let exists = cluster
            .psql(url, &format!("SELECT to_regclass('{table}') IS NOT NULL"))
            .unwrap();
        if exists != "t" {
            return -1;
        }
        cluster
            .psql(url, &format!("SELECT count(*) FROM {table}"))
            .unwrap()
            .parse()
            .unwrap()
    } else {
        let rt = tokio::runtime::Handle::current();
        let url = url.to_owned();
        let table = table.to_owned();
        std::thread::spawn(move || {
            rt.block_on(async move {
                let s = LibsqlStore::open_file(Path::new(&url), Arc::new(SystemClock))
                    .await
                    .unwrap();
                s.query_count_for_tests(&format!("SELECT count(*) FROM {table}"))
                    .await
                    .unwrap()
            })
        })
        .join()
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    let src = src.to_str().unwrap();
    let (server, _fixture) = populate(src, 500).await;
    drop(server);
    let backup = dir.path().join("good.backup");
    let backup_arg = backup.to_str().unwrap();
    let (code, out) = op(&["backup", backup_arg], src);
    assert_eq!(code, Some(0), "backup: {out}");
    let src_events = audit_intact(src);

    // A non-empty target, on each backend: refused, unchanged.
    let busy_lib = dir.path().join("busy.db");
    let busy_lib = busy_lib.to_str().unwrap().to_owned();
    for busy in [busy_lib, pg_url()] {
        let (code, out) = op(&["migrate"], &busy);
        assert_eq!(code, Some(0), "{out}");
        let (code, out) = op(&["users", "add", "someone"], &busy);
        assert_eq!(code, Some(0), "{out}");
        let before = (
            count_rows(&busy, "users"),
            count_rows(&busy, "tokens"),
            count_rows(&busy, "audit_events"),
        );
        let (code, out) = op(&["store", "copy", "--from", src, "--to", &busy], src);
        assert_eq!(code, Some(1), "{out}");
        assert!(
            out.contains("error: the target store is not empty"),
            "{out}"
        );
        let (code, out) = op(&["restore", backup_arg], &busy);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("not empty"), "{out}");
        let after = (
            count_rows(&busy, "users"),
            count_rows(&busy, "tokens"),
            count_rows(&busy, "audit_events"),
        );
        assert_eq!(before, after, "a refused copy changed the target");
    }

    // A truncated and an altered backup: refused before anything is created or migrated.
    let text = std::fs::read_to_string(&backup).unwrap();
    let truncated = dir.path().join("truncated.backup");
    std::fs::write(&truncated, &text[..text.len() * 2 / 3]).unwrap();
    let cut_at_line = dir.path().join("cut.backup");
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&cut_at_line, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let altered = dir.path().join("altered.backup");
    assert!(text.contains("\"member\""));
    std::fs::write(&altered, text.replacen("\"member\"", "\"admin\"", 1)).unwrap();
    let not_json = dir.path().join("garbage.backup");
    std::fs::write(
        &not_json,
        lines[0].to_owned() + "\n{\"table\":\"users\"}\n[1,2\n",
    )
    .unwrap();
    for (file, why) in [
        (&truncated, "truncated"),
        (&cut_at_line, "truncated"),
        (&altered, "checksum"),
        (&not_json, "not JSON"),
    ] {
        for target in [
            dir.path().join("fresh.db").to_str().unwrap().to_owned(),
            pg_url(),
        ] {
            let (code, out) = op(&["restore", file.to_str().unwrap()], &target);
            assert_eq!(code, Some(1), "{out}");
            assert!(
                out.contains("is not a valid backup") && out.contains(why),
                "{why}: {out}"
            );
            assert!(out.contains("nothing was written"), "{out}");
            if target.starts_with("postgres") {
                assert_eq!(
                    count_rows(&target, "users"),
                    -1,
                    "the PostgreSQL target was migrated"
                );
            } else {
                assert!(!Path::new(&target).exists(), "a libSQL file was created");
            }
        }
    }

    // A backup from a newer schema than this build knows: refused, nothing created.
    let future = dir.path().join("future.backup");
    let current = format!(
        "\"schema_version\":{}",
        ownership_store::transfer::latest_schema_version()
    );
    assert!(text.contains(&current));
    std::fs::write(&future, text.replacen(&current, "\"schema_version\":99", 1)).unwrap();
    let target = dir.path().join("future.db");
    let (code, out) = op(
        &["restore", future.to_str().unwrap()],
        target.to_str().unwrap(),
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("schema version 99 is not one this build knows"),
        "{out}"
    );
    assert!(!target.exists(), "a libSQL file was created");

    // A full disk: the backup fails clearly, leaves neither file, and the source is intact.
    let full = dir.path().join("full.backup");
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        r#"trap '' XFSZ; exec "$@""#,
        "sh",
        "prlimit",
        "--fsize=40000",
        "--",
    ])
    .arg(ownership_bin())
    .args(["backup", full.to_str().unwrap(), "--database-url", src])
    .env_remove("DATABASE_URL")
    .env_remove("RUST_LOG")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    assert!(
        text.len() > 80_000,
        "the source is too small to fill the disk: {}",
        text.len()
    );
    let (code, out) = run_to_end(cmd);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("error: cannot write"), "{out}");
    assert!(!full.exists(), "a backup file exists after a failed backup");
    assert!(
        !dir.path().join("full.backup.partial").exists(),
        "the partial file was left"
    );
    assert_eq!(audit_intact(src), src_events);
    let (code, out) = op(
        &["restore", backup_arg],
        dir.path().join("proof.db").to_str().unwrap(),
    );
    assert_eq!(code, Some(0), "the earlier backup still restores: {out}");
}

// ---------------------------------------------------------------------------------------
// 4. Memory (the numbers: --nocapture)
// ---------------------------------------------------------------------------------------

/// Runs `store copy` of a libSQL store holding `tokens` tokens into a fresh PostgreSQL
/// database; returns the peak resident set (VmHWM, kB) of the process.
async fn copy_peak_kb(dir: &Path, tokens: usize) -> u64 {
    let db = dir.join(format!("mem-{tokens}.db"));
    let db_arg = db.to_str().unwrap().to_owned();
    let (code, out) = op(&["migrate"], &db_arg);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = op(&["users", "add", "alice"], &db_arg);
    assert_eq!(code, Some(0), "{out}");
    let store = LibsqlStore::open_file(&db, Arc::new(SystemClock))
        .await
        .unwrap();
    store
        .execute_batch_for_tests(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {tokens}) \
             INSERT INTO tokens (id, owner_id, digest, kinds, label, display_prefix, origin, created_at) \
             SELECT 'tok' || i, 'alice', randomblob(32), 'manage,api', 'label ' || i, 'own_u_x', 'issued', 1767268800000000 FROM n"
        ))
        .await
        .unwrap();
    drop(store);
    let target = pg_url();
    let mut child = Command::new(ownership_bin())
        .args(["store", "copy", "--from", &db_arg, "--to", &target])
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            peak = peak.max(line.split_whitespace().nth(1).unwrap().parse().unwrap());
        }
        if let Some(exit) = child.try_wait().unwrap() {
            assert!(exit.success(), "store copy failed");
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!(
        "store copy of {tokens} tokens: peak RSS {peak} kB in {:?}",
        started.elapsed()
    );
    assert_eq!(
        count_rows(&target, "tokens"),
        i64::try_from(tokens).unwrap() + 1
    );
    peak
}

#[tokio::test(flavor = "multi_thread")]
async fn store_copy_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let small = copy_peak_kb(dir.path(), 10_000).await;
    let large = copy_peak_kb(dir.path(), 100_000).await;
    println!("peak RSS of store copy: 10k tokens {small} kB, 100k tokens {large} kB");
    assert!(
        large < small * 2,
        "100k tokens took {large} kB, 10k {small} kB"
    );
}
