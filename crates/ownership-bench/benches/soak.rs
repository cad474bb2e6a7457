//! The soak run (`cargo xtask soak`): mixed load against the real `ownership serve`
//! (release build) on one store, for `OWNERSHIP_SOAK_MINUTES` minutes, at about
//! `OWNERSHIP_SOAK_RATE` operations per second:
//!
//! - authentications (`GET /v1/me`) spread over 10k identities, each a user of its own;
//! - pairing: a channel's service token requests a code, a user redeems it;
//! - the Owner mints a token, rotates it and revokes the replacement;
//! - every one of those mutations is an event of the Owner's, delivered by the webhook
//!   worker to a receiver in this process, on loopback;
//! - event streams (`GET /v1/me/events`) opened, read for a while and closed.
//!
//! Every minute it prints and records the server's resident memory (VmRSS) and open file
//! descriptors, p50/p99 per operation and the error count, into
//! `$OWNERSHIP_SOAK_DIR/soak-<store>.csv`. At the end it stops the server with SIGTERM
//! (which must exit 0), verifies the audit chain with `ownership audit verify`, and checks
//! that every acknowledged mutation is in the store (each minted token listed, each
//! rotated or revoked one revoked). Nothing here judges a timing: it fails on errors, a
//! broken chain or a lost mutation only.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "a benchmark binary"
)]

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use ownership_tests::pg::PgCluster;
use ownership_tests::serve::{Serve, operator_command, run_to_end, serve_command, start_command};
use rand::rngs::SmallRng;
use rand::{RngExt as _, SeedableRng as _};
use serde_json::{Value, json};

const IDENTITIES: usize = 10_000;
const WORKERS: usize = 16;
const STREAMS: usize = 4;
/// A fixed master key (base64 of 32 bytes): webhooks need one on every store.
const MASTER_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const OPS: [&str; 7] = [
    "auth",
    "pair_request",
    "pair_redeem",
    "mint",
    "rotate",
    "revoke",
    "stream_open",
];

/// Latencies (µs) per operation since the last report, and the error count.
#[derive(Default)]
struct Stats {
    latencies: Mutex<BTreeMap<&'static str, Vec<u64>>>,
    errors: AtomicU64,
    ops: AtomicU64,
}

impl Stats {
    fn record(&self, op: &'static str, started: Instant, ok: bool, detail: &str) {
        self.ops.fetch_add(1, Ordering::Relaxed);
        if ok {
            let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.latencies
                .lock()
                .unwrap()
                .entry(op)
                .or_default()
                .push(us);
        } else {
            let n = self.errors.fetch_add(1, Ordering::Relaxed);
            if n < 20 {
                eprintln!("soak: {op} failed: {detail}");
            }
        }
    }
}

/// What the Owner's mutations were acknowledged as.
#[derive(Default)]
struct Acknowledged {
    minted: HashSet<String>,
    revoked: HashSet<String>,
}

struct Shared {
    base: String,
    http: reqwest::Client,
    owner: String,
    channel: String,
    /// The channel's service token, which asks for pairing codes.
    channel_token: String,
    users: Vec<String>,
    stats: Stats,
    acked: Mutex<Acknowledged>,
    stop: AtomicBool,
}

async fn call(
    s: &Shared,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = s
        .http
        .request(method, format!("{}{path}", s.base))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let body = r.json::<Value>().await.unwrap_or(Value::Null);
            (status, body)
        }
        Err(e) => (0, Value::String(e.to_string())),
    }
}

/// One operation, timed and recorded; returns the body when the status was `want`.
async fn op(
    s: &Shared,
    name: &'static str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
    want: u16,
) -> Option<Value> {
    let started = Instant::now();
    let (status, body) = call(s, method, path, token, body).await;
    let ok = status == want;
    s.stats.record(
        name,
        started,
        ok,
        &format!("{method} {path}: {status} {body}"),
    );
    ok.then_some(body)
}

async fn pairing(s: &Shared, rng: &mut SmallRng, serial: u64) {
    let path = format!("/v1/channels/{}/pairing-requests", s.channel);
    let external = format!("ext-{serial}");
    let Some(code) = op(
        s,
        "pair_request",
        "POST",
        &path,
        &s.channel_token,
        Some(json!({ "external_id": external })),
        201,
    )
    .await
    else {
        return;
    };
    let code = code["code"].as_str().unwrap_or("").to_owned();
    let user = &s.users[rng.random_range(..s.users.len())];
    op(
        s,
        "pair_redeem",
        "POST",
        &format!("/v1/pairing/{}/redeem", s.channel),
        user,
        Some(json!({ "code": code })),
        200,
    )
    .await;
}

async fn mint_rotate_revoke(s: &Shared) {
    let Some(minted) = op(
        s,
        "mint",
        "POST",
        "/v1/me/tokens",
        &s.owner,
        Some(json!({ "kinds": ["api"], "label": "soak" })),
        201,
    )
    .await
    else {
        return;
    };
    let id = minted["id"].as_str().unwrap_or("").to_owned();
    s.acked.lock().unwrap().minted.insert(id.clone());
    let Some(rotated) = op(
        s,
        "rotate",
        "POST",
        &format!("/v1/me/tokens/{id}/rotate"),
        &s.owner,
        Some(json!({})),
        201,
    )
    .await
    else {
        return;
    };
    let new_id = rotated["id"].as_str().unwrap_or("").to_owned();
    {
        let mut acked = s.acked.lock().unwrap();
        acked.revoked.insert(id);
        acked.minted.insert(new_id.clone());
    }
    if op(
        s,
        "revoke",
        "DELETE",
        &format!("/v1/me/tokens/{new_id}"),
        &s.owner,
        None,
        204,
    )
    .await
    .is_some()
    {
        s.acked.lock().unwrap().revoked.insert(new_id);
    }
}

/// One worker: operations at `per_second`, mostly authentications.
async fn worker(s: Arc<Shared>, index: usize, per_second: f64) {
    let mut rng = SmallRng::seed_from_u64(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut serial = 0_u64;
    while !s.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        serial += 1;
        match rng.random_range(..100_u32) {
            0..80 => {
                let user = &s.users[rng.random_range(..s.users.len())];
                op(&s, "auth", "GET", "/v1/me", user, None, 200).await;
            }
            80..90 => pairing(&s, &mut rng, serial * WORKERS as u64 + index as u64).await,
            _ => mint_rotate_revoke(&s).await,
        }
    }
}

/// Opens an event stream as a random user, reads it for one to three seconds, closes it.
async fn streams(s: Arc<Shared>, index: usize) {
    let mut rng = SmallRng::seed_from_u64(0xD1B5_4A32_D192_ED03 ^ (index as u64 + 1));
    while !s.stop.load(Ordering::Relaxed) {
        let user = &s.users[rng.random_range(..s.users.len())];
        let started = Instant::now();
        let response = s
            .http
            .get(format!("{}/v1/me/events", s.base))
            .bearer_auth(user)
            .send()
            .await;
        match response {
            Ok(mut r) if r.status() == 200 => {
                s.stats.record("stream_open", started, true, "");
                let open_for = Duration::from_millis(1000 + rng.random_range(..2000_u64));
                let _ = tokio::time::timeout(open_for, async {
                    while let Ok(Some(_)) = r.chunk().await {}
                })
                .await;
            }
            Ok(r) => {
                let status = r.status();
                s.stats
                    .record("stream_open", started, false, &format!("status {status}"));
            }
            Err(e) => s
                .stats
                .record("stream_open", started, false, &e.to_string()),
        }
    }
}

/// The webhook receiver: answers 200 to every POST and counts them.
async fn receiver(s: Arc<AtomicU64>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let s = Arc::clone(&s);
            async move {
                s.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/hook")
}

/// `(VmRSS in KiB, open file descriptors)` of `pid`.
fn process_usage(pid: u32) -> (u64, usize) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
    (rss, fds)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// One CSV row for the minute that just ended (and prints it).
fn report(s: &Shared, pid: u32, minute: u64, delivered: u64) -> String {
    let taken = std::mem::take(&mut *s.stats.latencies.lock().unwrap());
    let (rss, fds) = process_usage(pid);
    let errors = s.stats.errors.load(Ordering::Relaxed);
    let ops = s.stats.ops.load(Ordering::Relaxed);
    // The machine's 1-minute load average: the server shares its cores with the load
    // generator and with whatever else runs.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "NaN".into());
    let mut row = format!("{minute},{rss},{fds},{errors},{ops},{delivered},{load}");
    let mut line = format!(
        "minute {minute}: rss {:.1} MiB, fds {fds}, ops {ops}, errors {errors}, webhooks {delivered}, load {load}",
        rss as f64 / 1024.0
    );
    for name in OPS {
        let mut v = taken.get(name).cloned().unwrap_or_default();
        v.sort_unstable();
        let (p50, p99) = (percentile(&v, 50.0), percentile(&v, 99.0));
        let _ = write!(row, ",{p50:.3},{p99:.3}");
        let _ = write!(
            line,
            "; {name} p50 {p50:.2} ms p99 {p99:.2} ms (n {})",
            v.len()
        );
    }
    println!("{line}");
    row
}

fn csv_header() -> String {
    let mut h = String::from("minute,rss_kib,fds,errors,ops,webhooks_delivered,load1");
    for name in OPS {
        let _ = write!(h, ",{name}_p50_ms,{name}_p99_ms");
    }
    h
}

async fn setup(serve: &Serve, http: &reqwest::Client, hook: &str) -> Shared {
    let owner = serve.token.clone().expect("the first Owner's token");
    let mut s = Shared {
        base: serve.base.clone(),
        http: http.clone(),
        owner: owner.clone(),
        channel: "soak".into(),
        channel_token: String::new(),
        users: Vec::new(),
        stats: Stats::default(),
        acked: Mutex::new(Acknowledged::default()),
        stop: AtomicBool::new(false),
    };
    let (status, body) = call(
        &s,
        "PUT",
        "/v1/me/webhook",
        &owner,
        Some(json!({ "url": hook })),
    )
    .await;
    assert!(
        status == 200 || status == 201,
        "setting the webhook: {status} {body}"
    );
    let (status, body) = call(
        &s,
        "POST",
        "/v1/admin/service-tokens",
        &owner,
        Some(json!({ "kinds": ["channel:soak"] })),
    )
    .await;
    assert_eq!(status, 201, "service token: {body}");
    s.channel_token = body["token"].as_str().unwrap().to_owned();
    // 10k users, each with a token of its own, created 16 at a time.
    let s_ref = &s;
    let made: Vec<String> = futures_util::stream::iter(0..IDENTITIES)
        .map(|i| async move {
            let (status, body) = call(
                s_ref,
                "POST",
                "/v1/admin/users",
                &s_ref.owner,
                Some(json!({ "user_id": format!("soak-{i}") })),
            )
            .await;
            assert_eq!(status, 201, "user {i}: {body}");
            body["token"].as_str().unwrap().to_owned()
        })
        .buffered(WORKERS)
        .collect()
        .await;
    s.users = made;
    s
}

fn main() {
    let minutes: u64 = std::env::var("OWNERSHIP_SOAK_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let store = std::env::var("OWNERSHIP_SOAK_STORE").unwrap_or_else(|_| "libsql".into());
    let rate: f64 = std::env::var("OWNERSHIP_SOAK_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400.0);
    let dir = std::path::PathBuf::from(
        std::env::var("OWNERSHIP_SOAK_DIR").unwrap_or_else(|_| "target/soak".into()),
    );
    std::fs::create_dir_all(&dir).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let failures = runtime.block_on(run(minutes, &store, rate, &dir));
    if !failures.is_empty() {
        eprintln!("soak on {store} FAILED:\n- {}", failures.join("\n- "));
        std::process::exit(1);
    }
    println!("soak on {store}: no errors, audit chain intact, every acknowledged mutation present");
}

async fn run(minutes: u64, store: &str, rate: f64, dir: &std::path::Path) -> Vec<String> {
    let scratch = tempfile_dir(dir, store);
    let url = match store {
        "libsql" => scratch.join("ownership.db").display().to_string(),
        "postgres" => PgCluster::shared()
            .unwrap_or_else(|e| panic!("PostgreSQL: {e}"))
            .fresh_database_url()
            .unwrap(),
        other => panic!("OWNERSHIP_SOAK_STORE must be libsql or postgres, not {other}"),
    };
    let delivered = Arc::new(AtomicU64::new(0));
    let hook = receiver(Arc::clone(&delivered)).await;
    let mut cmd = serve_command(&url);
    cmd.env("OWNERSHIP_MASTER_KEY", MASTER_KEY)
        .env("OWNERSHIP_HTTP__ALLOW_PRIVATE_WEBHOOKS", "true")
        .env("OWNERSHIP_LIMITS__IDENTITY_PER_SECOND", "1000000")
        .env("OWNERSHIP_LIMITS__IDENTITY_BURST", "1000000")
        .env("OWNERSHIP_WEBHOOKS__POLL_INTERVAL_MS", "500")
        // Request lines would fill this process's memory: the server logs warnings, and
        // its own start and stop lines.
        .env("RUST_LOG", "warn,ownership_cli=info");
    let mut serve = start_command(cmd, true);
    let pid = serve.child.id();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    println!(
        "soak on {store}: {minutes} min at ~{rate} ops/s, server pid {pid}; creating {IDENTITIES} users"
    );
    let shared = Arc::new(setup(&serve, &http, &hook).await);
    let mut rows = vec![csv_header(), report(&shared, pid, 0, 0)];
    let mut tasks = Vec::new();
    for i in 0..WORKERS {
        tasks.push(tokio::spawn(worker(
            Arc::clone(&shared),
            i,
            rate / WORKERS as f64,
        )));
    }
    for i in 0..STREAMS {
        tasks.push(tokio::spawn(streams(Arc::clone(&shared), i)));
    }
    let csv = dir.join(format!("soak-{store}.csv"));
    for minute in 1..=minutes {
        tokio::time::sleep(Duration::from_secs(60)).await;
        rows.push(report(
            &shared,
            pid,
            minute,
            delivered.load(Ordering::Relaxed),
        ));
        std::fs::write(&csv, rows.join("\n") + "\n").unwrap();
    }
    shared.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let mut failures = Vec::new();
    let errors = shared.stats.errors.load(Ordering::Relaxed);
    if errors > 0 {
        failures.push(format!("{errors} operations failed"));
    }
    // Let the worker deliver what is queued, then stop the server as an operator would.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent = delivered.load(Ordering::Relaxed);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let stopped = Instant::now();
    let code = loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            break status.code();
        }
        if stopped.elapsed() > Duration::from_secs(30) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    if code != Some(0) {
        failures.push(format!("the server did not exit 0 on SIGTERM: {code:?}"));
    }
    let (code, out) = run_to_end(verify_command(&url, &["--json", "audit", "verify"]));
    if code != Some(0) {
        failures.push(format!("audit verify: exit {code:?}: {out}"));
    }
    let (code, out) = run_to_end(verify_command(
        &url,
        &["--json", "tokens", "list", "--user", "owner"],
    ));
    let lost = match (code, serde_json::from_str::<Value>(&out)) {
        (Some(0), Ok(list)) => lost_mutations(&shared.acked.lock().unwrap(), &list),
        _ => vec![format!("tokens list: exit {code:?}: {out}")],
    };
    let acked = shared.acked.lock().unwrap();
    let summary = format!(
        "store={store}\nminutes={minutes}\nrate={rate}\nidentities={IDENTITIES}\nops={}\nerrors={errors}\nminted={}\nrevoked={}\nwebhooks_delivered={sent}\nlost={}\naudit_chain={}\n",
        shared.stats.ops.load(Ordering::Relaxed),
        acked.minted.len(),
        acked.revoked.len(),
        lost.len(),
        if failures.iter().any(|f| f.starts_with("audit")) {
            "broken"
        } else {
            "intact"
        },
    );
    drop(acked);
    std::fs::write(dir.join(format!("soak-{store}.summary")), &summary).unwrap();
    print!("{summary}");
    failures.extend(lost.into_iter().take(20));
    drop(serve);
    let _ = std::fs::remove_dir_all(&scratch);
    failures
}

fn verify_command(url: &str, args: &[&str]) -> Command {
    let mut cmd = operator_command(args, url);
    cmd.env("OWNERSHIP_MASTER_KEY", MASTER_KEY);
    cmd
}

/// Every acknowledged mint listed, every acknowledged rotation or revocation revoked.
fn lost_mutations(acked: &Acknowledged, list: &Value) -> Vec<String> {
    let tokens: BTreeMap<&str, &Value> = list["tokens"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["id"].as_str().map(|id| (id, t)))
                .collect()
        })
        .unwrap_or_default();
    let mut lost = Vec::new();
    for id in &acked.minted {
        if !tokens.contains_key(id.as_str()) {
            lost.push(format!("minted token {id} is not listed"));
        }
    }
    for id in &acked.revoked {
        if tokens
            .get(id.as_str())
            .is_none_or(|t| t["revoked_at"].is_null())
        {
            lost.push(format!("revoked token {id} is not revoked"));
        }
    }
    lost
}

/// A scratch directory for the libSQL file, under the output directory.
fn tempfile_dir(dir: &std::path::Path, store: &str) -> std::path::PathBuf {
    let scratch = dir.join(format!("scratch-{store}-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    scratch
}
