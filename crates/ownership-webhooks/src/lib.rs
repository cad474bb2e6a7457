//! # ownership-webhooks
//!
//! Outbound webhooks (docs/webhooks.md): endpoint URL validation, the destination check
//! that runs again at delivery time, and the delivery worker. A crate of its own that
//! depends on `ownership-core` and its HTTP client only: the HTTP service uses its URL
//! checks when an owner registers an endpoint, and whoever runs the server (the
//! `ownership` binary, or a downstream app embedding the store) starts [`run_worker`].
//!
//! # Destinations (ASVS 5.0 1.3.6, 13.2.4, 15.3.2)
//!
//! An endpoint URL must be `https://` with a host and no user information
//! ([`parse_endpoint_url`]). Its host is resolved when it is registered *and again every
//! time a delivery connects*: the worker's HTTP client resolves names through
//! [`GuardedResolver`], which refuses the whole name when any address it resolves to is
//! loopback, private, link-local, unspecified, multicast, shared (CGNAT), reserved or an
//! IPv4-mapped/translated form ([`address_allowed`]), so a name that later moves to an
//! internal address (DNS rebinding) is refused at the connection that would use it. The
//! client follows no redirects, uses no proxy and has timeouts.
//!
//! With `allow_private` (the server's `http.allow_private_webhooks` setting) every unicast
//! address is allowed, and plain `http://` too, but only to loopback (`127.0.0.0/8`, `::1`,
//! `localhost`).
//!
//! # The delivery queue
//!
//! The audit log is the outbox: every mutation appends its event in the same transaction
//! as the change, so an event exists exactly when its change does. [`run_worker`] tails the
//! log and enqueues one delivery per event for owners whose endpoint existed when the event
//! happened, with a delivery id derived from the event's sequence number
//! ([`service::event_delivery_id`]): enqueueing twice is a conflict, not a second message.
//! The worker keeps no cursor of its own. At start it reads the head of the log, then for
//! every owner with an endpoint enqueues what is missing after the newest delivery in that
//! owner's log; from then on it follows the log. Deliveries live in the store with their
//! attempts and next attempt time, so a restart (or a crash) between enqueue and delivery
//! loses nothing; a crash between a send and its record means the message is sent again
//! (at-least-once; receivers deduplicate on `webhook-id`).
//!
//! # Fairness
//!
//! Due deliveries are taken in turns between owners, at most
//! [`WebhookSettings::per_owner`] of one owner's in flight, and each endpoint sits behind a
//! circuit breaker ([`breaker`]) that holds its deliveries back for a cool-down after
//! repeated failures, so one owner's slow, hanging or dead endpoint does not delay the
//! others'.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ownership_core::audit::AuditEvent;
use ownership_core::authz::{AdminScope, OwnerScope, SystemScope};
use ownership_core::crypto::MasterKeys;
use ownership_core::ids::DeliveryId;
use ownership_core::ports::{
    AuditFilter, Delivery, DeliveryState, PageRequest, Store, WebhookEndpoint,
};
use ownership_core::service::{self, RetryPolicy};
use ownership_core::webhook::{EndpointUrl, WebhookSecret, sign_headers};
use ownership_core::{Error, OwnerId};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use time::OffsetDateTime;
use tokio::task::JoinSet;

pub mod breaker;

pub use breaker::BreakerSettings;
use breaker::{Admission, Breakers, Health, Transition};

pub use ownership_core::webhook::URL_MAX_BYTES;

/// Events read per page while following the audit log.
const PAGE: u32 = 500;

/// How far behind (in events) the worker may fall before it catches up owner by owner
/// instead of reading the whole gap from the global log.
const MAX_TAIL_EVENTS: usize = 5_000;

/// Settings of the delivery worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Run the worker in this process (several processes may run it; see
    /// `docs/webhooks.md`).
    pub worker: bool,
    /// How often the worker looks for new events and due deliveries.
    pub poll_interval: Duration,
    /// Attempts and backoff.
    pub retry: RetryPolicy,
    /// Longest a delivery request may take, connection included.
    pub request_timeout: Duration,
    /// Longest the connection may take.
    pub connect_timeout: Duration,
    /// The most due deliveries read at a time (each poll, and when an attempt ends while
    /// deliveries wait for a slot).
    pub batch: u32,
    /// Deliveries sent at once.
    pub concurrency: usize,
    /// Deliveries of one owner sent at once: one owner's slow endpoint holds at most this
    /// many of the `concurrency` slots.
    pub per_owner: usize,
    /// The per-endpoint circuit breaker.
    pub breaker: BreakerSettings,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            worker: true,
            poll_interval: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            batch: 50,
            concurrency: 8,
            per_owner: 2,
            breaker: BreakerSettings::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Destinations

fn refuse(reason: &str) -> Error {
    Error::invalid("url", reason.to_owned())
}

/// Whether `host` is `localhost` or a name under `.localhost` (RFC 6761: always loopback).
pub fn is_localhost_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// Whether an address is one a public webhook endpoint may have: not loopback, private,
/// link-local, unspecified, multicast, broadcast, shared (CGNAT `100.64.0.0/10`),
/// reserved, documentation or benchmarking space, and not an IPv6 form that carries or
/// translates to an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo).
pub fn is_public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let [s0, s1, ..] = s;
    let embeds_v4 = s.get(..5).is_some_and(|head| head.iter().all(|x| *x == 0))
        && matches!(s.get(5), Some(0 | 0xffff)); // IPv4-compatible ::/96 and mapped ::ffff:0:0/96
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || embeds_v4
        || (s0 & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s0 & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s0 & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        || (s0 == 0x64 && s1 == 0xff9b) // NAT64 64:ff9b::/96 and 64:ff9b:1::/48
        || s0 == 0x2002 // 6to4
        || (s0 == 0x2001 && s1 == 0) // Teredo 2001::/32
        || (s0 == 0x2001 && s1 == 0x0db8) // documentation
        || (s0 == 0x0100 && s.get(1..4).is_some_and(|x| x.iter().all(|v| *v == 0)))) // discard 100::/64
}

/// Whether a webhook may connect to `ip`: public addresses always; with `allow_private`
/// any unicast address. Unspecified, multicast and broadcast addresses never.
pub fn address_allowed(ip: IpAddr, allow_private: bool) -> bool {
    let never = match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    };
    !never && (allow_private || is_public_address(ip))
}

/// Parses and checks an endpoint URL without resolving it: the shape
/// ([`EndpointUrl::parse`]: at most 2048 bytes, no whitespace or control characters, a
/// host, no user information, no fragment), then the destination policy: `https` (or, with
/// `allow_private`, `http` to a loopback host); a host written as an IP address must pass
/// [`address_allowed`], and `localhost` names need `allow_private`. Errors are
/// [`Error::Invalid`] on `url`, never echoing the URL.
pub fn parse_endpoint_url(raw: &str, allow_private: bool) -> Result<EndpointUrl, Error> {
    let endpoint = EndpointUrl::parse(raw)?;
    let url = endpoint.url();
    let loopback_host = match url.host() {
        None | Some(url::Host::Domain("")) => return Err(refuse("must name a host")),
        Some(url::Host::Domain(d)) => {
            if is_localhost_name(d) && !allow_private {
                return Err(refuse(
                    "must not point at a loopback, private or link-local address",
                ));
            }
            is_localhost_name(d)
        }
        Some(url::Host::Ipv4(ip)) => check_literal(IpAddr::V4(ip), allow_private)?,
        Some(url::Host::Ipv6(ip)) => check_literal(IpAddr::V6(ip), allow_private)?,
    };
    match url.scheme() {
        "https" => Ok(endpoint),
        "http" if allow_private && loopback_host => Ok(endpoint),
        _ => Err(refuse("must use https")),
    }
}

/// Checks an IP-literal host; returns whether it is loopback.
fn check_literal(ip: IpAddr, allow_private: bool) -> Result<bool, Error> {
    if address_allowed(ip, allow_private) {
        Ok(ip.is_loopback())
    } else {
        Err(refuse(
            "must not point at a loopback, private or link-local address",
        ))
    }
}

/// A destination the webhook client refused to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationRefused(pub String);

impl std::fmt::Display for DestinationRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "destination refused: {}", self.0)
    }
}

impl std::error::Error for DestinationRefused {}

/// The one refusal of a host name, whatever the reason: it does not resolve, or one of its
/// addresses is not allowed. One message for both, so that registering a webhook cannot be
/// used to learn which internal names exist (an NXDOMAIN and an internal address look the
/// same from outside).
pub const HOST_REFUSED: &str = "the host does not resolve to public addresses only";

/// Resolves `host` and checks every address: a name is refused as a whole when any of its
/// addresses is not allowed (an attacker must not get to mix one public address with an
/// internal one), and a `localhost` name must resolve to loopback only. Every refusal is
/// [`HOST_REFUSED`].
pub async fn resolve_checked(
    host: &str,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, DestinationRefused> {
    let refused = || DestinationRefused(HOST_REFUSED.into());
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|_| refused())?
        .collect();
    if addrs.is_empty() {
        return Err(refused());
    }
    let localhost = is_localhost_name(host);
    if addrs
        .iter()
        .any(|a| !address_allowed(a.ip(), allow_private) || (localhost && !a.ip().is_loopback()))
    {
        return Err(refused());
    }
    Ok(addrs)
}

/// Validates an endpoint URL at registration: [`parse_endpoint_url`], then (for a host
/// name) [`resolve_checked`].
pub async fn check_endpoint_url(raw: &str, allow_private: bool) -> Result<EndpointUrl, Error> {
    let url = parse_endpoint_url(raw, allow_private)?;
    if let Some(url::Host::Domain(host)) = url.url().host() {
        resolve_checked(host, allow_private)
            .await
            .map_err(|e| Error::invalid("url", e.0))?;
    }
    Ok(url)
}

/// The DNS resolver of the delivery client: [`resolve_checked`] at every connection, so
/// the destination is checked at delivery time on exactly the addresses the connection
/// will use.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    /// Allow non-public addresses.
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolve_checked(&host, allow_private).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The delivery client: no redirects (ASVS 15.3.2), no proxy, HTTPS only unless private
/// destinations are allowed, timeouts, and the [`GuardedResolver`].
pub fn delivery_client(
    settings: &WebhookSettings,
    allow_private: bool,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .https_only(!allow_private)
        .timeout(settings.request_timeout)
        .connect_timeout(settings.connect_timeout)
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .user_agent(concat!("ownership-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

// ---------------------------------------------------------------------------------------
// The worker

/// Runs the delivery worker until `shutdown` resolves: follows the audit log, enqueues
/// deliveries, sends the due ones with retries and backoff, fairly between owners and
/// behind a circuit breaker per endpoint.
///
/// `reader` is the scope the worker reads every owner's audit events and the user list
/// with: the operator's, from the process that runs the server (request handlers never
/// hold one). It returns at once when no master key is configured (webhooks are off) or
/// when [`WebhookSettings::worker`] is false.
///
/// Attempts run as tasks of their own, at most [`WebhookSettings::concurrency`] at once
/// and [`WebhookSettings::per_owner`] per owner; every poll (and every finished attempt
/// while deliveries are waiting for a slot) the worker takes due deliveries in turns
/// between owners ([`WebhookStore::due_deliveries`](ownership_core::ports::WebhookStore::due_deliveries))
/// and starts those that fit. At `shutdown` it starts nothing more and waits for the
/// attempts in flight, so each is recorded; a caller that cannot wait that long aborts
/// the task, and what was not recorded is sent again later (deliveries are at least
/// once).
pub async fn run_worker(
    deps: WorkerDeps,
    reader: AdminScope,
    shutdown: impl Future<Output = ()> + Send,
) {
    let WorkerDeps {
        store,
        clock,
        master_keys,
        settings,
        allow_private,
    } = deps;
    let Some(keys) = master_keys else {
        tracing::info!("webhooks are disabled: no master key is configured");
        return;
    };
    if !settings.worker {
        return;
    }
    let client = match delivery_client(&settings, allow_private) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the webhook client could not be built; webhooks will not be delivered");
            return;
        }
    };
    let mut worker = Worker {
        sender: Arc::new(Sender {
            store: Arc::clone(&store),
            clock: Arc::clone(&clock),
            keys,
            client,
            allow_private,
            retry: settings.retry,
        }),
        store,
        clock,
        reader,
        breakers: Breakers::new(settings.breaker),
        settings,
        cursor: None,
        in_flight: HashMap::new(),
        backlog: false,
    };
    let mut tasks = JoinSet::new();
    let mut ticker = tokio::time::interval(worker.settings.poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            _ = ticker.tick() => {
                if let Err(e) = worker.enqueue_new_events().await {
                    tracing::warn!(error = %e, "webhook worker could not read or enqueue events; retrying");
                }
                worker.claim(&mut tasks).await;
            }
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                worker.finished(done).await;
                if worker.backlog {
                    worker.claim(&mut tasks).await;
                }
            }
        }
    }
    // The attempts in flight finish and are recorded before the worker stops (the caller
    // bounds how long it waits for that).
    while let Some(done) = tasks.join_next_with_id().await {
        worker.finished(done).await;
    }
    tracing::debug!("webhook worker stopped");
}

/// What the worker works with: the store (every port; the cache decorator in front is
/// fine), its clock, the master keys (`None`: webhooks are off and the worker returns at
/// once), the settings, and whether private destinations are allowed.
pub struct WorkerDeps {
    /// The store the worker reads the audit log from and records deliveries in.
    pub store: Arc<dyn Store>,
    /// The store's clock: when deliveries are due.
    pub clock: Arc<dyn ownership_core::ports::Clock>,
    /// The master keys that open owners' signing secrets.
    pub master_keys: Option<Arc<MasterKeys>>,
    /// Concurrency, timeouts, retries.
    pub settings: WebhookSettings,
    /// Allow private and loopback destinations (tests, private networks).
    pub allow_private: bool,
}

impl std::fmt::Debug for WorkerDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerDeps")
            .field("settings", &self.settings)
            .field("allow_private", &self.allow_private)
            .finish_non_exhaustive()
    }
}

struct Worker {
    /// What attempts (tasks of their own) share.
    sender: Arc<Sender>,
    store: Arc<dyn Store>,
    clock: Arc<dyn ownership_core::ports::Clock>,
    reader: AdminScope,
    settings: WebhookSettings,
    /// The newest audit event examined; `None` until the start-up catch-up has run.
    cursor: Option<i64>,
    /// The endpoints' circuit breakers.
    breakers: Breakers,
    /// The attempts in flight: their task, delivery and owner.
    in_flight: HashMap<tokio::task::Id, (DeliveryId, OwnerId)>,
    /// The last claim left due deliveries for want of a slot (the worker's or the
    /// owner's): claim again when an attempt finishes rather than at the next poll.
    backlog: bool,
}

/// What one attempt needs: the store to record it in, the client, the keys that open the
/// signing secrets.
struct Sender {
    store: Arc<dyn Store>,
    clock: Arc<dyn ownership_core::ports::Clock>,
    keys: Arc<MasterKeys>,
    client: reqwest::Client,
    allow_private: bool,
    retry: RetryPolicy,
}

/// A finished attempt: its endpoint and what it said about the endpoint's health.
struct Attempted {
    endpoint: WebhookEndpoint,
    health: Health,
}

/// A failed attempt: a short reason for the log and the delivery record (never a response
/// body, a header or a secret) and what it says about the endpoint.
struct Failure {
    reason: String,
    health: Health,
}

impl Failure {
    fn unknown(reason: &str) -> Self {
        Self {
            reason: reason.to_owned(),
            health: Health::Unknown,
        }
    }
}

/// An owner's scope for the worker's owner-scoped reads: background work, audited as the
/// system.
fn owner_scope(owner: &OwnerId) -> OwnerScope {
    SystemScope::background().owner_scope(owner)
}

impl Worker {
    async fn head(&self) -> Result<i64, Error> {
        let page = self
            .store
            .list_events(
                AuditFilter::All(&self.reader),
                &PageRequest {
                    after: None,
                    limit: 1,
                },
            )
            .await?;
        Ok(page.items.first().map_or(0, |e| e.seq))
    }

    async fn enqueue_new_events(&mut self) -> Result<(), Error> {
        let Some(after) = self.cursor else {
            let head = self.head().await?;
            self.catch_up(head).await?;
            self.cursor = Some(head);
            return Ok(());
        };
        let Some(events) = self.global_events_after(after).await? else {
            // Too far behind to read the gap from the global log: catch up per owner.
            let head = self.head().await?;
            self.catch_up(head).await?;
            self.cursor = Some(head);
            return Ok(());
        };
        let mut endpoints = HashMap::new();
        for event in &events {
            self.enqueue_event(event, &mut endpoints).await?;
            self.cursor = Some(event.seq);
        }
        Ok(())
    }

    /// Events with `seq > after`, oldest first; `None` when there are too many.
    async fn global_events_after(&self, after: i64) -> Result<Option<Vec<AuditEvent>>, Error> {
        let mut out = Vec::new();
        let mut page = PageRequest {
            after: None,
            limit: PAGE,
        };
        loop {
            let got = self
                .store
                .list_events(AuditFilter::All(&self.reader), &page)
                .await?;
            let mut reached = false;
            for event in got.items {
                if event.seq <= after {
                    reached = true;
                    break;
                }
                out.push(event);
            }
            if reached || got.next.is_none() {
                break;
            }
            if out.len() >= MAX_TAIL_EVENTS {
                return Ok(None);
            }
            page.after = got.next;
        }
        out.reverse();
        Ok(Some(out))
    }

    /// Enqueues `event` if its owner's endpoint existed when it happened. `endpoints`
    /// memoizes the endpoint reads of one poll.
    async fn enqueue_event(
        &self,
        event: &AuditEvent,
        endpoints: &mut HashMap<OwnerId, Option<WebhookEndpoint>>,
    ) -> Result<(), Error> {
        let Some(owner) = &event.owner else {
            return Ok(());
        };
        let endpoint = match endpoints.get(owner) {
            Some(known) => known.clone(),
            None => {
                let found = self.store.get_endpoint(&owner_scope(owner)).await?;
                endpoints.insert(owner.clone(), found.clone());
                found
            }
        };
        match endpoint {
            Some(endpoint) if service::event_is_for(event, &endpoint) => {
                self.enqueue(owner, event).await
            }
            _ => Ok(()),
        }
    }

    async fn enqueue(&self, owner: &OwnerId, event: &AuditEvent) -> Result<(), Error> {
        let id = service::event_delivery_id(event.seq)?;
        let payload = service::event_payload(event);
        match self
            .store
            .enqueue_delivery(
                &SystemScope::background(),
                owner,
                id,
                event.action.as_str(),
                &payload,
            )
            .await
        {
            Ok(_) | Err(Error::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// For every owner with an endpoint, enqueues the events up to `head` that follow the
    /// newest delivery in the owner's log (or, with none, every event since the endpoint
    /// was set).
    async fn catch_up(&self, head: i64) -> Result<(), Error> {
        let mut users = PageRequest {
            after: None,
            limit: PAGE,
        };
        loop {
            let page = self.store.list_users(&self.reader, &users).await?;
            for user in &page.items {
                self.catch_up_owner(&user.id, head).await?;
            }
            match page.next {
                Some(next) => users.after = Some(next),
                None => return Ok(()),
            }
        }
    }

    async fn catch_up_owner(&self, owner: &OwnerId, head: i64) -> Result<(), Error> {
        let scope = owner_scope(owner);
        let Some(endpoint) = self.store.get_endpoint(&scope).await? else {
            return Ok(());
        };
        let newest = self
            .store
            .list_deliveries(
                &scope,
                &PageRequest {
                    after: None,
                    limit: 1,
                },
            )
            .await?;
        let mut after = newest
            .items
            .first()
            .and_then(|d| service::delivery_event_seq(&d.id))
            .unwrap_or(0);
        loop {
            let events = self.store.events_after(&scope, after, PAGE).await?;
            let full = events.len() >= PAGE as usize;
            for event in &events {
                if event.seq > head {
                    return Ok(());
                }
                if service::event_is_for(event, &endpoint) {
                    self.enqueue(owner, event).await?;
                }
                after = event.seq;
            }
            if !full {
                return Ok(());
            }
        }
    }

    fn in_flight_of(&self, owner: &OwnerId) -> usize {
        self.in_flight.values().filter(|(_, o)| o == owner).count()
    }

    /// Takes due deliveries in turns between owners and starts those that fit: a free
    /// slot, fewer than `per_owner` of the owner's in flight, and the endpoint's breaker
    /// letting it go. The deliveries of an endpoint whose breaker is open are held back
    /// in the store until its cool-down ends.
    async fn claim(&mut self, tasks: &mut JoinSet<Attempted>) {
        let concurrency = self.settings.concurrency.max(1);
        let per_owner = self.settings.per_owner.max(1);
        if self.in_flight.len() >= concurrency {
            self.backlog = true;
            return;
        }
        let due = match self
            .store
            .due_deliveries(
                &SystemScope::background(),
                self.settings.batch,
                u32::try_from(per_owner).unwrap_or(u32::MAX),
            )
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "webhook worker could not read due deliveries; retrying");
                return;
            }
        };
        metrics_due(due.len());
        self.backlog = false;
        let now = self.clock.now();
        let mut held = HashSet::new();
        for (delivery, endpoint) in due {
            let owner = delivery.owner_id.clone();
            if held.contains(&owner) {
                continue;
            }
            // In flight already, or no slot: it (or what queues behind it, which the
            // store did not return) waits for an attempt to finish.
            if self.in_flight.values().any(|(id, _)| *id == delivery.id)
                || self.in_flight_of(&owner) >= per_owner
            {
                self.backlog = true;
                continue;
            }
            if self.in_flight.len() >= concurrency {
                self.backlog = true;
                break;
            }
            // A delivery of a replaced endpoint is closed without a request: no breaker.
            if delivery.created_at >= endpoint.created_at {
                match self.breakers.admit(&endpoint, now) {
                    Admission::Go => {}
                    Admission::Wait => continue,
                    Admission::OpenUntil(until) => {
                        held.insert(owner.clone());
                        self.hold(&owner, until).await;
                        continue;
                    }
                }
            }
            let sender = Arc::clone(&self.sender);
            let id = delivery.id.clone();
            let task = tasks.spawn(async move { sender.deliver(delivery, endpoint).await });
            self.in_flight.insert(task.id(), (id, owner));
        }
        metrics_breakers(&self.breakers, now);
    }

    /// Holds the owner's pending deliveries back until `until` (no attempt is counted).
    async fn hold(&self, owner: &OwnerId, until: OffsetDateTime) {
        if let Err(e) = self
            .store
            .defer_deliveries(&SystemScope::background(), owner, until)
            .await
        {
            tracing::warn!(owner = %owner, error = %e, "holding back the deliveries of an open circuit failed; they are skipped meanwhile");
        }
    }

    /// Takes a finished attempt off the in-flight set and tells its breaker.
    async fn finished(
        &mut self,
        done: Result<(tokio::task::Id, Attempted), tokio::task::JoinError>,
    ) {
        let (task, attempted) = match done {
            Ok((task, attempted)) => (task, Some(attempted)),
            Err(e) => {
                tracing::warn!(error = %e, "a webhook attempt did not finish; it will be sent again");
                (e.id(), None)
            }
        };
        self.in_flight.remove(&task);
        let Some(Attempted { endpoint, health }) = attempted else {
            return;
        };
        let now = self.clock.now();
        match self.breakers.record(&endpoint, health, now) {
            Some(Transition::Opened(until)) => {
                tracing::warn!(
                    owner = %endpoint.owner_id,
                    until = %until,
                    threshold = self.settings.breaker.threshold,
                    "webhook circuit opened: the endpoint keeps failing; its deliveries wait until the cool-down ends"
                );
                metrics::counter!("ownership_webhook_circuit_opened_total").increment(1);
                self.hold(&endpoint.owner_id, until).await;
            }
            Some(Transition::Closed) => {
                tracing::info!(owner = %endpoint.owner_id, "webhook circuit closed: the endpoint answers again");
            }
            None => {}
        }
        metrics_breakers(&self.breakers, now);
    }
}

impl Sender {
    /// Sends one delivery and records the attempt.
    async fn deliver(&self, delivery: Delivery, endpoint: WebhookEndpoint) -> Attempted {
        let now = self.clock.now();
        let (state, next, result, health) = if delivery.created_at < endpoint.created_at {
            // The endpoint was set anew after this was queued: it belongs to the old one.
            (
                DeliveryState::Failed,
                now,
                "endpoint replaced before delivery".to_owned(),
                Health::Unknown,
            )
        } else {
            match self.attempt(&delivery, &endpoint, now).await {
                Ok(status) => (
                    DeliveryState::Delivered,
                    now,
                    format!("HTTP {status}"),
                    Health::Up,
                ),
                Err(failure) => match self.retry.after_failure(delivery.attempts + 1) {
                    Some(wait) => (
                        DeliveryState::Pending,
                        now + wait,
                        failure.reason,
                        failure.health,
                    ),
                    None => (DeliveryState::Failed, now, failure.reason, failure.health),
                },
            }
        };
        metrics_attempt(state);
        tracing::info!(
            delivery = %delivery.id,
            owner = %delivery.owner_id,
            attempt = delivery.attempts + 1,
            state = state.as_str(),
            result = %result,
            "webhook delivery attempt"
        );
        if let Err(e) = self
            .store
            .record_attempt(
                &SystemScope::background(),
                &delivery.id,
                state,
                next,
                &result,
            )
            .await
        {
            tracing::warn!(delivery = %delivery.id, error = %e, "recording a webhook attempt failed; it will be sent again");
        }
        Attempted { endpoint, health }
    }

    /// One attempt: `Ok(status)` on a 2xx, else a [`Failure`].
    async fn attempt(
        &self,
        delivery: &Delivery,
        endpoint: &WebhookEndpoint,
        now: OffsetDateTime,
    ) -> Result<u16, Failure> {
        let url = parse_endpoint_url(endpoint.url.as_str(), self.allow_private).map_err(|_| {
            Failure::unknown("destination refused: the endpoint URL is not allowed")
        })?;
        let secrets: Vec<WebhookSecret> = service::signing_secrets(&self.keys, endpoint, now)
            .map_err(|e| {
                tracing::error!(owner = %endpoint.owner_id, error = %e, "a webhook signing secret does not open");
                Failure::unknown("signing secret unavailable")
            })?;
        let refs: Vec<&WebhookSecret> = secrets.iter().collect();
        let body = delivery.payload.as_bytes();
        let signed = sign_headers(&refs, delivery.id.as_str(), now.unix_timestamp(), body);
        let response = self
            .client
            .post(url.url().clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &signed.webhook_id)
            .header("webhook-timestamp", &signed.webhook_timestamp)
            .header("webhook-signature", &signed.webhook_signature)
            .header("ownership-signature", &signed.ownership_signature)
            .body(delivery.payload.clone())
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = response.status();
        let code = status.as_u16();
        if status.is_success() {
            Ok(code)
        } else if status.is_redirection() {
            Err(Failure {
                reason: format!("HTTP {code} (redirects are not followed)"),
                health: Health::Up,
            })
        } else {
            Err(Failure {
                reason: format!("HTTP {code}"),
                health: if status.is_server_error() {
                    Health::Down
                } else {
                    Health::Up
                },
            })
        }
    }
}

/// A short, secret-free description of a failed request, and what it says about the
/// endpoint: a refused destination says nothing; a timeout or a connection error, that
/// it is down.
fn describe(e: &reqwest::Error) -> Failure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<DestinationRefused>() {
            return Failure::unknown(&refused.to_string());
        }
        source = err.source();
    }
    let reason = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    Failure {
        reason: reason.to_owned(),
        health: Health::Down,
    }
}

/// Counts a delivery attempt by outcome (`ownership_webhook_deliveries_total`).
fn metrics_attempt(state: DeliveryState) {
    let outcome = match state {
        DeliveryState::Delivered => "delivered",
        DeliveryState::Pending => "retry",
        DeliveryState::Failed => "failed",
    };
    metrics::counter!("ownership_webhook_deliveries_total", "outcome" => outcome).increment(1);
}

/// Sets how many deliveries the worker found due when it last looked
/// (`ownership_webhook_due_deliveries`).
#[allow(
    clippy::cast_precision_loss,
    reason = "a batch size is far below 2^53, where f64 is exact"
)]
fn metrics_due(count: usize) {
    metrics::gauge!("ownership_webhook_due_deliveries").set(count as f64);
}

/// Sets how many endpoints' circuits are open and half-open in this process
/// (`ownership_webhook_circuits{state}`).
#[allow(
    clippy::cast_precision_loss,
    reason = "a count of endpoints is far below 2^53, where f64 is exact"
)]
fn metrics_breakers(breakers: &Breakers, now: OffsetDateTime) {
    let (open, half_open) = breakers.counts(now);
    metrics::gauge!("ownership_webhook_circuits", "state" => "open").set(open as f64);
    metrics::gauge!("ownership_webhook_circuits", "state" => "half_open").set(half_open as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_public_unicast_addresses_pass_by_default() {
        for bad in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "2001:0:a00::1",
            "2001:db8::1",
        ] {
            assert!(!address_allowed(ip(bad), false), "{bad} allowed");
        }
        for good in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "2a00:1450::1",
        ] {
            assert!(address_allowed(ip(good), false), "{good} refused");
        }
    }

    #[test]
    fn allowing_private_destinations_still_refuses_non_unicast() {
        for ok in [
            "127.0.0.1",
            "10.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "169.254.1.1",
        ] {
            assert!(address_allowed(ip(ok), true), "{ok}");
        }
        for never in ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255"] {
            assert!(!address_allowed(ip(never), true), "{never}");
        }
    }

    #[test]
    fn urls_must_be_https_with_a_host_and_no_user_information() {
        assert!(parse_endpoint_url("https://hooks.example.com/in?x=1", false).is_ok());
        assert!(parse_endpoint_url("https://8.8.8.8:8443/hook", false).is_ok());
        for bad in [
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "https://user@hooks.example.com/",
            "https://:8443/path",
            "https://hooks.example.com/#frag",
            "https://hooks.example.com/a b",
            "https://hooks.example.com/\n",
            "hooks.example.com",
            "",
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://10.0.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost/",
            "https://api.localhost./",
            "https://0x7f000001/",
            "https://2130706433/",
        ] {
            let e = parse_endpoint_url(bad, false);
            assert!(e.is_err(), "{bad:?} accepted");
            if let Err(Error::Invalid { field, reason }) = e {
                assert_eq!(field, "url");
                assert!(bad.len() < 12 || !reason.contains(bad), "echoes the URL");
            }
        }
        let long = format!("https://example.com/{}", "a".repeat(URL_MAX_BYTES));
        assert!(parse_endpoint_url(&long, false).is_err());
    }

    #[test]
    fn private_mode_allows_plain_http_to_loopback_only() {
        assert!(parse_endpoint_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(parse_endpoint_url("http://[::1]:9000/hook", true).is_ok());
        assert!(parse_endpoint_url("http://localhost:9000/hook", true).is_ok());
        assert!(parse_endpoint_url("https://10.0.0.1/hook", true).is_ok());
        assert!(parse_endpoint_url("http://10.0.0.1/hook", true).is_err());
        assert!(parse_endpoint_url("http://hooks.example.com/", true).is_err());
        assert!(parse_endpoint_url("https://user:pw@127.0.0.1/", true).is_err());
        assert!(parse_endpoint_url("http://0.0.0.0:9000/", true).is_err());
    }

    #[tokio::test]
    async fn a_missing_name_and_an_internal_one_are_refused_alike() {
        // `localhost` resolves (hosts file) to loopback; `.invalid` never resolves (RFC 6761).
        let internal = resolve_checked("localhost", false).await.unwrap_err();
        let missing = resolve_checked("no-such-host.invalid", false)
            .await
            .unwrap_err();
        assert_eq!(internal, missing);
        assert_eq!(missing.0, HOST_REFUSED);
    }

    #[tokio::test]
    async fn names_are_resolved_and_checked() {
        // `localhost` resolves from the hosts file: no network is needed.
        assert!(resolve_checked("localhost", false).await.is_err());
        let addrs = resolve_checked("localhost", true).await.unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
        assert!(
            check_endpoint_url("https://localhost/", false)
                .await
                .is_err()
        );
        assert!(
            check_endpoint_url("http://localhost:1/", true)
                .await
                .is_ok()
        );
        assert!(
            check_endpoint_url("https://127.0.0.1/", false)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn the_client_refuses_a_private_destination_when_it_connects() {
        let client = delivery_client(&WebhookSettings::default(), false).unwrap();
        // An IP literal never reaches the resolver, so the worker checks the URL itself
        // (parse_endpoint_url); a name is checked by the resolver at connection time.
        let err = client
            .post("https://localhost:9/")
            .send()
            .await
            .expect_err("refused");
        let failure = describe(&err);
        assert!(failure.reason.starts_with("destination refused"), "{err}");
        assert_eq!(failure.health, Health::Unknown);
        let err = client
            .post("http://localhost:9/")
            .send()
            .await
            .expect_err("https only");
        assert!(!describe(&err).reason.is_empty());
    }
}
