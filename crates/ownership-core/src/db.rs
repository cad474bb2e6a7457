//! The transaction port: what a database offers the use cases, and nothing that decides.
//!
//! Every use case is written once, in its area's module, as an async function over a
//! transaction (`&mut impl TokenRows`, `&mut impl UserRows`, …). An adapter implements
//! [`Transactions`]: it opens transactions ([`Transactions::write_in`],
//! [`Transactions::read`]) whose [`Tx`] type implements each area's row trait with SQL and
//! row mapping only. Every port of [`crate::ports`] is then implemented once, in its area,
//! for every database whose transactions have that area's rows.
//!
//! Two rules the type enforces:
//! - a write transaction's time ([`Tx::now`]) is read by the adapter *after* it holds the
//!   lock that serializes writes, so no change is stamped earlier than one committed
//!   before it, however long the lock was waited for;
//! - the audit event of a mutation is appended ([`Tx::append`]) inside the transaction
//!   that makes the change, and what was appended is handed back with the result
//!   ([`Committed`]) so a cache can evict what the events name.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::audit::{AuditEvent, ChainKeys, NewAuditEvent};
use crate::authz::{ActorState, AdminScope};
use crate::error::Result;
use crate::ids::OwnerId;
use crate::quotas::Limits;

/// A boxed, sendable future borrowing for `'a`: what a transaction body returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What every transaction offers, whatever the area.
#[async_trait]
pub trait Tx: Send {
    /// The transaction's time. In a write transaction, the store's clock read once the
    /// lock that serializes writes was held; in a read, the clock when it began. Truncated
    /// to microseconds (what both databases keep).
    fn now(&self) -> OffsetDateTime;

    /// Links `event` after the chain head and stores it, in this transaction (keyed under
    /// [`Tx::chain_keys`] when held: [`crate::audit::ChainHead::link_next`]).
    async fn append(&mut self, event: NewAuditEvent) -> Result<()>;

    /// The audit chain keys the store holds (`None`: no master key configured).
    fn chain_keys(&self) -> Option<&ChainKeys>;

    /// A user's role and status as they are in this transaction (`None`: no such user),
    /// for the re-checks of [`AdminScope::recheck`] and
    /// [`MintPermit::recheck`](crate::authz::MintPermit::recheck).
    async fn actor_state(&mut self, user: &OwnerId) -> Result<Option<ActorState>>;
}

/// `scope` re-checked ([`AdminScope::recheck`]) against the acting user's account as it
/// is in `tx`: a demotion, suspension or deletion committed before counts, whatever role
/// the request was authenticated with. The operator has no account and nothing is read.
pub async fn current_scope<T: Tx + ?Sized>(tx: &mut T, scope: &AdminScope) -> Result<AdminScope> {
    let current = match scope.acting_user() {
        None => None,
        Some(actor) => tx.actor_state(actor).await?,
    };
    scope.recheck(current)
}

/// The value a committed write transaction returned, with the audit events it appended
/// (linked, in order): the record of what changed.
#[derive(Debug)]
pub struct Committed<R> {
    /// What the body returned.
    pub value: R,
    /// The events appended, in order.
    pub events: Vec<AuditEvent>,
}

/// A transaction body: borrows the transaction for as long as it runs.
pub trait Body<T: ?Sized, R>:
    for<'t> FnOnce(&'t mut T) -> BoxFuture<'t, Result<R>> + Send + 'static
{
}

impl<T: ?Sized, R, F> Body<T, R> for F where
    F: for<'t> FnOnce(&'t mut T) -> BoxFuture<'t, Result<R>> + Send + 'static
{
}

/// Which writes a write transaction runs beside ([`Transactions::write_in`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane<'a> {
    /// Alone: no other write runs meanwhile. Whatever spans owners (user management, the
    /// last active Owner, role re-checks, a channel's wrong-code budget) runs here.
    Alone,
    /// A write of one owner's objects: it may read and change only that owner's rows and
    /// append only events of that owner, which go into the owner's chain
    /// ([`crate::audit::chain_of`]). Writes of different owners may run at once; an
    /// [`Lane::Alone`] write excludes them all.
    Owner(&'a OwnerId),
    /// A write of rows no owner holds (a channel's pending pairing requests): it may
    /// append only events of the system chain and must not read an invariant that spans
    /// owners. It runs beside owners' writes, serialized with the other writes of the
    /// system chain; an [`Lane::Alone`] write excludes it.
    Unowned,
}

/// A database the use cases run on: transactions and the clock. Each area adds the point
/// reads a cache may answer instead (`tokens::TokenDatabase`, `pairing::PairingDatabase`,
/// `resources::ResourceDatabase`); `ports::Database` is all of them at once.
pub trait Transactions: Send + Sync + 'static {
    /// The transaction type; each area's port needs its row trait on it.
    type Tx: Tx;

    /// Now, from the store's clock, truncated to microseconds (for reads outside a
    /// transaction).
    fn now(&self) -> OffsetDateTime;

    /// The quotas and budgets the store was built with, which the use cases enforce
    /// inside their write transactions.
    fn limits(&self) -> Limits;

    /// Runs `body` in a write transaction on `lane`: committed when it returns `Ok`,
    /// rolled back on any error. The transaction's [`Tx::now`] is read once the lane's
    /// locks are held, so no change is stamped earlier than one committed before it.
    ///
    /// One method for every lane, with no default: a decorator of the port (a cache, a
    /// counter) forwards the lane it was given, and cannot forget one.
    fn write_in<R, F>(
        &self,
        lane: Lane<'_>,
        body: F,
    ) -> impl Future<Output = Result<Committed<R>>> + Send
    where
        R: Send + 'static,
        F: Body<Self::Tx, R>;

    /// Runs `body` in a read transaction (or on a read connection): it must only read.
    fn read<R, F>(&self, body: F) -> impl Future<Output = Result<R>> + Send
    where
        R: Send + 'static,
        F: Body<Self::Tx, R>;

    /// Runs `body` as a read in one consistent snapshot (every statement sees the same
    /// committed state), for reads that walk many rows, such as verifying the chain.
    fn snapshot<R, F>(&self, body: F) -> impl Future<Output = Result<R>> + Send
    where
        R: Send + 'static,
        F: Body<Self::Tx, R>;

    /// A source of random bytes (the operating system's), for the ids a use case mints
    /// inside a transaction (the tokens a user-token table adds, for instance).
    fn rng(&self) -> Box<dyn crate::RandomSource + Send>;
}

/// A write on [`Lane::Owner`], returning only the value.
pub async fn write_owner<D, R, F>(db: &D, owner: &OwnerId, body: F) -> Result<R>
where
    D: Transactions + ?Sized,
    R: Send + 'static,
    F: Body<D::Tx, R>,
{
    db.write_in(Lane::Owner(owner), body).await.map(|c| c.value)
}

/// A write on [`Lane::Unowned`], returning only the value.
pub async fn write_unowned<D, R, F>(db: &D, body: F) -> Result<R>
where
    D: Transactions + ?Sized,
    R: Send + 'static,
    F: Body<D::Tx, R>,
{
    db.write_in(Lane::Unowned, body).await.map(|c| c.value)
}

/// A write on [`Lane::Alone`], returning only the value.
pub async fn write<D, R, F>(db: &D, body: F) -> Result<R>
where
    D: Transactions + ?Sized,
    R: Send + 'static,
    F: Body<D::Tx, R>,
{
    db.write_in(Lane::Alone, body).await.map(|c| c.value)
}
