//! The cache's map: bounded, sharded, with a deadline per entry and a last-use stamp.
//!
//! Why not moka or quick_cache: on the warm hit path (SHA-256 of the token, then a lookup
//! among 100k entries) neither comes within 1.5× of SHA-256 plus a `std` hash-map lookup,
//! measured in the same run as this map (the "Warm hit path" rows of docs/benchmarks.md,
//! section `cache` of the bench suite, which compiles this file in), and a warm token
//! check is one such lookup. This map does what the cache needs and no more:
//!
//! - [`SHARDS`] shards, each a `std` `HashMap` behind an `RwLock`, chosen by the key's hash,
//!   so lookups take a read lock on one shard and never contend with each other (keys
//!   that are SHA-256 digests are hashed by [`DigestKeys`], a few instructions, instead of
//!   SipHash);
//! - a deadline per entry (the caller's clock, in Unix nanoseconds): an entry past it is
//!   never returned, and is replaced by the next insert or evicted first;
//! - a bound per shard: when a shard is full, its oldest entries (insertion order) go;
//! - a last-use stamp per entry, set with one relaxed atomic on a hit and collected by
//!   [`TtlMap::take_uses`], so the write-behind of `last_used_at` costs a hit no lock and no
//!   allocation. Stamps of entries that leave the map (evicted, invalidated, replaced by a
//!   different value) are kept aside and collected too: no use is lost.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::metrics::MapGauges;

/// An entry count as a gauge value (exact below 2^53).
#[allow(
    clippy::cast_precision_loss,
    reason = "entry counts are far below 2^53, where f64 is exact"
)]
fn count(n: usize) -> f64 {
    n as f64
}

/// Shards per map (a power of two).
pub(crate) const SHARDS: usize = 64;
const _: () = assert!(SHARDS.is_power_of_two());

struct Slot<V> {
    value: V,
    /// Insertion number in the shard: tells a live entry from an older one in `order`.
    seq: u64,
    /// Unix nanoseconds after which the entry is never returned.
    deadline: i64,
    /// Unix nanoseconds of the last recorded use; 0 when none is pending.
    used: AtomicI64,
}

struct Shard<K, V, S> {
    map: HashMap<K, Slot<V>, S>,
    /// Keys in insertion order, with the `seq` they were inserted with (entries replaced or
    /// removed since leave stale pairs, skipped on eviction and compacted away).
    order: VecDeque<(K, u64)>,
    next_seq: u64,
}

/// A bounded concurrent map with per-entry deadlines (see the module docs).
pub(crate) struct TtlMap<K, V, S = RandomState> {
    shards: Box<[RwLock<Shard<K, V, S>>]>,
    hasher: S,
    per_shard: usize,
    /// Uses recorded on entries that have left the map, waiting for [`TtlMap::take_uses`].
    spilled: Mutex<Vec<(V, i64)>>,
    /// Capacity evictions and the entry count, for metrics (no-ops unless instrumented).
    gauges: MapGauges,
}

impl<K: Hash + Eq + Clone, V: Clone> TtlMap<K, V> {
    /// A map holding at most about `capacity` entries (rounded up to a multiple of
    /// [`SHARDS`]), hashing keys with SipHash.
    pub(crate) fn new(capacity: u64) -> Self {
        Self::with_hasher(capacity, RandomState::new())
    }
}

impl<K: Hash + Eq + Clone, V: Clone, S: BuildHasher + Clone> TtlMap<K, V, S> {
    /// [`TtlMap::new`] with another way to hash keys.
    pub(crate) fn with_hasher(capacity: u64, hasher: S) -> Self {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS)
            .map(|_| {
                RwLock::new(Shard {
                    map: HashMap::with_hasher(hasher.clone()),
                    order: VecDeque::new(),
                    next_seq: 0,
                })
            })
            .collect();
        Self {
            shards,
            hasher,
            per_shard,
            spilled: Mutex::new(Vec::new()),
            gauges: MapGauges::noop(),
        }
    }

    /// Reports this map's capacity evictions and size as the cache named `cache`.
    pub(crate) fn instrumented(mut self, cache: &'static str) -> Self {
        self.gauges = MapGauges::new(cache);
        self
    }

    /// Moves the size gauge by the change from `before` to `after` entries.
    fn resized(&self, before: usize, after: usize) {
        if after > before {
            self.gauges.entries.increment(count(after - before));
        } else if before > after {
            self.gauges.entries.decrement(count(before - after));
        }
    }

    fn shard_of(&self, key: &K) -> &RwLock<Shard<K, V, S>> {
        let hash = self.hasher.hash_one(key);
        // Bits 32 and up: the shard's own `HashMap` picks a bucket with the low bits of the
        // same hash and tags it with the top seven, so the shard must depend on neither.
        let index = usize::try_from(hash >> 32).unwrap_or(0);
        #[allow(
            clippy::indexing_slicing,
            reason = "index % SHARDS < SHARDS == shards.len()"
        )]
        &self.shards[index % SHARDS]
    }

    fn read(lock: &RwLock<Shard<K, V, S>>) -> RwLockReadGuard<'_, Shard<K, V, S>> {
        lock.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(lock: &RwLock<Shard<K, V, S>>) -> RwLockWriteGuard<'_, Shard<K, V, S>> {
        lock.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value for `key` if present and `now` is before its deadline.
    pub(crate) fn get(&self, key: &K, now: i64) -> Option<V> {
        let shard = Self::read(self.shard_of(key));
        let slot = shard.map.get(key)?;
        (now < slot.deadline).then(|| slot.value.clone())
    }

    /// [`TtlMap::get`], and records a use at `now` on the entry it returns.
    #[cfg(test)]
    pub(crate) fn get_and_touch(&self, key: &K, now: i64) -> Option<V> {
        self.read_and_touch(key, now, V::clone)
    }

    /// What `read` makes of the value for `key` (under the shard's read lock) if present
    /// and `now` is before its deadline, recording a use at `now` on the entry.
    pub(crate) fn read_and_touch<R>(
        &self,
        key: &K,
        now: i64,
        read: impl FnOnce(&V) -> R,
    ) -> Option<R> {
        let shard = Self::read(self.shard_of(key));
        let slot = shard.map.get(key)?;
        if now >= slot.deadline {
            return None;
        }
        // A load first: a hot entry read by every core is not written on every hit.
        if slot.used.load(Ordering::Relaxed) < now {
            slot.used.fetch_max(now, Ordering::Relaxed);
        }
        Some(read(&slot.value))
    }

    /// Inserts or replaces `key`, to be served until `deadline`; a pending use of the
    /// entry it replaces is kept. Evicts the shard's oldest entries beyond its bound.
    pub(crate) fn insert(&self, key: K, value: V, deadline: i64) {
        let mut evicted = Vec::new();
        {
            let mut guard = Self::write(self.shard_of(&key));
            let Shard {
                map,
                order,
                next_seq,
            } = &mut *guard;
            let seq = *next_seq;
            *next_seq = next_seq.wrapping_add(1);
            let slot = Slot {
                value,
                seq,
                deadline,
                used: AtomicI64::new(0),
            };
            let before = map.len();
            if let Some(old) = map.insert(key.clone(), slot) {
                let pending = old.used.into_inner();
                if pending != 0
                    && let Some(new) = map.get(&key)
                {
                    new.used.fetch_max(pending, Ordering::Relaxed);
                }
            }
            order.push_back((key, seq));
            while map.len() > self.per_shard {
                let Some((oldest, seq)) = order.pop_front() else {
                    break;
                };
                if map.get(&oldest).is_some_and(|s| s.seq == seq)
                    && let Some(slot) = map.remove(&oldest)
                {
                    evicted.push(slot);
                }
            }
            // Stale pairs (of entries replaced, removed or evicted since) are dropped once
            // they outnumber the live entries, so the queue stays within twice what the
            // shard holds, not twice what it may hold: with 10k tokens re-read every TTL
            // and the default bound, compacting only at twice the bound let each queue
            // grow to ~20 times the live entries (found by the soak run). Amortized O(1):
            // at least as many inserts as live entries come between two compactions.
            if order.len() > 2 * map.len().max(8) {
                order.retain(|(k, seq)| map.get(k).is_some_and(|s| s.seq == *seq));
                if order.capacity() > 4 * order.len().max(8) {
                    order.shrink_to(2 * order.len().max(8));
                }
            }
            self.resized(before, map.len());
        }
        if !evicted.is_empty() {
            self.gauges.evictions.increment(evicted.len() as u64);
        }
        self.spill(evicted);
    }

    /// Removes `key`.
    pub(crate) fn remove(&self, key: &K) {
        let removed = Self::write(self.shard_of(key)).map.remove(key);
        if removed.is_some() {
            self.gauges.entries.decrement(1.0);
        }
        self.spill(removed);
    }

    /// Removes every entry whose value matches `pred`.
    pub(crate) fn remove_if(&self, pred: impl Fn(&V) -> bool) {
        for lock in &self.shards {
            let mut removed = Vec::new();
            Self::write(lock).map.retain(|_, slot| {
                let hit = pred(&slot.value);
                if hit {
                    removed.push((slot.value.clone(), slot.used.swap(0, Ordering::Relaxed)));
                }
                !hit
            });
            self.resized(removed.len(), 0);
            self.spill_pairs(removed);
        }
    }

    /// Removes everything.
    pub(crate) fn clear(&self) {
        for lock in &self.shards {
            let drained: Vec<Slot<V>> = {
                let mut shard = Self::write(lock);
                shard.order.clear();
                shard.map.drain().map(|(_, slot)| slot).collect()
            };
            self.resized(drained.len(), 0);
            self.spill(drained);
        }
    }

    /// Entries currently held (including any past their deadline not yet replaced).
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|lock| Self::read(lock).map.len())
            .sum()
    }

    /// Takes every recorded use (value, Unix nanoseconds), leaving none pending.
    pub(crate) fn take_uses(&self) -> Vec<(V, i64)> {
        let mut out = std::mem::take(&mut *self.spilled());
        for lock in &self.shards {
            let shard = Self::read(lock);
            for slot in shard.map.values() {
                if slot.used.load(Ordering::Relaxed) != 0 {
                    let at = slot.used.swap(0, Ordering::Relaxed);
                    if at != 0 {
                        out.push((slot.value.clone(), at));
                    }
                }
            }
        }
        out
    }

    /// Puts uses back (a failed write-behind), to be taken again.
    pub(crate) fn restore_uses(&self, uses: Vec<(V, i64)>) {
        self.spill_pairs(uses);
    }

    fn spilled(&self) -> std::sync::MutexGuard<'_, Vec<(V, i64)>> {
        self.spilled.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn spill(&self, slots: impl IntoIterator<Item = Slot<V>>) {
        self.spill_pairs(slots.into_iter().map(|s| {
            let used = s.used.into_inner();
            (s.value, used)
        }));
    }

    fn spill_pairs(&self, pairs: impl IntoIterator<Item = (V, i64)>) {
        let mut pairs = pairs.into_iter().filter(|(_, used)| *used != 0).peekable();
        if pairs.peek().is_some() {
            self.spilled().extend(pairs);
        }
    }
}

/// Hashes 32-byte keys that are SHA-256 digests: a folded multiply of two of the key's
/// 8-byte words, each mixed with a secret drawn once per map, instead of SipHash over all
/// 32 bytes. The digests are uniform already; the secret keeps an attacker who could
/// choose many stored digests (an admin provisioning crafted tokens; grinding is cheap
/// for a few bits) from aiming them at one bucket without knowing it.
#[derive(Clone)]
pub(crate) struct DigestKeys {
    k0: u64,
    k1: u64,
}

impl DigestKeys {
    pub(crate) fn new() -> Self {
        // `RandomState` is seeded from the operating system's randomness.
        let seed = RandomState::new();
        Self {
            k0: seed.hash_one(0_u8),
            k1: seed.hash_one(1_u8),
        }
    }
}

impl BuildHasher for DigestKeys {
    type Hasher = DigestHasher;
    fn build_hasher(&self) -> DigestHasher {
        DigestHasher {
            k0: self.k0,
            k1: self.k1,
            hash: 0,
        }
    }
}

/// The [`Hasher`] of [`DigestKeys`].
pub(crate) struct DigestHasher {
    k0: u64,
    k1: u64,
    hash: u64,
}

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        let word = |i: usize| {
            bytes
                .get(i..i + 8)
                .and_then(|w| <[u8; 8]>::try_from(w).ok())
                .map_or(0, u64::from_le_bytes)
        };
        let product = u128::from(word(0) ^ self.k0) * u128::from(word(8) ^ self.k1);
        let folded = (product as u64) ^ ((product >> 64) as u64);
        self.hash ^= folded;
    }

    /// The length prefix of the key's slice: the same for every digest.
    fn write_usize(&mut self, _: usize) {}

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn serves_until_the_deadline_only() {
        let m: TtlMap<u32, &str> = TtlMap::new(100);
        m.insert(1, "a", 10);
        assert_eq!(m.get(&1, 9), Some("a"));
        assert_eq!(m.get(&1, 10), None);
        assert_eq!(m.get_and_touch(&1, 11), None);
        m.insert(1, "b", 20);
        assert_eq!(m.get(&1, 11), Some("b"));
    }

    #[test]
    fn stays_within_its_bound_and_evicts_oldest_first() {
        let m: TtlMap<u32, u32> = TtlMap::new(SHARDS as u64); // one entry per shard
        for i in 0..10_000 {
            m.insert(i, i, i64::MAX);
        }
        assert!(m.len() <= SHARDS, "{} entries", m.len());
        // The newest key is always kept: it was inserted last into its shard.
        assert_eq!(m.get(&9_999, 0), Some(9_999));
        // And the order queues stay bounded too.
        for lock in &m.shards {
            assert!(lock.read().unwrap().order.len() <= 2 * 8 + 1);
        }
    }

    #[test]
    fn re_inserting_few_keys_keeps_the_order_queues_small() {
        // A large bound and a few live keys, each replaced again and again (a token read
        // again after every TTL): the queues hold about the live entries, not the bound.
        let m: TtlMap<u32, u32> = TtlMap::new(100_000);
        for round in 0..2_000 {
            for key in 0..256 {
                m.insert(key, round, i64::MAX);
            }
        }
        assert_eq!(m.len(), 256);
        for lock in &m.shards {
            let shard = lock.read().unwrap();
            assert!(
                shard.order.len() <= 2 * shard.map.len().max(8) + 1,
                "{} queued for {} live",
                shard.order.len(),
                shard.map.len()
            );
            assert!(shard.order.capacity() <= 64, "{}", shard.order.capacity());
        }
    }

    #[test]
    fn uses_are_taken_once_and_survive_removal_and_replacement() {
        let m: TtlMap<u32, u32> = TtlMap::new(1_000);
        m.insert(1, 10, i64::MAX);
        m.insert(2, 20, i64::MAX);
        m.insert(3, 30, i64::MAX);
        assert_eq!(m.get_and_touch(&1, 5), Some(10));
        assert_eq!(m.get_and_touch(&1, 4), Some(10)); // older: the stamp keeps 5
        assert_eq!(m.get_and_touch(&2, 7), Some(20));
        assert_eq!(m.get_and_touch(&3, 8), Some(30));
        m.remove(&2); // removed: its use is kept aside
        m.insert(3, 31, i64::MAX); // replaced: its use carries over
        let mut uses = m.take_uses();
        uses.sort_unstable();
        assert_eq!(uses, vec![(10, 5), (20, 7), (31, 8)]);
        assert!(m.take_uses().is_empty(), "taken once");
        m.restore_uses(vec![(10, 5)]);
        assert_eq!(m.take_uses(), vec![(10, 5)]);
    }

    #[test]
    fn digest_keys_find_every_digest_and_spread_them() {
        use sha2::Digest as _;
        let m: TtlMap<[u8; 32], u32, DigestKeys> = TtlMap::with_hasher(100_000, DigestKeys::new());
        let key = |i: u32| -> [u8; 32] { sha2::Sha256::digest(i.to_le_bytes()).into() };
        for i in 0..20_000 {
            m.insert(key(i), i, i64::MAX);
        }
        for i in 0..20_000 {
            assert_eq!(m.get(&key(i), 0), Some(i));
        }
        assert_eq!(m.get(&key(20_000), 0), None);
        // 20,000 keys over 64 shards: about 312 each; a shard-picking hash that ignored
        // the digest would put them all in one.
        let sizes: Vec<usize> = m
            .shards
            .iter()
            .map(|l| l.read().unwrap().map.len())
            .collect();
        assert!(sizes.iter().all(|&n| (150..=500).contains(&n)), "{sizes:?}");
        // Another map draws other secrets.
        let (a, b) = (DigestKeys::new(), DigestKeys::new());
        assert_ne!(a.hash_one(key(1)), b.hash_one(key(1)));
    }

    #[test]
    fn remove_if_and_clear_keep_pending_uses() {
        let m: TtlMap<u32, u32> = TtlMap::new(1_000);
        for i in 0..100 {
            m.insert(i, i, i64::MAX);
            m.get_and_touch(&i, 1);
        }
        m.remove_if(|v| v % 2 == 0);
        assert_eq!(m.len(), 50);
        assert_eq!(m.get(&2, 0), None);
        assert_eq!(m.get(&3, 0), Some(3));
        m.clear();
        assert_eq!(m.len(), 0);
        assert_eq!(m.take_uses().len(), 100);
    }
}
