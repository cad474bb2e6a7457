//! A dudect-style timing test (`cargo xtask timing [--samples N]`): does token
//! verification take measurably different time for a presented token that is *close* to a
//! stored one than for a random one? Not a CI test: it prints Welch's t statistics for a
//! person to read, and judges nothing by itself.
//!
//! Method (Reparaz, Balasch, Verbauwhede, "Dude, is my code constant time?", 2017): two
//! classes of inputs, A ("close to the secret") and B (random), are measured interleaved in
//! a random order, each sample timed with a monotonic clock; the slowest measurements are
//! cropped at several percentiles (the heavy upper tail is scheduler and cache noise); for
//! each crop Welch's t statistic compares the two classes' means. |t| < 4.5 on every crop
//! is "no evidence of a leak" at this sample size; |t| > 4.5 is evidence of one.
//!
//! Tests, each printed as one `TIMING <name> <max |t|> <samples> <mean A ns> <mean B ns>`
//! line (read by `xtask/src/timing.rs`) after a human-readable block:
//!
//! - `digest_ct_eq`: `TokenDigest == TokenDigest` (the crate's constant-time comparison,
//!   `subtle`). A = the stored digest with only its LAST byte changed, B = a random digest.
//! - `leaky_early_exit` (sanity check of the method): a deliberately leaky byte-by-byte
//!   comparison that returns at the first difference, same classes. Its |t| must be large,
//!   or the test is not sensitive enough to mean anything.
//! - `slice_eq` (for information): plain `[u8] == [u8]` (`memcmp`), same classes.
//! - `verify_near_digest`: the whole verify path, `service::authenticate` through the
//!   cache decorator over an in-memory libSQL store holding 20,000 tokens. A = well-formed
//!   tokens whose SHA-256 digest shares its first 3 bytes with a stored token's digest
//!   (found by brute force: SHA-256 cannot be inverted, but short prefixes can be hit), B =
//!   random well-formed tokens. Both miss.
//! - `verify_near_token`: same path. A = the stored token with only the last byte of its
//!   random part changed (so the string shares its first ~48 of 55 characters with a valid
//!   token and carries a correct checksum), B = random well-formed tokens. Both miss.
//! - `verify_hit_vs_miss` (for information, expected to differ): A = the valid token
//!   (a cache hit), B = a well-formed token with a different body (a miss that reads the
//!   store). Whether a token is valid is the answer the caller gets anyway; this shows the
//!   order of magnitude of a difference the method reports.
//!
//! The statistics below are ours rather than the dudect-bencher crate's: that crate only
//! prints its result and takes tests as stateless `fn` pointers timing synchronous calls
//! (docs/benchmarks.md, "Measurement kit", has the whole reason).
//!
//! `OWNERSHIP_TIMING_SAMPLES` sets the samples of each comparison test (default 200,000);
//! the verify tests take a tenth of that.

#![allow(
    clippy::print_stdout,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    reason = "a benchmark binary: it reports on stdout and stops at the first failure"
)]

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ownership_core::ports::Clock;
use ownership_core::service;
use ownership_core::token::{TokenDigest, TokenFamily, TokenSecret};
use ownership_store::cache::{CacheConfig, Cached};
use ownership_store::libsql::LibsqlStore;
use ownership_tests::backends::{libsql_memory, manual_clock};
use rand::rngs::SmallRng;
use rand::{RngExt as _, SeedableRng as _};

const OWNER: &str = "timing-owner";
/// The threshold of the dudect paper: above it, the classes' timings differ.
const T_THRESHOLD: f64 = 4.5;
/// Comparisons timed together in one sample, so a sample is well above the clock's
/// resolution and overhead.
const BATCH: usize = 64;
/// Tokens stored for the verify tests.
const STORED: usize = 20_000;
/// Leading digest bytes a class-A token of `verify_near_digest` shares with a stored one.
const SHARED_PREFIX: usize = 3;
/// Distinct inputs per class in the verify tests.
const POOL: usize = 256;

fn main() {
    let samples: usize = std::env::var("OWNERSHIP_TIMING_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n >= 1_000)
        .unwrap_or(200_000);
    println!(
        "dudect-style timing test: {samples} samples per comparison test, {} per verify test; \
         |t| < {T_THRESHOLD} = no evidence of a leak",
        samples / 10
    );
    let mut rng = SmallRng::seed_from_u64(0x5DEE_CE66_D1CE_4E5B);
    compare_tests(samples, &mut rng);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(verify_tests((samples / 10).max(1_000), &mut rng));
}

// ---------------------------------------------------------------------------------------
// Statistics.

/// Measurements of one test, in nanoseconds, per class.
#[derive(Default)]
struct Samples {
    a: Vec<f64>,
    b: Vec<f64>,
}

impl Samples {
    fn push(&mut self, class_a: bool, ns: f64) {
        if class_a {
            self.a.push(ns);
        } else {
            self.b.push(ns);
        }
    }
}

/// Welch's t of two samples: (mean A − mean B) / sqrt(var A / n A + var B / n B).
fn welch_t(a: &[f64], b: &[f64]) -> f64 {
    let (ma, va) = mean_var(a);
    let (mb, vb) = mean_var(b);
    let se = (va / a.len() as f64 + vb / b.len() as f64).sqrt();
    if se == 0.0 { 0.0 } else { (ma - mb) / se }
}

fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var)
}

/// The value at percentile `p` (0–100) of the pooled samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Prints the test's t per crop and its `TIMING` line; returns the largest |t|.
fn report(name: &str, what: &str, samples: &Samples) -> f64 {
    // The first 10 % of each class warms caches and branch predictors: dropped, as dudect does.
    let a = &samples.a[samples.a.len() / 10..];
    let b = &samples.b[samples.b.len() / 10..];
    let mut pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    pooled.sort_by(f64::total_cmp);
    let mut max_t: f64 = 0.0;
    let mut cells = Vec::new();
    for crop in [100.0, 99.0, 95.0, 90.0, 75.0, 50.0] {
        let limit = percentile(&pooled, crop);
        let ca: Vec<f64> = a.iter().copied().filter(|&v| v <= limit).collect();
        let cb: Vec<f64> = b.iter().copied().filter(|&v| v <= limit).collect();
        if ca.len() < 100 || cb.len() < 100 {
            continue;
        }
        let t = welch_t(&ca, &cb);
        if t.abs() > max_t.abs() {
            max_t = t;
        }
        cells.push(format!("p{crop:.0} {t:+.2}"));
    }
    let (ma, _) = mean_var(a);
    let (mb, _) = mean_var(b);
    let verdict = if max_t.abs() < T_THRESHOLD {
        "no evidence of a leak"
    } else {
        "TIMING DIFFERENCE"
    };
    println!();
    println!("{name}: {what}");
    println!(
        "  samples A {} / B {}; mean A {ma:.1} ns, mean B {mb:.1} ns",
        a.len(),
        b.len()
    );
    println!("  t by crop: {}", cells.join(", "));
    println!("  max |t| = {:.2} -> {verdict}", max_t.abs());
    println!(
        "TIMING {name} {:.3} {} {ma:.1} {mb:.1}",
        max_t.abs(),
        a.len() + b.len()
    );
    max_t.abs()
}

// ---------------------------------------------------------------------------------------
// 1. The comparison layer.

fn compare_tests(samples: usize, rng: &mut SmallRng) {
    let stored = rng.random::<[u8; 32]>();
    let mut near = stored;
    near[31] ^= 0x01;
    // One input per sample, laid out alike for both classes (as dudect does), so memory
    // access is the same whichever class a sample belongs to: A = `near`, B = a random
    // digest (almost always different from `stored` at byte 0).
    let classes: Vec<bool> = (0..samples).map(|_| rng.random::<bool>()).collect();
    let inputs: Vec<[u8; 32]> = classes
        .iter()
        .map(|&class_a| {
            if class_a {
                near
            } else {
                rng.random::<[u8; 32]>()
            }
        })
        .collect();

    let stored_digest = TokenDigest::from_bytes(stored);
    let digests: Vec<TokenDigest> = inputs
        .iter()
        .copied()
        .map(TokenDigest::from_bytes)
        .collect();
    let ct = measure_compare(&classes, |i| {
        let presented = &digests[i];
        time_batch(|| black_box(presented) == black_box(&stored_digest))
    });
    report(
        "digest_ct_eq",
        "TokenDigest == (subtle, constant time); A = stored digest with the last byte changed, B = random digest",
        &ct,
    );

    let leaky = measure_compare(&classes, |i| {
        let presented: &[u8] = &inputs[i];
        time_batch(|| leaky_eq(black_box(presented), black_box(&stored)))
    });
    let leaky_t = report(
        "leaky_early_exit",
        "SANITY CHECK: byte-by-byte comparison returning at the first difference; same classes (must show a difference)",
        &leaky,
    );
    if leaky_t < T_THRESHOLD {
        println!(
            "  WARNING: the method did not detect a deliberate leak; the other results mean little"
        );
    }

    let slice = measure_compare(&classes, |i| {
        let presented: &[u8] = &inputs[i];
        time_batch(|| black_box(presented) == black_box(&stored[..]))
    });
    report(
        "slice_eq",
        "for information: plain [u8] == (memcmp); same classes",
        &slice,
    );
}

/// One sample per entry of `classes`, `one(i)` timing sample `i`.
fn measure_compare(classes: &[bool], mut one: impl FnMut(usize) -> f64) -> Samples {
    let mut out = Samples::default();
    for (i, &class_a) in classes.iter().enumerate() {
        out.push(class_a, one(i));
    }
    out
}

/// Nanoseconds taken by [`BATCH`] calls of `f`.
fn time_batch(mut f: impl FnMut() -> bool) -> f64 {
    let start = Instant::now();
    for _ in 0..BATCH {
        black_box(f());
    }
    start.elapsed().as_nanos() as f64
}

/// A deliberately leaky comparison: stops at the first differing byte.
fn leaky_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    for (x, y) in a.iter().zip(b) {
        if black_box(*x) != *y {
            return false;
        }
    }
    true
}

// ---------------------------------------------------------------------------------------
// 2. The whole verify path: classify, SHA-256, cache, store lookup by digest.

async fn verify_tests(samples: usize, rng: &mut SmallRng) {
    let clock = manual_clock();
    let store = libsql_memory(Arc::clone(&clock)).await;
    store
        .execute_batch_for_tests(&format!(
            "INSERT INTO users (id, role, status, created_at, updated_at) VALUES ('{OWNER}', 'owner', 'active', 0, 0);"
        ))
        .await
        .expect("owner");
    // Stored tokens, from known random bytes (so a near twin can be made of each).
    let stored: Vec<([u8; 32], TokenSecret)> = (0..STORED)
        .map(|_| {
            let random = rng.random::<[u8; 32]>();
            (random, token_from(random))
        })
        .collect();
    seed_tokens(&store, stored.iter().map(|(_, t)| t.digest())).await;
    let config = CacheConfig {
        capacity: 4 * STORED as u64,
        ttl: Duration::from_secs(3600),
        last_used_flush: Duration::from_secs(3600),
        ..CacheConfig::default()
    };
    let cached = Cached::new(store, clock as Arc<dyn Clock>, config);

    // Class B of every verify test: random well-formed tokens, none stored.
    let random_tokens: Vec<String> = (0..POOL)
        .map(|_| token_from(rng.random::<[u8; 32]>()).expose().to_owned())
        .collect();

    // A: tokens whose digest shares its first SHARED_PREFIX bytes with a stored digest.
    let prefixes: HashSet<[u8; SHARED_PREFIX]> =
        stored.iter().map(|(_, t)| prefix_of(&t.digest())).collect();
    let started = Instant::now();
    let mut tries = 0_u64;
    let mut near_digest = Vec::with_capacity(POOL);
    while near_digest.len() < POOL {
        tries += 1;
        let candidate = token_from(rng.random::<[u8; 32]>());
        if prefixes.contains(&prefix_of(&candidate.digest())) {
            near_digest.push(candidate.expose().to_owned());
        }
    }
    println!();
    println!(
        "verify tests: {STORED} stored tokens; {POOL} tokens whose SHA-256 shares its first \
         {SHARED_PREFIX} bytes with a stored digest found in {tries} tries ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    for raw in &near_digest {
        assert!(
            service::authenticate(&cached, raw, false).await.is_err(),
            "a near-digest token must not authenticate"
        );
    }
    let near_token: Vec<String> = stored
        .iter()
        .take(POOL)
        .map(|(random, _)| {
            let mut twin = *random;
            twin[31] ^= 0x01;
            token_from(twin).expose().to_owned()
        })
        .collect();
    let valid: Vec<String> = stored
        .iter()
        .take(POOL)
        .map(|(_, t)| t.expose().to_owned())
        .collect();
    for raw in &valid {
        service::authenticate(&cached, raw, false)
            .await
            .expect("a stored token authenticates");
    }

    let classes: Vec<bool> = (0..samples).map(|_| rng.random::<bool>()).collect();
    let s = measure_verify(&cached, &classes, &near_digest, &random_tokens, false).await;
    report(
        "verify_near_digest",
        "authenticate (cache + libSQL); A = token whose SHA-256 shares 3 leading bytes with a stored digest, B = random token; both miss",
        &s,
    );
    let s = measure_verify(&cached, &classes, &near_token, &random_tokens, false).await;
    report(
        "verify_near_token",
        "authenticate (cache + libSQL); A = stored token with the last random byte changed (valid checksum), B = random token; both miss",
        &s,
    );
    let s = measure_verify(&cached, &classes, &valid, &random_tokens, true).await;
    report(
        "verify_hit_vs_miss",
        "for information, expected to differ: A = valid token (cache hit), B = random token (miss, reads the store)",
        &s,
    );
}

async fn measure_verify(
    cached: &Cached<LibsqlStore>,
    classes: &[bool],
    class_a: &[String],
    class_b: &[String],
    a_is_valid: bool,
) -> Samples {
    let mut out = Samples::default();
    for (i, &is_a) in classes.iter().enumerate() {
        let raw = if is_a {
            &class_a[i % class_a.len()]
        } else {
            &class_b[i % class_b.len()]
        };
        let start = Instant::now();
        let result = service::authenticate(cached, black_box(raw), false).await;
        let ns = start.elapsed().as_nanos() as f64;
        assert_eq!(
            result.is_ok(),
            is_a && a_is_valid,
            "unexpected verify result"
        );
        out.push(is_a, ns);
    }
    out
}

fn token_from(random: [u8; 32]) -> TokenSecret {
    TokenSecret::generate(TokenFamily::User, &mut |buf: &mut [u8]| {
        for (slot, byte) in buf.iter_mut().zip(random.iter().cycle()) {
            *slot = *byte;
        }
    })
}

fn prefix_of(digest: &TokenDigest) -> [u8; SHARED_PREFIX] {
    let mut out = [0_u8; SHARED_PREFIX];
    out.copy_from_slice(&digest.as_bytes()[..SHARED_PREFIX]);
    out
}

/// Inserts tokens with `digests` for the owner, 500 rows a statement, 20 statements a
/// transaction.
async fn seed_tokens(store: &LibsqlStore, digests: impl Iterator<Item = TokenDigest>) {
    let rows: Vec<String> = digests
        .enumerate()
        .map(|(i, digest)| {
            format!(
                "('tok_e{i:019x}', '{OWNER}', X'{}', 'api,manage', 'own_u_time', 'issued', 0)",
                digest.to_hex()
            )
        })
        .collect();
    let statements: Vec<String> = rows
        .chunks(500)
        .map(|chunk| {
            format!(
                "INSERT INTO tokens (id, owner_id, digest, kinds, display_prefix, origin, created_at) VALUES {};",
                chunk.join(", ")
            )
        })
        .collect();
    for batch in statements.chunks(20) {
        store
            .execute_batch_for_tests(&format!("BEGIN; {} COMMIT;", batch.join("\n")))
            .await
            .expect("seed tokens");
    }
}
