//! Rate limits, counted by `governor` (GCRA), with a short block list so that a key over
//! its budget is refused *before* the next attempt is evaluated.
//!
//! - Per identity: every authenticated request spends from its owner's bucket.
//! - Per address: every failed authentication spends from the client address's bucket
//!   (IPv4 per address, IPv6 per /64, IPv4-mapped IPv6 as IPv4); past it, the address's
//!   failures get 429 instead of 401 until the bucket refills. A valid credential is never
//!   refused for its address: only failures are counted and only failures are refused, so
//!   nobody, behind the same proxy or not, can lock another user out.
//!
//! The wrong-pairing-code budgets (per user and per channel) are not here: the store
//! counts them inside the transaction that evaluates a code (`ownership_core::quotas`),
//! which is the authority. In front of it, [`Limits::pairing_gate`] lets one pairing
//! attempt per user at a time through to the store in this process, and refuses without
//! the store while the store's last answer to that user said to wait: a blocked user's
//! flood of codes costs no store work and holds no connection.

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock as _, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use moka::sync::Cache;
use ownership_core::OwnerId;

/// The limits' settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Requests per second each identity may sustain.
    pub identity_per_second: u32,
    /// Burst each identity may spend at once.
    pub identity_burst: u32,
    /// Failed authentications an address may make per `failed_auth_window` before it is
    /// refused outright.
    pub failed_auth_per_address: u32,
    /// The window of `failed_auth_per_address`.
    pub failed_auth_window: Duration,
    /// Leaked-token reports (`POST /v1/tokens/revoke-leaked`) an address may send per
    /// `leak_reports_window`.
    pub leak_reports_per_address: u32,
    /// The window of `leak_reports_per_address`.
    pub leak_reports_window: Duration,
    /// Event streams (`GET /v1/me/events`) one user may hold open at once.
    pub event_streams_per_user: u32,
    /// Event streams the process holds open at once, for everyone.
    pub event_streams_total: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            identity_per_second: 50,
            identity_burst: 200,
            failed_auth_per_address: 30,
            failed_auth_window: Duration::from_secs(60),
            leak_reports_per_address: 10,
            leak_reports_window: Duration::from_secs(60),
            event_streams_per_user: 8,
            event_streams_total: 10_000,
        }
    }
}

/// "`n` per `window`, all of it available at once."
fn quota(n: u32, window: Duration) -> Quota {
    let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
    let period = (window / n.get()).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(n))
        .allow_burst(n)
}

/// A keyed failure budget: failures spend from the key's bucket; the failure that empties
/// it blocks the key until the bucket refills, so `n` failures are evaluated, never `n + 1`.
struct FailureBudget<K: Hash + Eq + Clone + Send + Sync + 'static> {
    limiter: DefaultKeyedRateLimiter<K, StateInformationMiddleware>,
    blocked: Cache<K, Instant>,
    /// How long the bucket takes to win back one failure.
    period: Duration,
    /// When the budget was made; the origin of `latest_block`.
    origin: Instant,
    /// Nanoseconds after `origin` at which the last block of any key ends: once past it,
    /// nothing is blocked and [`blocked_for`](Self::blocked_for) answers without a lookup
    /// (the path of every authenticated request).
    latest_block: AtomicU64,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> FailureBudget<K> {
    fn new(n: u32, window: Duration) -> Self {
        Self {
            limiter: RateLimiter::keyed(quota(n, window)).with_middleware(),
            blocked: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(window)
                .build(),
            period: window / n.max(1),
            origin: Instant::now(),
            latest_block: AtomicU64::new(0),
        }
    }

    fn since_origin(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// How long `key` must still wait, if it is blocked.
    fn blocked_for(&self, key: &K) -> Option<Duration> {
        let now = Instant::now();
        if self.since_origin(now) >= self.latest_block.load(Ordering::Acquire) {
            return None;
        }
        let until = self.blocked.get(key)?;
        (until > now).then(|| until - now)
    }

    /// Spends one failure; returns the wait if this exhausted the budget.
    fn fail(&self, key: &K) -> Option<Duration> {
        let wait = match self.limiter.check_key(key) {
            Ok(state) if state.remaining_burst_capacity() > 0 => return None,
            // This failure spent the last of the budget.
            Ok(_) => self.period,
            Err(not_until) => not_until.wait_time_from(DefaultClock::default().now()),
        }
        .max(Duration::from_secs(1));
        let until = Instant::now() + wait;
        // Raised before the entry is visible, so a lookup that finds it is never skipped.
        self.latest_block
            .fetch_max(self.since_origin(until), Ordering::AcqRel);
        self.blocked.insert(key.clone(), until);
        Some(wait)
    }
}

/// The key an address's failures are counted under: an IPv4 address itself (also when
/// it comes IPv4-mapped in IPv6), an IPv6 address's /64 (one host usually holds a whole
/// /64, so counting single addresses would hand it 2^64 budgets).
pub fn address_key(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
    }
}

/// Every limit of the service. Cheap to clone.
#[derive(Clone)]
pub struct Limits {
    inner: Arc<LimitsInner>,
}

struct LimitsInner {
    identity: DefaultKeyedRateLimiter<OwnerId>,
    failed_auth: FailureBudget<IpAddr>,
    /// Leaked-token reports per client address.
    leak_reports: DefaultKeyedRateLimiter<IpAddr>,
    /// Open event streams, per user and in all.
    streams: std::sync::Mutex<OpenStreams>,
    streams_per_user: u32,
    streams_total: u32,
    /// Checks since the limiters last dropped keys whose buckets are full again.
    checks: AtomicU64,
    /// Per user: one pairing attempt at a time, and until when the store said to wait.
    pairing_gates: Cache<OwnerId, Arc<tokio::sync::Mutex<Option<Instant>>>>,
}

/// A user's turn to submit a pairing code ([`Limits::pairing_gate`]): held while the store
/// evaluates it; [`PairingGate::record`] keeps the store's refusal.
#[derive(Debug)]
pub struct PairingGate {
    blocked_until: tokio::sync::OwnedMutexGuard<Option<Instant>>,
}

impl PairingGate {
    /// Remembers the store's answer: a refusal with a wait blocks the user's next attempts
    /// in this process until it is over.
    pub fn record<T>(&mut self, outcome: &Result<T, ownership_core::Error>) {
        if let Err(ownership_core::Error::RateLimited { retry_after }) = outcome {
            *self.blocked_until = Some(Instant::now() + *retry_after);
        }
    }
}

/// The event streams open now.
#[derive(Debug, Default)]
struct OpenStreams {
    per_user: std::collections::HashMap<OwnerId, u32>,
    total: u32,
}

/// One open event stream's place ([`Limits::open_stream`]); given back when dropped.
#[derive(Debug)]
pub struct StreamSlot {
    limits: Limits,
    owner: OwnerId,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let inner = &self.limits.inner;
        let mut open = inner
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_user.get_mut(&self.owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_user.remove(&self.owner);
            }
        }
    }
}

/// Every this many checks, the keyed limiters forget keys whose buckets have refilled, so
/// an attacker cycling through addresses cannot grow them without bound.
const PRUNE_EVERY: u64 = 4096;

impl LimitsInner {
    fn tick(&self) {
        let n = self.checks.fetch_add(1, Ordering::Relaxed);
        if n % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.identity.retain_recent();
            self.identity.shrink_to_fit();
            self.failed_auth.limiter.retain_recent();
            self.failed_auth.limiter.shrink_to_fit();
            self.leak_reports.retain_recent();
            self.leak_reports.shrink_to_fit();
        }
    }
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").finish_non_exhaustive()
    }
}

impl Limits {
    /// Limits with these settings.
    pub fn new(config: &LimitsConfig) -> Self {
        let per_second =
            NonZeroU32::new(config.identity_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.identity_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            inner: Arc::new(LimitsInner {
                identity: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
                failed_auth: FailureBudget::new(
                    config.failed_auth_per_address,
                    config.failed_auth_window,
                ),
                leak_reports: RateLimiter::keyed(quota(
                    config.leak_reports_per_address,
                    config.leak_reports_window,
                )),
                streams: std::sync::Mutex::new(OpenStreams::default()),
                streams_per_user: config.event_streams_per_user.max(1),
                streams_total: config.event_streams_total.max(1),
                checks: AtomicU64::new(0),
                pairing_gates: Cache::builder()
                    .max_capacity(100_000)
                    .time_to_idle(Duration::from_secs(3600))
                    .build(),
            }),
        }
    }

    /// Takes one of `owner`'s event-stream slots, held until the returned slot is dropped
    /// (when the stream ends). `None` when the user, or the process, holds as many as
    /// allowed: one tenant cannot hold every stream the process serves.
    pub fn open_stream(&self, owner: &OwnerId) -> Option<StreamSlot> {
        let inner = &self.inner;
        let mut open = inner
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = open.per_user.get(owner).copied().unwrap_or(0);
        if mine >= inner.streams_per_user || open.total >= inner.streams_total {
            return None;
        }
        open.per_user.insert(owner.clone(), mine + 1);
        open.total += 1;
        Some(StreamSlot {
            limits: self.clone(),
            owner: owner.clone(),
        })
    }

    /// Spends one of `addr`'s leaked-token reports; the wait when none is left.
    pub fn leak_report(&self, addr: IpAddr) -> Result<(), Duration> {
        self.inner.tick();
        self.inner
            .leak_reports
            .check_key(&address_key(addr))
            .map_err(|nu| {
                nu.wait_time_from(DefaultClock::default().now())
                    .max(Duration::from_secs(1))
            })
    }

    /// Spends one request of `owner`'s budget; the wait when it is empty.
    pub fn identity_request(&self, owner: &OwnerId) -> Result<(), Duration> {
        self.inner.tick();
        self.inner.identity.check_key(owner).map_err(|nu| {
            nu.wait_time_from(DefaultClock::default().now())
                .max(Duration::from_secs(1))
        })
    }

    /// Whether `addr`'s failed authentications are refused now, and for how long.
    pub fn address_blocked(&self, addr: IpAddr) -> Option<Duration> {
        self.inner.failed_auth.blocked_for(&address_key(addr))
    }

    /// Records a failed authentication from `addr`; the wait if its budget is spent (this
    /// failure, and those after it until the wait is over, are answered 429).
    pub fn address_failed(&self, addr: IpAddr) -> Option<Duration> {
        self.inner.tick();
        self.inner.failed_auth.fail(&address_key(addr))
    }

    /// Waits for `owner`'s turn to submit a pairing code (one at a time per user in this
    /// process); the wait instead when the store last refused them and that wait is not
    /// over. The store decides and counts; this only spares it a blocked user's flood.
    pub async fn pairing_gate(&self, owner: &OwnerId) -> Result<PairingGate, Duration> {
        let gate = self
            .inner
            .pairing_gates
            .get_with(owner.clone(), || Arc::new(tokio::sync::Mutex::new(None)));
        let blocked_until = gate.lock_owned().await;
        if let Some(until) = *blocked_until {
            let now = Instant::now();
            if until > now {
                return Err((until - now).max(Duration::from_secs(1)));
            }
        }
        Ok(PairingGate { blocked_until })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(s: &str) -> OwnerId {
        OwnerId::parse(s).unwrap()
    }

    #[tokio::test]
    async fn a_refused_pairing_attempt_blocks_the_users_next_ones_here() {
        let limits = Limits::new(&LimitsConfig::default());
        let mut gate = limits.pairing_gate(&oid("a")).await.unwrap();
        gate.record::<()>(&Err(ownership_core::Error::NotFound));
        drop(gate);
        let mut gate = limits.pairing_gate(&oid("a")).await.unwrap();
        gate.record::<()>(&Err(ownership_core::Error::RateLimited {
            retry_after: Duration::from_secs(60),
        }));
        drop(gate);
        let wait = limits.pairing_gate(&oid("a")).await.unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60));
        assert!(
            limits.pairing_gate(&oid("b")).await.is_ok(),
            "only that user"
        );
    }

    #[test]
    fn failed_authentication_blocks_the_address_only() {
        let limits = Limits::new(&LimitsConfig {
            failed_auth_per_address: 2,
            ..LimitsConfig::default()
        });
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        assert!(limits.address_blocked(a).is_none());
        assert!(limits.address_failed(a).is_none());
        assert!(
            limits.address_failed(a).is_some(),
            "the second failure spends it"
        );
        assert!(limits.address_blocked(a).is_some());
        assert!(limits.address_blocked(b).is_none());
    }

    #[test]
    fn addresses_are_counted_per_ipv4_address_and_ipv6_64() {
        let key = |s: &str| address_key(s.parse().unwrap()).to_string();
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::1"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:3::1"), "2001:db8:1:3::");
        assert_eq!(key("::1"), "::");

        let limits = Limits::new(&LimitsConfig {
            failed_auth_per_address: 2,
            ..LimitsConfig::default()
        });
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let next_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(limits.address_failed(one).is_none());
        assert!(
            limits.address_failed(same_64).is_some(),
            "one /64, one budget"
        );
        assert!(limits.address_blocked(one).is_some());
        assert!(limits.address_blocked(next_64).is_none());
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert!(limits.address_failed(v4).is_none());
        assert!(
            limits.address_failed(mapped).is_some(),
            "mapped is the same"
        );
    }
}
