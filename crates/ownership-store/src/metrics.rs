//! What the store records through the [`metrics`] facade: cache hits, misses,
//! evictions and size, store-call latency and errors by backend, and the PostgreSQL
//! invalidation listener. Nothing here knows an exporter: a process that installs a
//! recorder (`ownership serve` with metrics on) gets the series; without one, every call
//! is a no-op. Handles on warm paths are made once ([`CacheCounters`]) so a hit costs one
//! atomic add, no lock and no allocation. Every label value is one of a fixed few words;
//! none names a token, an owner or anything else a client chooses.
//!
//! Handles are bound to the recorder installed when they are made: install it before
//! opening the store.

use std::time::Instant;

use ::metrics::{Counter, Gauge, counter, gauge, histogram};

/// Hit and miss counters of one cached lookup, made once per cache.
#[derive(Clone)]
pub(crate) struct CacheCounters {
    pub(crate) hits: Counter,
    pub(crate) misses: Counter,
}

impl CacheCounters {
    /// The counters of the cache named `cache` (`principals`, `identities`, `resources`).
    pub(crate) fn new(cache: &'static str) -> Self {
        Self {
            hits: counter!("ownership_cache_hits_total", "cache" => cache),
            misses: counter!("ownership_cache_misses_total", "cache" => cache),
        }
    }
}

/// Eviction counter and size gauge of one cache map.
#[derive(Clone)]
pub(crate) struct MapGauges {
    pub(crate) evictions: Counter,
    pub(crate) entries: Gauge,
}

impl MapGauges {
    /// Handles that record nothing (a map nobody reports on).
    pub(crate) fn noop() -> Self {
        Self {
            evictions: Counter::noop(),
            entries: Gauge::noop(),
        }
    }

    /// The handles of the cache named `cache`.
    pub(crate) fn new(cache: &'static str) -> Self {
        Self {
            evictions: counter!("ownership_cache_evictions_total", "cache" => cache),
            entries: gauge!("ownership_cache_entries", "cache" => cache),
        }
    }
}

/// A store call's kind, the `op` label.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    /// A read transaction.
    Read,
    /// A mutating transaction.
    Write,
    /// Statements outside an explicit transaction (single lookups, migrations).
    Statement,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Statement => "statement",
        }
    }
}

/// Records one store call on `backend` (`libsql`, `postgres`) started at `started`:
/// its latency, and an error when the store could not answer (`Unavailable` or
/// `Integrity`; a domain answer such as "not found" is not an error of the store).
pub(crate) fn store_call<T>(
    backend: &'static str,
    op: Op,
    started: Instant,
    result: &ownership_core::Result<T>,
) {
    store_call_latency(backend, op, started);
    if let Err(ownership_core::Error::Unavailable(_) | ownership_core::Error::Integrity(_)) = result
    {
        store_error(backend);
    }
}

/// Runs `call` and records it as a store call of kind `op` on `backend`.
#[cfg(feature = "postgres")]
pub(crate) async fn timed<T>(
    backend: &'static str,
    op: Op,
    call: impl Future<Output = ownership_core::Result<T>>,
) -> ownership_core::Result<T> {
    let started = Instant::now();
    let result = call.await;
    store_call_latency(backend, op, started);
    result
}

/// Records the latency of a store call of kind `op` on `backend` started at `started`.
pub(crate) fn store_call_latency(backend: &'static str, op: Op, started: Instant) {
    histogram!("ownership_store_operation_duration_seconds", "backend" => backend, "op" => op.as_str())
        .record(started.elapsed().as_secs_f64());
}

/// Makes `backend`'s error counter exist at zero (a rate over a series that does not
/// exist yet is no rate at all).
pub(crate) fn backend_opened(backend: &'static str) {
    counter!("ownership_store_errors_total", "backend" => backend).increment(0);
}

/// Counts an error of the store on `backend`: it could not answer (unreachable, a
/// failed statement, a row that does not parse).
pub(crate) fn store_error(backend: &'static str) {
    counter!("ownership_store_errors_total", "backend" => backend).increment(1);
}

/// Counts a committed burn of a channel's pending pairing codes (its wrong-code budget
/// ran out inside a redemption's transaction): the `pairing.burned` event's count.
pub(crate) fn pairing_burned(event: &ownership_core::audit::AuditEvent) {
    if event.action != ownership_core::audit::AuditAction::PairingBurned {
        return;
    }
    let codes = serde_json::from_str::<serde_json::Value>(&event.details)
        .ok()
        .and_then(|d| d.get("burned").and_then(serde_json::Value::as_u64))
        .unwrap_or(0);
    counter!("ownership_pairing_burns_total").increment(1);
    counter!("ownership_pairing_codes_burned_total").increment(codes);
}

/// Counts an invalidation received from another process (`kind`: `token`, `owner`,
/// `identity`, `resource`, `all`, or `unreadable`): a PostgreSQL notification, or a
/// libSQL change another process committed to the same file.
pub(crate) fn invalidation_received(kind: &'static str) {
    counter!("ownership_cache_invalidations_received_total", "kind" => kind).increment(1);
}

/// Makes the listener's series exist at zero when it starts.
#[cfg(feature = "postgres")]
pub(crate) fn listener_started() {
    for kind in [
        "token",
        "owner",
        "identity",
        "resource",
        "all",
        "unreadable",
    ] {
        counter!("ownership_cache_invalidations_received_total", "kind" => kind).increment(0);
    }
    counter!("ownership_invalidation_listener_reconnects_total").increment(0);
    listener_up(false);
}

/// Counts a (re)connection of the invalidation listener after its first one.
#[cfg(feature = "postgres")]
pub(crate) fn listener_reconnected() {
    counter!("ownership_invalidation_listener_reconnects_total").increment(1);
}

/// Whether the invalidation listener is connected (1) or not (0).
#[cfg(feature = "postgres")]
pub(crate) fn listener_up(up: bool) {
    gauge!("ownership_invalidation_listener_up").set(if up { 1.0 } else { 0.0 });
}
