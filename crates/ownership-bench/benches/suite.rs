//! The benchmark suite behind `cargo xtask bench`. Every measurement is paired with a
//! baseline measured in the same run, and the ratio is what is reported; nothing asserts a
//! timing. Results are printed as machine-readable lines, `BENCH <key> <value>`, which
//! `xtask/src/bench.rs` collects into `docs/benchmarks.md`. The harness is ours, not
//! criterion's or divan's: neither can time two functions in alternating batches or hand
//! its result back (docs/benchmarks.md, "Measurement kit").
//!
//! `OWNERSHIP_BENCH_QUICK=1` shortens every section (and leaves out the 1M-token growth
//! point). An argument (`cargo bench -p ownership-bench -- warm`) runs only the sections
//! whose name contains it: `warm`, `cache`, `growth`, `cold`, `http` (and `http_many`),
//! `pairing`, `memory`, `propagation`.

#![allow(
    clippy::print_stdout,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark binary: it reports on stdout and stops at the first failure"
)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ownership_core::authz::{ChannelScope, OwnerScope, Principal};
use ownership_core::ids::{ChannelName, ExternalId};
use ownership_core::pairing::PairingKey;
use ownership_core::ports::{Clock, PairingPolicy, PairingStore, TokenStore};
use ownership_core::service;
use ownership_core::token::{TokenDigest, TokenFamily, TokenSecret};
use ownership_store::cache::{CacheConfig, Cached};
use ownership_store::libsql::LibsqlStore;
use ownership_store::postgres::PgStore;
use ownership_store::{ManualClock, OsRandom};
use ownership_tests::app::{Backend, spawn_app_with};
use ownership_tests::backends::{libsql_memory, manual_clock, postgres};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom as _;
use rand::{RngExt as _, SeedableRng as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

const OWNER: &str = "bench-owner";

fn main() {
    let quick = std::env::var_os("OWNERSHIP_BENCH_QUICK").is_some_and(|v| v != "0");
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wants = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    // The logging `ownership serve` runs with by default (`info`, JSON), written to a
    // sink: what an operator pays. Not the tests' verbose capture, which records and
    // scans every line.
    assert!(
        ownership_tests::logcheck::disable_capture_for_benchmarks(),
        "the test log capture was installed before the benchmark's logging"
    );
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::sink)
        .json()
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Ok(side) = std::env::var("OWNERSHIP_BENCH_MEMORY") {
        rt.block_on(memory_child(&side, quick));
        return;
    }
    rt.block_on(async {
        report("quick", if quick { 1.0 } else { 0.0 });
        // Each section is its own task, so one that fails (it panics) leaves the others'
        // results standing; the failure is reported as a `BENCH failed.<section>` line.
        if wants("warm") {
            section("warm", tokio::spawn(warm(quick))).await;
        }
        if wants("cache") {
            section(
                "cache",
                tokio::task::spawn_blocking(move || cache_maps(quick)),
            )
            .await;
        }
        if wants("growth") {
            section("growth", tokio::spawn(growth(quick))).await;
        }
        if wants("cold") {
            section("cold_libsql", tokio::spawn(cold_libsql(quick))).await;
            section("cold_postgres", tokio::spawn(cold_postgres(quick))).await;
        }
        if wants("http") {
            section("http", tokio::spawn(http(quick))).await;
        }
        if wants("http_many") {
            section("http_many", tokio::spawn(http_many(quick))).await;
        }
        if wants("pairing") {
            section("pairing", tokio::spawn(pairing(quick))).await;
        }
        if wants("memory") {
            section("memory", tokio::spawn(memory(quick))).await;
        }
        if wants("propagation") {
            section("propagation", tokio::spawn(propagation(quick))).await;
        }
    });
}

async fn section(name: &str, task: tokio::task::JoinHandle<()>) {
    if task.await.is_err() {
        eprintln!("bench section `{name}` failed");
        report(&format!("failed.{name}"), 1.0);
    }
}

/// One result line.
fn report(key: &str, value: f64) {
    println!("BENCH {key} {value:.3}");
}

/// Issued-format tokens: value, digest, public id.
struct Tok {
    secret: String,
    digest: TokenDigest,
    id: String,
}

/// `n` fresh user tokens whose ids are `tok_` + `tag` + 19 hex digits: `tag` must be a hex
/// digit, or the ids would not parse when read back (a stored id is checked like any other).
fn make_tokens(n: usize, tag: char) -> Vec<Tok> {
    assert!(tag.is_ascii_hexdigit(), "a token id tag is a hex digit");
    (0..n)
        .map(|i| {
            let secret = TokenSecret::generate(TokenFamily::User, &mut OsRandom);
            Tok {
                digest: secret.digest(),
                secret: secret.expose().to_owned(),
                id: format!("tok_{tag}{i:019x}"),
            }
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Libsql,
    Postgres,
}

fn seed_owner_sql(d: Dialect) -> String {
    match d {
        Dialect::Libsql => {
            format!(
                "INSERT INTO users (id, role, status, created_at, updated_at) VALUES ('{OWNER}', 'owner', 'active', 0, 0);"
            )
        }
        Dialect::Postgres => {
            format!(
                "INSERT INTO users (id, role, status, created_at, updated_at) VALUES ('{OWNER}', 'owner', 'active', now(), now());"
            )
        }
    }
}

/// `INSERT` statements for `tokens` (kinds `kinds`), in chunks of 500 rows, one transaction.
fn insert_tokens_sql(d: Dialect, tokens: &[Tok], kinds: &str) -> Vec<String> {
    insert_owned_tokens_sql(d, OWNER, tokens, kinds)
}

/// [`insert_tokens_sql`] for tokens of `owner`.
fn insert_owned_tokens_sql(d: Dialect, owner: &str, tokens: &[Tok], kinds: &str) -> Vec<String> {
    tokens
        .chunks(500)
        .map(|chunk| {
            let rows: Vec<String> = chunk
                .iter()
                .map(|t| {
                    let hex = hex::encode(t.digest.as_bytes());
                    match d {
                        Dialect::Libsql => format!(
                            "('{}', '{owner}', X'{hex}', '{kinds}', 'own_u_bnch', 'issued', 0)",
                            t.id
                        ),
                        Dialect::Postgres => format!(
                            "('{}', '{owner}', decode('{hex}', 'hex'), '{kinds}', 'own_u_bnch', 'issued', now())",
                            t.id
                        ),
                    }
                })
                .collect();
            format!(
                "INSERT INTO tokens (id, owner_id, digest, kinds, display_prefix, origin, created_at) VALUES {};",
                rows.join(", ")
            )
        })
        .collect()
}

/// An in-memory libSQL store on a manual clock holding the bench owner and `n` fresh
/// `api,manage` tokens (ids tagged `tag`), with its clock and the tokens.
async fn libsql_with_tokens(n: usize, tag: char) -> (LibsqlStore, Arc<ManualClock>, Vec<Tok>) {
    let clock = manual_clock();
    let store = libsql_memory(Arc::clone(&clock)).await;
    store
        .execute_batch_for_tests(&seed_owner_sql(Dialect::Libsql))
        .await
        .expect("owner");
    let tokens = make_tokens(n, tag);
    libsql_exec(
        &store,
        &insert_tokens_sql(Dialect::Libsql, &tokens, "api,manage"),
    )
    .await;
    (store, clock, tokens)
}

async fn libsql_exec(store: &LibsqlStore, statements: &[String]) {
    for batch in statements.chunks(20) {
        let sql = format!("BEGIN; {} COMMIT;", batch.join("\n"));
        store
            .execute_batch_for_tests(&sql)
            .await
            .expect("libsql seed");
    }
}

async fn pg_exec(store: &PgStore, statements: &[String]) {
    for batch in statements.chunks(20) {
        store
            .execute_batch_for_tests(&batch.join("\n"))
            .await
            .expect("postgres seed");
    }
}

fn sha256(raw: &str) -> [u8; 32] {
    Sha256::digest(raw.as_bytes()).into()
}

/// Best mean (ns per item) of `rounds` passes of `pass` over `items` items.
fn best_of(rounds: usize, items: usize, mut pass: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let start = Instant::now();
        pass();
        let ns = start.elapsed().as_nanos() as f64 / items as f64;
        best = best.min(ns);
    }
    best
}

/// Best mean (ns per call) of each of two sides, timed in `rounds` alternating batches of
/// 100 calls (each call gets its index in the run): drift on a shared machine hits both
/// sides alike.
async fn alternating_best<A, B>(
    rounds: usize,
    mut ours: impl FnMut(usize) -> A,
    mut base: impl FnMut(usize) -> B,
) -> (f64, f64)
where
    A: Future<Output = ()>,
    B: Future<Output = ()>,
{
    const BATCH: usize = 100;
    let (mut best_ours, mut best_base) = (f64::INFINITY, f64::INFINITY);
    for round in 0..rounds {
        let start = Instant::now();
        for k in 0..BATCH {
            ours(round * BATCH + k).await;
        }
        best_ours = best_ours.min(start.elapsed().as_nanos() as f64 / BATCH as f64);
        let start = Instant::now();
        for k in 0..BATCH {
            base(round * BATCH + k).await;
        }
        best_base = best_base.min(start.elapsed().as_nanos() as f64 / BATCH as f64);
    }
    (best_ours, best_base)
}

// ---------------------------------------------------------------------------------------
// 1. Warm authenticate.

async fn warm(quick: bool) {
    let n = 100_000;
    let (store, clock, tokens) = libsql_with_tokens(n, 'a').await;
    let config = CacheConfig {
        capacity: 2 * n as u64,
        ttl: Duration::from_secs(3600),
        last_used_flush: Duration::from_secs(3600),
        ..CacheConfig::default()
    };
    let cached = Cached::new(store, clock as Arc<dyn Clock>, config);
    let mut floor_map: HashMap<[u8; 32], Principal> = HashMap::with_capacity(n);
    for t in &tokens {
        let p = service::authenticate(&cached, &t.secret, false)
            .await
            .expect("token authenticates");
        floor_map.insert(*t.digest.as_bytes(), p);
    }
    let mut order: Vec<&str> = tokens.iter().map(|t| t.secret.as_str()).collect();
    order.shuffle(&mut SmallRng::seed_from_u64(0x9E37_79B9_7F4A_7C15));
    // One more pass, so every lookup below is a hit.
    for t in &order {
        service::authenticate(&cached, t, false)
            .await
            .expect("cache hit");
    }
    let digests: Vec<TokenDigest> = order
        .iter()
        .map(|t| ownership_core::token::digest_of(t))
        .collect();
    // Batches of 1,000 tokens (consecutive in the shuffled order, so every lookup still
    // lands anywhere in the 100k entries), the four measurements alternating batch by
    // batch, several passes over all tokens; the best batch of each counts. A batch fits in
    // a scheduler slice, so on a shared machine the best batch is one nobody interrupted,
    // and drift hits the four alike.
    const BATCH: usize = 1_000;
    let passes = if quick { 3 } else { 7 };
    let per_item = |start: Instant| start.elapsed().as_nanos() as f64 / BATCH as f64;
    let [mut ours, mut floor, mut check_and_digest, mut lookup] = [f64::INFINITY; 4];
    for _ in 0..passes {
        for (index, (batch, batch_digests)) in order
            .chunks_exact(BATCH)
            .zip(digests.chunks_exact(BATCH))
            .enumerate()
        {
            // Whichever side runs second finds the batch's token strings in the CPU caches,
            // so the two take turns going first.
            for side in [index % 2, 1 - index % 2] {
                if side == 0 {
                    let start = Instant::now();
                    for t in batch {
                        black_box(
                            service::authenticate(&cached, black_box(t), false)
                                .await
                                .is_ok(),
                        );
                    }
                    ours = ours.min(per_item(start));
                } else {
                    // The floor hands out an owned principal, as any authenticator must
                    // (the request keeps it after the map is let go): SHA-256, one lookup,
                    // a clone of the principal.
                    let start = Instant::now();
                    for t in batch {
                        let digest = sha256(black_box(t));
                        black_box(floor_map.get(&digest).cloned());
                    }
                    floor = floor.min(per_item(start));
                }
            }
            // Where the time goes: the offline shape check and digest alone, and the cache
            // lookup alone (by a digest computed beforehand, through the port).
            let start = Instant::now();
            for t in batch {
                let family = ownership_core::token::shape_of(black_box(t));
                black_box((family.is_ok(), ownership_core::token::digest_of(t)));
            }
            check_and_digest = check_and_digest.min(per_item(start));
            let start = Instant::now();
            for d in batch_digests {
                black_box(cached.warm(black_box(d)).is_some());
            }
            lookup = lookup.min(per_item(start));
        }
    }
    report("warm.ours_ns", ours);
    report("warm.floor_ns", floor);
    report("warm.ratio", ours / floor);
    report("warm.check_digest_ns", check_and_digest);
    report("warm.lookup_ns", lookup);
}

// ---------------------------------------------------------------------------------------
// 1b. The warm hit path on three concurrent maps: the store's own `ttl_map`, `quick_cache`
// and `moka`, each holding the same 100k entries (key: a 32-byte SHA-256 digest; value: an
// `Arc` of a small struct), against the same SHA-256 + std `HashMap` floor as row 1.

/// The store's map, compiled from its source file: it is private to `ownership-store`.
#[allow(
    dead_code,
    unused_imports,
    reason = "the bench uses the lookup and insert half of the map, and not its unit tests"
)]
#[path = "../../ownership-store/src/ttl_map.rs"]
mod ttl_map;

/// What `ttl_map` reports to (`ownership_store::metrics::MapGauges`): handles that record
/// nothing, as the map's own default.
mod metrics {
    pub(crate) struct MapGauges {
        pub(crate) evictions: ::metrics::Counter,
        pub(crate) entries: ::metrics::Gauge,
    }

    impl MapGauges {
        pub(crate) fn noop() -> Self {
            Self {
                evictions: ::metrics::Counter::noop(),
                entries: ::metrics::Gauge::noop(),
            }
        }

        pub(crate) fn new(_: &'static str) -> Self {
            Self::noop()
        }
    }
}

/// A cached value the size of a principal's fields that matter here.
#[derive(Debug)]
struct Entry {
    owner: String,
    token_id: String,
    kinds: u32,
    /// Unix nanoseconds after which the entry must not be served.
    deadline: i64,
}

fn unix_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn cache_maps(quick: bool) {
    let n = 100_000;
    let ttl = Duration::from_secs(3600);
    let deadline = unix_nanos() + i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX);
    let tokens: Vec<String> = make_tokens(n, 'd').into_iter().map(|t| t.secret).collect();
    let entries: Vec<([u8; 32], Arc<Entry>)> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let entry = Entry {
                owner: OWNER.to_owned(),
                token_id: format!("tok_m{i:019x}"),
                kinds: 3,
                deadline,
            };
            (sha256(t), Arc::new(entry))
        })
        .collect();
    let floor: HashMap<[u8; 32], Arc<Entry>> = entries.iter().cloned().collect();
    let ours = ttl_map::TtlMap::with_hasher(2 * n as u64, ttl_map::DigestKeys::new());
    let quick_map: quick_cache::sync::Cache<[u8; 32], Arc<Entry>> =
        quick_cache::sync::Cache::new(2 * n);
    let moka_map: moka::sync::Cache<[u8; 32], Arc<Entry>> = moka::sync::Cache::builder()
        .max_capacity(2 * n as u64)
        .time_to_live(ttl)
        .build();
    for (key, value) in &entries {
        ours.insert(*key, Arc::clone(value), deadline);
        quick_map.insert(*key, Arc::clone(value));
        moka_map.insert(*key, Arc::clone(value));
    }
    moka_map.run_pending_tasks();
    let mut order: Vec<&str> = tokens.iter().map(String::as_str).collect();
    order.shuffle(&mut SmallRng::seed_from_u64(0x2545_F491_4F6C_DD1D));

    // Every side does what a warm hit does: SHA-256 the token, look the digest up, and
    // (the three caches) hand out a clone of the `Arc` after checking the entry's
    // deadline against the clock (`ttl_map` and `quick_cache` read the wall clock as the
    // token cache does; moka checks its own time-to-live). The floor looks up and reads.
    type Side<'a> = (&'a str, Box<dyn Fn(&str) -> bool + 'a>);
    let sides: [Side<'_>; 4] = [
        (
            "std_hashmap",
            Box::new(|t| floor.get(&sha256(t)).is_some_and(|e| e.kinds != 0)),
        ),
        (
            "ttl_map",
            Box::new(|t| {
                ours.read_and_touch(&sha256(t), unix_nanos(), Arc::clone)
                    .is_some_and(|e| e.kinds != 0)
            }),
        ),
        (
            "quick_cache",
            Box::new(|t| {
                let now = unix_nanos();
                quick_map
                    .get(&sha256(t))
                    .filter(|e| now < e.deadline)
                    .is_some_and(|e| e.kinds != 0)
            }),
        ),
        (
            "moka",
            Box::new(|t| moka_map.get(&sha256(t)).is_some_and(|e| e.kinds != 0)),
        ),
    ];
    for (name, lookup) in &sides {
        assert!(
            order.iter().all(|t| lookup(t)),
            "every token is a hit in {name}"
        );
    }
    // Rounds alternate the sides, so drift on a shared machine hits them all alike; the
    // best pass of each side counts.
    let mut best = [f64::INFINITY; 4];
    for _ in 0..if quick { 5 } else { 11 } {
        for (slot, (_, lookup)) in best.iter_mut().zip(&sides) {
            let ns = best_of(1, n, || {
                for t in &order {
                    black_box(lookup(black_box(t)));
                }
            });
            *slot = slot.min(ns);
        }
    }
    let floor_ns = best[0];
    for ((name, _), ns) in sides.iter().zip(best) {
        report(&format!("cache.{name}_ns"), ns);
        if *name != "std_hashmap" {
            report(&format!("cache.{name}.ratio"), ns / floor_ns);
        }
    }
    black_box(
        entries
            .iter()
            .map(|(_, e)| e.owner.len() + e.token_id.len())
            .sum::<usize>(),
    );
}

// ---------------------------------------------------------------------------------------
// 2. Growth (uncached libSQL lookup by digest vs. a constant-time linear scan), and
// 3a. the libSQL cold path vs. a raw point SELECT on the same connection.

async fn growth(quick: bool) {
    let sizes: &[usize] = if quick {
        &[1, 1_000, 100_000]
    } else {
        &[1, 1_000, 100_000, 1_000_000]
    };
    let budget = Duration::from_millis(if quick { 400 } else { 2_000 });
    let mut rng = SmallRng::seed_from_u64(0xD1B5_4A32_D192_ED03);
    for &n in sizes {
        let store = libsql_memory(manual_clock()).await;
        store
            .execute_batch_for_tests(&seed_owner_sql(Dialect::Libsql))
            .await
            .expect("owner");
        let real = make_tokens(n.min(256), 'a');
        let filler = n - real.len();
        if filler > 0 {
            store
                .execute_batch_for_tests(&format!(
                    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {filler}) \
                     INSERT INTO tokens (id, owner_id, digest, kinds, display_prefix, origin, created_at) \
                     SELECT printf('tok_f%019x', i), '{OWNER}', randomblob(32), 'api', 'own_u_fill', 'issued', 0 FROM c;"
                ))
                .await
                .expect("filler tokens");
        }
        libsql_exec(&store, &insert_tokens_sql(Dialect::Libsql, &real, "api")).await;
        let stored = store
            .query_count_for_tests("SELECT COUNT(*) FROM tokens")
            .await
            .expect("count");
        assert_eq!(stored, n as i64, "seeded token count");

        // Ours: the store's lookup by digest (the cold path, no cache).
        let mut i = 0_usize;
        let start = Instant::now();
        while i < 20 || start.elapsed() < budget {
            let t = &real[i % real.len()];
            let p = store.authenticate(&t.digest).await.expect("lookup");
            assert!(p.is_some(), "seeded token found");
            i += 1;
        }
        let ours = start.elapsed().as_nanos() as f64 / i as f64;

        // Baseline: constant-time scan over every stored digest (the static authenticator).
        let mut all: Vec<[u8; 32]> = (0..filler).map(|_| rng.random::<[u8; 32]>()).collect();
        all.extend(real.iter().map(|t| *t.digest.as_bytes()));
        let probes: Vec<[u8; 32]> = real.iter().map(|t| sha256(&t.secret)).collect();
        let mut j = 0_usize;
        let start = Instant::now();
        while j < 5 || start.elapsed() < budget {
            let probe = &probes[j % probes.len()];
            let mut found = subtle::Choice::from(0);
            for d in &all {
                found |= d.ct_eq(probe);
            }
            assert!(bool::from(black_box(found)), "scan finds the token");
            j += 1;
        }
        let scan = start.elapsed().as_nanos() as f64 / j as f64;
        report(&format!("growth.ours_ns.{n}"), ours);
        report(&format!("growth.scan_ns.{n}"), scan);
    }
}

// ---------------------------------------------------------------------------------------
// 3a. The libSQL cold path vs. the floor of an embedded store: a point SELECT by primary
// key on the calling thread, through libsql, with a statement prepared once.

async fn cold_libsql(quick: bool) {
    let (store, dir) = ownership_tests::backends::libsql_file(manual_clock()).await;
    store
        .execute_batch_for_tests(&seed_owner_sql(Dialect::Libsql))
        .await
        .expect("owner");
    let real = make_tokens(1_000, 'a');
    libsql_exec(&store, &insert_tokens_sql(Dialect::Libsql, &real, "api")).await;
    let db = libsql::Builder::new_local(dir.path().join("ownership.db"))
        .build()
        .await
        .expect("open the same file");
    let conn = db.connect().expect("connect");
    let select = conn
        .prepare("SELECT id, owner_id FROM tokens WHERE id = ?1")
        .await
        .expect("prepare");
    let (store, real, select) = (&store, &real, &select);
    let (ours, floor) = alternating_best(
        if quick { 8 } else { 30 },
        |i| async move {
            let t = &real[i % real.len()];
            let p = store.authenticate(&t.digest).await.expect("lookup");
            assert!(p.is_some(), "seeded token found");
        },
        |i| async move {
            select.reset();
            let mut rows = select
                .query([real[i % real.len()].id.as_str()])
                .await
                .expect("point select");
            let row = rows.next().await.expect("row").expect("the row exists");
            black_box(row.get::<String>(1).expect("owner id"));
        },
    )
    .await;
    report("cold.libsql.ours_ns", ours);
    report("cold.libsql.raw_ns", floor);
    report("cold.libsql.ratio", ours / floor);
}

// ---------------------------------------------------------------------------------------
// 3b. The PostgreSQL cold path vs. a raw point SELECT with the same pool.

async fn cold_postgres(quick: bool) {
    let store = postgres(manual_clock()).await;
    store
        .execute_batch_for_tests(&seed_owner_sql(Dialect::Postgres))
        .await
        .expect("owner");
    let real = make_tokens(1_000, 'a');
    pg_exec(&store, &insert_tokens_sql(Dialect::Postgres, &real, "api")).await;
    let pool = store.pool().clone();
    // Warm the pool's connections and statement caches.
    for t in real.iter().take(50) {
        store.authenticate(&t.digest).await.expect("lookup");
        #[allow(
            clippy::disallowed_methods,
            reason = "the baseline: a bare prepared SELECT"
        )]
        sqlx::query("SELECT id, owner_id FROM tokens WHERE id = $1")
            .bind(&t.id)
            .fetch_one(&pool)
            .await
            .expect("point select");
    }
    let (store, real, pool) = (&store, &real, &pool);
    let (ours, raw) = alternating_best(
        if quick { 6 } else { 25 },
        |i| async move {
            let t = &real[i % real.len()];
            let p = store.authenticate(&t.digest).await.expect("lookup");
            assert!(p.is_some(), "seeded token found");
        },
        |i| async move {
            #[allow(
                clippy::disallowed_methods,
                reason = "the baseline: a bare prepared SELECT"
            )]
            sqlx::query("SELECT id, owner_id FROM tokens WHERE id = $1")
                .bind(&real[i % real.len()].id)
                .fetch_one(pool)
                .await
                .expect("point select");
        },
    )
    .await;
    report("cold.postgres.ours_ns", ours);
    report("cold.postgres.raw_ns", raw);
    report("cold.postgres.ratio", ours / raw);
}

// ---------------------------------------------------------------------------------------
// 4. HTTP: authenticated `GET /v1/me` vs. a bare axum route serving the same JSON.

const HTTP_CONCURRENCY: usize = 32;

async fn http(quick: bool) {
    let duration = Duration::from_secs(if quick { 2 } else { 5 });
    // The per-identity rate limit (50/s by default) would measure the limiter, not the
    // path: raise it far above what loopback can reach (it is still checked per request).
    let app = spawn_app_with(Backend::Libsql, |c| {
        c.service.limits.identity_per_second = 1_000_000_000;
        c.service.limits.identity_burst = 1_000_000_000;
    })
    .await;
    let me_url = format!("{}/v1/me", app.base);
    let reply = app
        .call("GET", "/v1/me", Some(&app.owner_token), None)
        .await;
    assert_eq!(reply.status, 200, "GET /v1/me answers");
    let body = reply.text.clone();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // The same JSON from a handler without the auth extractor, under the same layers
    // (`ownership_http::service_layers`, the stack `ownership_http::router` puts around
    // its routes) and served the same way: the difference is the authentication (token
    // check, cache, rate limits) and the answer's serialisation, nothing else.
    let bare = ownership_http::service_layers(
        axum::Router::new().route(
            "/v1/me",
            axum::routing::get(move || {
                let body = body.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                }
            }),
        ),
        &ownership_http::ServiceConfig::default(),
        ownership_http::drain::Drain::default(),
    );
    let bare_server = tokio::spawn(async move {
        axum::serve(
            listener,
            bare.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let bare_url = format!("http://{addr}/v1/me");

    // Alternating rounds, the order swapped each round, the best round of each side:
    // whichever side runs first or second in a noisy stretch does not decide the ratio.
    let rounds = if quick { 2 } else { 4 };
    let one = [bearer(&app.owner_token)];
    let (mut ours, mut base, mut ours_err, mut base_err) = (0.0_f64, 0.0_f64, 0, 0);
    for round in 0..rounds {
        for side in [round % 2, 1 - round % 2] {
            if side == 0 {
                let (rps, errors) = load(&me_url, &one, duration).await;
                ours = ours.max(rps);
                ours_err += errors;
            } else {
                let (rps, errors) = load(&bare_url, &[], duration).await;
                base = base.max(rps);
                base_err += errors;
            }
        }
    }
    bare_server.abort();
    report("http.concurrency", HTTP_CONCURRENCY as f64);
    report("http.ours_rps", ours);
    report("http.bare_rps", base);
    report("http.errors", (ours_err + base_err) as f64);
    report("http.ratio", ours / base);
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Requests per second of `HTTP_CONCURRENCY` keep-alive clients for `duration` (after a
/// short warm-up), and the count of non-200 answers. Each request carries one of `auths`
/// (`Authorization` values) chosen uniformly at random, or none when it is empty.
async fn load(url: &str, auths: &[String], duration: Duration) -> (f64, u64) {
    let auths: Arc<[String]> = auths.into();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(HTTP_CONCURRENCY)
        .build()
        .expect("client");
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for task in 0..HTTP_CONCURRENCY {
        let (client, url, auths) = (client.clone(), url.to_owned(), Arc::clone(&auths));
        let mut rng = SmallRng::seed_from_u64(0x5851_F42D_4C95_7F2D ^ task as u64);
        let (done, errors, counting, stop) = (
            Arc::clone(&done),
            Arc::clone(&errors),
            Arc::clone(&counting),
            Arc::clone(&stop),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let mut req = client.get(&url);
                if !auths.is_empty() {
                    let a = &auths[rng.random_range(0..auths.len())];
                    req = req.header("authorization", a.as_str());
                }
                let ok = match req.send().await {
                    Ok(res) => res.status().is_success() && res.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if counting.load(Ordering::Relaxed) {
                    if ok {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    counting.store(true, Ordering::SeqCst);
    let start = Instant::now();
    tokio::time::sleep(duration).await;
    counting.store(false, Ordering::SeqCst);
    let elapsed = start.elapsed();
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        let _ = t.await;
    }
    (
        done.load(Ordering::SeqCst) as f64 / elapsed.as_secs_f64(),
        errors.load(Ordering::SeqCst),
    )
}

// ---------------------------------------------------------------------------------------
// 4b. HTTP with many distinct tokens, each request's chosen uniformly at random, and a
// token cache a tenth of their number: mostly the miss path (the checksum, a store read,
// an insert that evicts), against the one-token rate of the same server in the same run.

async fn http_many(quick: bool) {
    let (n, capacity) = if quick {
        (100_000, 10_000)
    } else {
        (1_000_000, 100_000)
    };
    let duration = Duration::from_secs(if quick { 2 } else { 5 });
    let app = spawn_app_with(Backend::Libsql, |c| {
        c.service.limits.identity_per_second = 1_000_000_000;
        c.service.limits.identity_burst = 1_000_000_000;
        c.cache.capacity = capacity;
    })
    .await;
    let me = app
        .call("GET", "/v1/me", Some(&app.owner_token), None)
        .await;
    assert_eq!(me.status, 200, "GET /v1/me answers");
    let owner = me.body["user_id"].as_str().expect("owner id").to_owned();
    // The tokens go in by SQL (minting a million through the API would take the run), on
    // a connection of the bench's own to the server's file.
    let tokens = make_tokens(n, 'b');
    let db = libsql::Builder::new_local(&app.database_url)
        .build()
        .await
        .expect("open the server's file");
    let conn = db.connect().expect("connect");
    conn.query("PRAGMA busy_timeout = 10000", ())
        .await
        .expect("busy timeout");
    for batch in insert_owned_tokens_sql(Dialect::Libsql, &owner, &tokens, "api").chunks(20) {
        conn.execute_batch(&format!("BEGIN; {} COMMIT;", batch.join("\n")))
            .await
            .expect("insert tokens");
    }
    let auths: Vec<String> = tokens.iter().map(|t| bearer(&t.secret)).collect();
    let tokens_first = tokens.first().expect("a token").secret.clone();
    drop(tokens);
    let one = [bearer(&app.owner_token)];
    let url = format!("{}/v1/me", app.base);
    // One token of the set first, so a failure says what the server answered.
    let first = app.call("GET", "/v1/me", Some(&tokens_first), None).await;
    assert_eq!(
        first.status, 200,
        "a token written by SQL authenticates: {first:?}"
    );
    // A warm-up pass over a sample, so the store's pages are read in as in steady state.
    let (_, warm_errors) = load(&url, &auths, Duration::from_secs(1)).await;
    assert_eq!(warm_errors, 0, "every token authenticates");
    let rounds = if quick { 2 } else { 4 };
    let (mut many, mut single, mut errors) = (0.0_f64, 0.0_f64, 0);
    for round in 0..rounds {
        for side in [round % 2, 1 - round % 2] {
            let (rps, failed) = if side == 0 {
                load(&url, &auths, duration).await
            } else {
                load(&url, &one, duration).await
            };
            errors += failed;
            if side == 0 {
                many = many.max(rps);
            } else {
                single = single.max(rps);
            }
        }
    }
    report("http_many.tokens", n as f64);
    report("http_many.cache", capacity as f64);
    report("http_many.ours_rps", many);
    report("http_many.one_rps", single);
    report("http_many.errors", errors as f64);
    report("http_many.ratio", many / single);
}

// ---------------------------------------------------------------------------------------
// 5. Pairing: request a code and redeem it, 64 concurrent clients, through the store API.

const PAIRING_CLIENTS: usize = 64;

async fn pairing(quick: bool) {
    let duration = Duration::from_secs(if quick { 3 } else { 10 });
    let clock = manual_clock();
    let (lib, _dir) = ownership_tests::backends::libsql_file(clock.clone()).await;
    lib.execute_batch_for_tests(&seed_owner_sql(Dialect::Libsql))
        .await
        .expect("owner");
    let svc = make_tokens(1, 'a');
    libsql_exec(
        &lib,
        &insert_tokens_sql(Dialect::Libsql, &svc, "channel:bench"),
    )
    .await;
    pairing_run("libsql", Arc::new(lib), &svc[0], clock, duration).await;

    let clock = manual_clock();
    let pg = postgres(clock.clone()).await;
    pg.execute_batch_for_tests(&seed_owner_sql(Dialect::Postgres))
        .await
        .expect("owner");
    pg_exec(
        &pg,
        &insert_tokens_sql(Dialect::Postgres, &svc, "channel:bench"),
    )
    .await;
    pairing_run("postgres", Arc::new(pg), &svc[0], clock, duration).await;
}

/// 64 clients, each acting for an owner of its own: a pairing request (by the channel's
/// service token) and its redemption, then a token minted and revoked. Reported: the
/// redemptions per second and the p99 of request + redeem (`pairing.*`), and every write
/// per second (`pairing.*.writes_per_s`, four a round).
async fn pairing_run<S>(
    name: &str,
    store: Arc<S>,
    service_token: &Tok,
    clock: Arc<ManualClock>,
    duration: Duration,
) where
    S: PairingStore + TokenStore + ownership_core::ports::UserStore + Send + Sync + 'static,
{
    let channel = ChannelName::parse("bench").expect("channel name");
    let svc = store
        .authenticate(&service_token.digest)
        .await
        .expect("lookup")
        .expect("service token");
    let scope = Arc::new(ChannelScope::authorize(&svc, &channel).expect("channel scope"));
    // A member per client, each with its own token (so its own audit chain).
    let operator = ownership_core::authz::AdminScope::operator("bench");
    let mut owners = Vec::new();
    for c in 0..PAIRING_CLIENTS {
        let id = ownership_core::OwnerId::parse(&format!("bench-client-{c:02}")).expect("id");
        let (_, secret) = ownership_core::users::create_user(
            store.as_ref(),
            &operator,
            &id,
            ownership_core::UserRole::Member,
            &mut OsRandom,
        )
        .await
        .expect("client owner");
        let principal = store
            .authenticate(&ownership_core::token::digest_of(secret.expose()))
            .await
            .expect("lookup")
            .expect("client token");
        owners.push(Arc::new(principal));
    }
    let key = Arc::new(PairingKey::generate(&mut OsRandom));
    let policy = Arc::new(PairingPolicy {
        ttl: Duration::from_secs(600),
        max_pending_per_channel: 100_000,
    });
    let deadline = Instant::now() + duration;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, owner) in owners.into_iter().enumerate() {
        let (store, scope, key, policy, channel, clock) = (
            Arc::clone(&store),
            Arc::clone(&scope),
            Arc::clone(&key),
            Arc::clone(&policy),
            channel.clone(),
            Arc::clone(&clock),
        );
        tasks.push(tokio::spawn(async move {
            let owner_scope = OwnerScope::own(owner.identity());
            let mut latencies = Vec::new();
            let mut errors = 0_u64;
            let mut i = 0_u64;
            while Instant::now() < deadline {
                let ext = ExternalId::parse(&format!("c{c}-{i}")).expect("external id");
                i += 1;
                let t0 = Instant::now();
                let requested = service::request_pairing(
                    store.as_ref(),
                    &scope,
                    &key,
                    &ext,
                    None,
                    &policy,
                    &mut OsRandom,
                )
                .await;
                let redeemed = match requested {
                    Ok((_, code)) => {
                        service::redeem_pairing(
                            store.as_ref(),
                            &owner_scope,
                            &key,
                            &channel,
                            code.as_str(),
                        )
                        .await
                    }
                    Err(e) => Err(e),
                };
                match redeemed {
                    Ok(_) => latencies.push(t0.elapsed()),
                    Err(_) => errors += 1,
                }
                let request = ownership_core::tokens::TokenRequest {
                    kinds: ownership_core::TokenKinds::parse_csv("api").expect("kinds"),
                    label: None,
                    expires_in: None,
                };
                let minted = service::issue_token(
                    store.as_ref(),
                    &owner,
                    request,
                    clock.now(),
                    &mut OsRandom,
                )
                .await;
                let revoked = match minted {
                    Ok((record, _)) => store
                        .revoke_token(&owner_scope, &record.id, None)
                        .await
                        .map(|_| ()),
                    Err(e) => Err(e),
                };
                if revoked.is_err() {
                    errors += 1;
                }
            }
            (latencies, errors, i)
        }));
    }
    let mut all = Vec::new();
    let (mut errors, mut rounds) = (0_u64, 0_u64);
    for t in tasks {
        let (latencies, failed, n) = t.await.expect("pairing client");
        all.extend(latencies);
        errors += failed;
        rounds += n;
    }
    report(&format!("pairing.{name}.errors"), errors as f64);
    let elapsed = start.elapsed();
    all.sort_unstable();
    let p99 = all
        .get(all.len().saturating_mul(99) / 100)
        .copied()
        .unwrap_or_default();
    report(
        &format!("pairing.{name}.per_s"),
        all.len() as f64 / elapsed.as_secs_f64(),
    );
    report(&format!("pairing.{name}.p99_ms"), p99.as_secs_f64() * 1e3);
    report(
        &format!("pairing.{name}.writes_per_s"),
        (rounds * 4) as f64 / elapsed.as_secs_f64(),
    );
}

// ---------------------------------------------------------------------------------------
// 6. Memory: resident size of the cache with many principals in it.

/// This process's resident set size in bytes (`VmRSS` of `/proc/self/status`).
fn rss_bytes() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb * 1024.0)
}

/// Runs the memory measurement in two fresh processes (this binary again, with
/// `OWNERSHIP_BENCH_MEMORY` set), so neither side reuses memory an earlier section freed.
async fn memory(quick: bool) {
    let n = memory_entries(quick);
    let mut per_entry = HashMap::new();
    for side in ["ours", "map"] {
        let exe = std::env::current_exe().expect("own path");
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(exe)
                .env("OWNERSHIP_BENCH_MEMORY", side)
                .output()
                .expect("memory child runs")
        })
        .await
        .expect("memory child joins");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let bytes = stdout
            .lines()
            .find_map(|l| l.strip_prefix("BENCH memory.child_bytes_per_entry "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| {
                panic!(
                    "memory child `{side}` printed no result ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        per_entry.insert(side, bytes);
    }
    report("memory.entries", n as f64);
    report("memory.ours_bytes_per_entry", per_entry["ours"]);
    report("memory.map_bytes_per_entry", per_entry["map"]);
}

fn memory_entries(quick: bool) -> usize {
    if quick { 100_000 } else { 1_000_000 }
}

/// One side of [`memory`], in a fresh process: the growth of the resident set while `n`
/// principals are read from an in-memory libSQL store into the cache (`ours`), or into a
/// std `HashMap` from digest bytes to the principal struct (`map`, the bare structure).
async fn memory_child(side: &str, quick: bool) {
    let n = memory_entries(quick);
    let (store, clock, tokens) = libsql_with_tokens(n, 'c').await;
    let bytes = if side == "ours" {
        let config = CacheConfig {
            capacity: n as u64,
            ttl: Duration::from_secs(3600),
            last_used_flush: Duration::from_secs(3600),
            ..CacheConfig::default()
        };
        let cached = Cached::new(store, clock as Arc<dyn Clock>, config);
        let before = rss_bytes();
        for t in &tokens {
            black_box(cached.authenticate(&t.digest).await.expect("store answers"));
        }
        let after = rss_bytes();
        black_box(&cached);
        after - before
    } else {
        let before = rss_bytes();
        let mut map: HashMap<[u8; 32], Principal> = HashMap::new();
        for t in &tokens {
            let p = store
                .authenticate(&t.digest)
                .await
                .expect("store answers")
                .expect("token known");
            map.insert(*t.digest.as_bytes(), p);
        }
        let after = rss_bytes();
        black_box(&map);
        after - before
    };
    report("memory.child_bytes_per_entry", bytes / n as f64);
}

// ---------------------------------------------------------------------------------------
// 8. Revocation propagation: three `ownership serve` processes (the release binary) on one
// PostgreSQL database; a token revoked through the first, timed until both others refuse it.

async fn propagation(quick: bool) {
    use ownership_tests::serve::{serve_command, start_command};
    let cluster = ownership_tests::pg::PgCluster::shared().expect("PostgreSQL for the bench");
    let url = cluster.fresh_database_url().expect("a fresh database");
    // The per-identity rate limit would pace the warm-up and the polling, not propagation;
    // the failed-authentication budget per address would turn the polls' expected 401s
    // into 429s after a few revocations.
    let nodes: Vec<_> = (0..3)
        .map(|i| {
            let mut cmd = serve_command(&url);
            cmd.env("OWNERSHIP_LIMITS__IDENTITY_PER_SECOND", "1000000")
                .env("OWNERSHIP_LIMITS__IDENTITY_BURST", "1000000")
                .env("OWNERSHIP_LIMITS__FAILED_AUTH_PER_ADDRESS", "1000000");
            start_command(cmd, i == 0)
        })
        .collect();
    let http = reqwest::Client::new();
    let status = |base: &str, method: reqwest::Method, path: &str, token: Option<&str>| {
        let mut request = http.request(method, format!("{base}{path}"));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        async move { request.send().await.map_or(0, |r| r.status().as_u16()) }
    };
    for node in &nodes {
        let start = Instant::now();
        while status(&node.base, reqwest::Method::GET, "/readyz", None).await != 200 {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "a node never got ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let owner = nodes[0]
        .token
        .clone()
        .expect("the first node made the Owner");
    let count = if quick { 30 } else { 100 };
    let mut tokens = Vec::with_capacity(count);
    for _ in 0..count {
        let r = http
            .post(format!("{}/v1/me/tokens", nodes[0].base))
            .bearer_auth(&owner)
            .json(&serde_json::json!({"kinds": ["api"]}))
            .send()
            .await
            .expect("mint");
        let body: serde_json::Value = r.json().await.expect("minted");
        tokens.push((
            body["id"].as_str().expect("id").to_owned(),
            body["token"].as_str().expect("token").to_owned(),
        ));
    }
    let others = &nodes[1..];
    for (_, t) in &tokens {
        for node in others {
            let s = status(&node.base, reqwest::Method::GET, "/v1/me", Some(t)).await;
            assert_eq!(s, 200, "warm on every other node");
        }
    }
    let mut times = Vec::with_capacity(count);
    for (id, t) in &tokens {
        let path = format!("/v1/me/tokens/{id}");
        let s = status(&nodes[0].base, reqwest::Method::DELETE, &path, Some(&owner)).await;
        assert!(s == 200 || s == 204, "revoke answered {s}");
        // From the revocation's commit (the first node answered) to both others refusing.
        let start = Instant::now();
        let mut pending: Vec<&str> = others.iter().map(|n| n.base.as_str()).collect();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for base in pending {
                if status(base, reqwest::Method::GET, "/v1/me", Some(t)).await != 401 {
                    still.push(base);
                }
            }
            pending = still;
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "a revoked token still works after 30 s"
            );
        }
        times.push(start.elapsed().as_nanos() as f64);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    times.sort_by(f64::total_cmp);
    let at = |p: f64| {
        times[((p / 100.0 * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1]
    };
    report("propagation.revocations", count as f64);
    report("propagation.p50_ns", at(50.0));
    report("propagation.p99_ns", at(99.0));
}
