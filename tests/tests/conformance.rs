//! Runs the backend conformance suite on libSQL (in memory and file) and PostgreSQL,
//! directly and through PgBouncer in transaction pooling mode (`postgres_pgbouncer`: the
//! whole suite, no case left out).
//!
//! Every case of `ownership_tests::conformance` runs on every backend as its own test
//! (`<backend>::<area>::<case>`), with a fresh store; after each case the audit chain must
//! verify. Filter like any test binary: `cargo test -p ownership-tests --test conformance -- postgres`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "test harness"
)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use libtest_mimic::{Arguments, Trial};
use ownership_core::ports::Store;
use ownership_core::quotas::Limits;
use ownership_tests::backends;
use ownership_tests::conformance::{Case, Ctx, cases, support::assert_chain};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Passed cases per backend, printed at the end.
static PASSED: [AtomicUsize; 4] = [
    AtomicUsize::new(0),
    AtomicUsize::new(0),
    AtomicUsize::new(0),
    AtomicUsize::new(0),
];
const BACKENDS: [&str; 4] = [
    "libsql_memory",
    "libsql_file",
    "postgres",
    "postgres_pgbouncer",
];

fn trials<S, F, Fut>(backend: usize, make: F) -> Vec<Trial>
where
    S: Store + 'static,
    F: Fn(Arc<ownership_store::ManualClock>, Limits) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = (S, Option<tempfile::TempDir>)> + Send,
{
    cases::<S>()
        .into_iter()
        .map(|Case { name, run, limits }| {
            let make = make.clone();
            Trial::test(format!("{}::{name}", BACKENDS[backend]), move || {
                runtime().block_on(async move {
                    let clock = backends::manual_clock();
                    let (store, _dir) = make(Arc::clone(&clock), limits).await;
                    let store = Arc::new(store);
                    run(Ctx {
                        store: Arc::clone(&store),
                        clock,
                        limits,
                    })
                    .await;
                    assert_chain(&*store).await;
                });
                PASSED[backend].fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        })
        .collect()
}

fn main() {
    let args = Arguments::from_args();
    let mut all = Vec::new();
    // Every store keys its audit chain, as a server with a master key does; the chain is
    // verified (keyed) after each case.
    let memory = trials(0, |c, l| async move {
        let s = backends::libsql_memory(c).await.with_limits(l);
        s.set_chain_keys(backends::test_chain_keys());
        (s, None)
    });
    let file = trials(1, |c, l| async move {
        let (s, d) = backends::libsql_file(c).await;
        let s = s.with_limits(l);
        s.set_chain_keys(backends::test_chain_keys());
        (s, Some(d))
    });
    let pg = trials(2, |c, l| async move {
        let s = backends::postgres(c).await.with_limits(l);
        s.set_chain_keys(backends::test_chain_keys());
        (s, None)
    });
    let pooled = trials(3, |c, l| async move {
        let s = backends::postgres_pooled(c).await.with_limits(l);
        s.set_chain_keys(backends::test_chain_keys());
        (s, None)
    });
    println!(
        "conformance cases registered per backend: libsql_memory {}, libsql_file {}, postgres {}, postgres_pgbouncer {}",
        memory.len(),
        file.len(),
        pg.len(),
        pooled.len()
    );
    all.extend(memory);
    all.extend(file);
    all.extend(pg);
    all.extend(pooled);
    let conclusion = libtest_mimic::run(&args, all);
    let counts: Vec<String> = BACKENDS
        .iter()
        .zip(&PASSED)
        .map(|(b, n)| format!("{b} {} passed", n.load(Ordering::SeqCst)))
        .collect();
    println!("conformance per backend: {}", counts.join(", "));
    conclusion.exit();
}
