//! The per-endpoint circuit breaker of the delivery worker (docs/webhooks.md, "Fairness and
//! the circuit breaker"): a pure state machine, time passed in.
//!
//! An endpoint is *closed* (deliveries go) until `threshold` attempts in a row fail for a
//! reason that says the endpoint is unwell ([`Health::Down`]: a timeout, a connection
//! error, a 5xx). It is then *open* for `cool_down`: its deliveries wait (the worker holds
//! them back in the store without counting an attempt). After the cool-down it is
//! *half-open*: one trial delivery goes; its success closes the breaker, its failure opens
//! it again for another cool-down. Any answer below 500 is a sign of life and closes it.
//!
//! The state is per process and per endpoint: an owner's endpoint is known by its URL and
//! when it was set, so setting the webhook again starts from a closed breaker.

use std::collections::HashMap;
use std::time::Duration;

use ownership_core::OwnerId;
use ownership_core::ports::WebhookEndpoint;
use time::OffsetDateTime;

/// What an attempt says about the endpoint's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// It answered (2xx, or any status below 500): the endpoint is alive.
    Up,
    /// A timeout, a connection error or a 5xx.
    Down,
    /// Nothing was learned (the destination was refused before connecting, the signing
    /// secret did not open, the delivery belonged to a replaced endpoint).
    Unknown,
}

/// A breaker's state, as the metrics and the log name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Deliveries go.
    Closed,
    /// Deliveries wait until the cool-down ends.
    Open,
    /// One trial delivery may go.
    HalfOpen,
}

/// Whether a delivery may start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send it.
    Go,
    /// The breaker is open until this time: hold the owner's deliveries back until then.
    OpenUntil(OffsetDateTime),
    /// A trial is in flight (half-open): leave it for now.
    Wait,
}

/// A change the worker reports (log, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The breaker opened (or opened again after a failed trial) until this time.
    Opened(OffsetDateTime),
    /// A success closed it.
    Closed,
}

/// Thresholds of the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Failures in a row that open the breaker; 0 turns the breaker off.
    pub threshold: u32,
    /// How long it stays open before a trial.
    pub cool_down: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            threshold: 5,
            cool_down: Duration::from_secs(60),
        }
    }
}

#[derive(Debug)]
struct Breaker {
    /// The endpoint it guards: URL and when it was set.
    endpoint: (String, OffsetDateTime),
    /// Failures in a row while closed.
    failures: u32,
    /// Open until this time.
    open_until: Option<OffsetDateTime>,
    /// Half-open: the trial is in flight.
    trial: bool,
}

impl Breaker {
    fn state(&self, now: OffsetDateTime) -> State {
        match self.open_until {
            Some(until) if now < until => State::Open,
            Some(_) => State::HalfOpen,
            None => State::Closed,
        }
    }
}

/// The breakers of one worker, one per owner's endpoint that has failed lately (an
/// endpoint with no failure in a row has no entry).
#[derive(Debug, Default)]
pub struct Breakers {
    settings: BreakerSettings,
    map: HashMap<OwnerId, Breaker>,
}

fn key(endpoint: &WebhookEndpoint) -> (String, OffsetDateTime) {
    (endpoint.url.as_str().to_owned(), endpoint.created_at)
}

impl Breakers {
    /// No breaker tripped yet.
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            map: HashMap::new(),
        }
    }

    /// The owner's breaker if it guards this endpoint; a breaker of an endpoint that was
    /// replaced since is dropped.
    fn current(&mut self, endpoint: &WebhookEndpoint) -> Option<&mut Breaker> {
        let owner = &endpoint.owner_id;
        if self
            .map
            .get(owner)
            .is_some_and(|b| b.endpoint != key(endpoint))
        {
            self.map.remove(owner);
        }
        self.map.get_mut(owner)
    }

    /// Whether a delivery to `endpoint` may start at `now`. A `Go` in the half-open state
    /// makes that delivery the trial: the next ones `Wait` until it is recorded.
    pub fn admit(&mut self, endpoint: &WebhookEndpoint, now: OffsetDateTime) -> Admission {
        let Some(b) = self.current(endpoint) else {
            return Admission::Go;
        };
        match (b.state(now), b.open_until) {
            (State::Open, Some(until)) => Admission::OpenUntil(until),
            (State::HalfOpen, _) if b.trial => Admission::Wait,
            (State::HalfOpen, _) => {
                b.trial = true;
                Admission::Go
            }
            _ => Admission::Go,
        }
    }

    /// Records what an attempt to `endpoint` said about it, at `now`.
    pub fn record(
        &mut self,
        endpoint: &WebhookEndpoint,
        health: Health,
        now: OffsetDateTime,
    ) -> Option<Transition> {
        let settings = self.settings;
        if settings.threshold == 0 {
            return None;
        }
        let until = now + settings.cool_down;
        match health {
            Health::Up => {
                let was = self.map.remove(&endpoint.owner_id)?;
                (was.endpoint == key(endpoint) && was.open_until.is_some())
                    .then_some(Transition::Closed)
            }
            Health::Unknown => {
                if let Some(b) = self.current(endpoint) {
                    b.trial = false;
                }
                None
            }
            Health::Down => {
                let b = match self.current(endpoint) {
                    Some(b) => b,
                    None => self
                        .map
                        .entry(endpoint.owner_id.clone())
                        .or_insert(Breaker {
                            endpoint: key(endpoint),
                            failures: 0,
                            open_until: None,
                            trial: false,
                        }),
                };
                match b.state(now) {
                    // An attempt that started before the breaker opened.
                    State::Open => None,
                    State::HalfOpen => {
                        b.open_until = Some(until);
                        b.trial = false;
                        Some(Transition::Opened(until))
                    }
                    State::Closed => {
                        b.failures = b.failures.saturating_add(1);
                        (b.failures >= settings.threshold).then(|| {
                            b.open_until = Some(until);
                            Transition::Opened(until)
                        })
                    }
                }
            }
        }
    }

    /// How many breakers are open and how many half-open at `now`.
    pub fn counts(&self, now: OffsetDateTime) -> (usize, usize) {
        self.map
            .values()
            .fold((0, 0), |(open, half), b| match b.state(now) {
                State::Open => (open + 1, half),
                State::HalfOpen => (open, half + 1),
                State::Closed => (open, half),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ownership_core::crypto::Sealed;
    use ownership_core::webhook::EndpointUrl;

    fn endpoint(owner: &str, url: &str, set: i64) -> WebhookEndpoint {
        WebhookEndpoint {
            owner_id: OwnerId::parse(owner).unwrap(),
            url: EndpointUrl::parse(url).expect("a test URL"),
            secret: Sealed {
                nonce: [0; 12],
                ciphertext: vec![1],
                key_version: 1,
            },
            previous_secret: None,
            created_at: OffsetDateTime::from_unix_timestamp(set).unwrap(),
        }
    }

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_000_000 + secs).unwrap()
    }

    fn breakers() -> Breakers {
        Breakers::new(BreakerSettings {
            threshold: 3,
            cool_down: Duration::from_secs(60),
        })
    }

    #[test]
    fn opens_after_the_threshold_then_one_trial_closes_it() {
        let mut b = breakers();
        let e = endpoint("alice", "https://a.example/hook", 1);
        assert_eq!(b.record(&e, Health::Down, at(0)), None);
        assert_eq!(b.record(&e, Health::Down, at(1)), None);
        assert_eq!(b.admit(&e, at(1)), Admission::Go);
        assert_eq!(
            b.record(&e, Health::Down, at(2)),
            Some(Transition::Opened(at(62)))
        );
        assert_eq!(b.counts(at(3)), (1, 0));
        assert_eq!(b.admit(&e, at(3)), Admission::OpenUntil(at(62)));
        assert_eq!(b.admit(&e, at(61)), Admission::OpenUntil(at(62)));
        // Half-open: one trial, the others wait for it.
        assert_eq!(b.counts(at(62)), (0, 1));
        assert_eq!(b.admit(&e, at(62)), Admission::Go);
        assert_eq!(b.admit(&e, at(62)), Admission::Wait);
        assert_eq!(b.record(&e, Health::Up, at(63)), Some(Transition::Closed));
        assert_eq!(b.admit(&e, at(63)), Admission::Go);
        assert_eq!(b.counts(at(63)), (0, 0));
    }

    #[test]
    fn a_failed_trial_opens_it_again_and_a_success_resets_the_count() {
        let mut b = breakers();
        let e = endpoint("alice", "https://a.example/hook", 1);
        for s in 0..3 {
            b.record(&e, Health::Down, at(s));
        }
        assert_eq!(b.admit(&e, at(70)), Admission::Go);
        assert_eq!(
            b.record(&e, Health::Down, at(71)),
            Some(Transition::Opened(at(131)))
        );
        assert_eq!(b.admit(&e, at(100)), Admission::OpenUntil(at(131)));
        // A trial that learned nothing lets another go.
        assert_eq!(b.admit(&e, at(131)), Admission::Go);
        assert_eq!(b.record(&e, Health::Unknown, at(132)), None);
        assert_eq!(b.admit(&e, at(132)), Admission::Go);
        assert_eq!(b.record(&e, Health::Up, at(133)), Some(Transition::Closed));
        // Two failures, a success, two failures: still closed.
        for s in [140, 141] {
            assert_eq!(b.record(&e, Health::Down, at(s)), None);
        }
        assert_eq!(b.record(&e, Health::Up, at(142)), None);
        for s in [143, 144] {
            assert_eq!(b.record(&e, Health::Down, at(s)), None);
        }
        assert_eq!(b.admit(&e, at(145)), Admission::Go);
    }

    #[test]
    fn breakers_are_per_endpoint_and_a_new_endpoint_starts_closed() {
        let mut b = breakers();
        let alice = endpoint("alice", "https://a.example/hook", 1);
        let bob = endpoint("bob", "https://a.example/hook", 1);
        for s in 0..3 {
            b.record(&alice, Health::Down, at(s));
        }
        assert_eq!(b.admit(&bob, at(3)), Admission::Go);
        assert!(matches!(b.admit(&alice, at(3)), Admission::OpenUntil(_)));
        let replaced = endpoint("alice", "https://b.example/hook", 2);
        assert_eq!(b.admit(&replaced, at(4)), Admission::Go);
        assert_eq!(b.counts(at(4)), (0, 0));
    }

    #[test]
    fn a_zero_threshold_turns_it_off() {
        let mut b = Breakers::new(BreakerSettings {
            threshold: 0,
            cool_down: Duration::from_secs(60),
        });
        let e = endpoint("alice", "https://a.example/hook", 1);
        for s in 0..100 {
            assert_eq!(b.record(&e, Health::Down, at(s)), None);
            assert_eq!(b.admit(&e, at(s)), Admission::Go);
        }
    }
}
