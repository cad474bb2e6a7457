//! The transaction port: what a database offers the use cases, and nothing that decides.
//!
//! Every use case is written once, in its area's module, as an async function over a
//! transaction (`&mut impl TokenRows`, `&mut impl UserRows`, …). An adapter implements
//! [`Transactions`]: it opens transactions ([`Transactions::write`],
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

    /// Runs `body` in a write transaction: committed when it returns `Ok`, rolled back on
    /// any error. Writes are serialized; the transaction's [`Tx::now`] is read after the
    /// lock.
    fn write<R, F>(&self, body: F) -> impl Future<Output = Result<Committed<R>>> + Send
    where
        R: Send + 'static,
        F: Body<Self::Tx, R>;

    /// Runs `body` as a write of one owner's objects: it may read and change only
    /// `owner`'s rows and append only events of `owner` that go into `owner`'s chain
    /// ([`crate::audit::chain_of`]). Writes of different owners may then run at once; a
    /// [`Transactions::write`] still runs alone (it excludes every owner's write), so
    /// whatever spans owners (user management, the last active Owner, role re-checks)
    /// stays serialized. The transaction's [`Tx::now`] is read once `owner`'s lock is
    /// held. By default, [`Transactions::write`].
    fn write_owner<R, F>(
        &self,
        owner: &OwnerId,
        body: F,
    ) -> impl Future<Output = Result<Committed<R>>> + Send
    where
        R: Send + 'static,
        F: Body<Self::Tx, R>,
    {
        let _ = owner;
        self.write(body)
    }

    /// Runs `body` as a write of rows no owner holds (a channel's pending pairing
    /// requests): it may append only events of the system chain, and must not read an
    /// invariant that spans owners. It then runs beside owners' writes
    /// ([`Transactions::write_owner`]), serialized with the other writes of the system
    /// chain; a [`Transactions::write`] still runs alone. The transaction's [`Tx::now`] is
    /// read once the system chain's lock is held. By default, [`Transactions::write`].
    /// A decorator forwards it like `write_owner`, or its writes lose their lane.
    fn write_unowned<R, F>(&self, body: F) -> impl Future<Output = Result<Committed<R>>> + Send
    where
        R: Send + 'static,
        F: Body<Self::Tx, R>,
    {
        self.write(body)
    }

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

/// [`Transactions::write_owner`], returning only the value.
pub async fn write_owner<D, R, F>(db: &D, owner: &OwnerId, body: F) -> Result<R>
where
    D: Transactions + ?Sized,
    R: Send + 'static,
    F: Body<D::Tx, R>,
{
    db.write_owner(owner, body).await.map(|c| c.value)
}

/// [`Transactions::write_unowned`], returning only the value.
pub async fn write_unowned<D, R, F>(db: &D, body: F) -> Result<R>
where
    D: Transactions + ?Sized,
    R: Send + 'static,
    F: Body<D::Tx, R>,
{
    db.write_unowned(body).await.map(|c| c.value)
}

/// [`Transactions::write`], returning only the value.
pub async fn write<D, R, F>(db: &D, body: F) -> Result<R>
where
    D: Transactions + ?Sized,
    R: Send + 'static,
    F: Body<D::Tx, R>,
{
    db.write(body).await.map(|c| c.value)
}
