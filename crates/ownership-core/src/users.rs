//! The users area: who exists, their role and status, and the port and use cases that
//! create and change them (the rules themselves are in [`crate::authz`]).

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::RandomSource;
use crate::authz::{
    AdminScope, TargetState, check_create, check_delete, check_role_change, check_status_change,
};
use crate::db::{self, Transactions, Tx};
use crate::error::{Error, Result};
use crate::events;
use crate::identity::{Identity, UserRole, UserStatus};
use crate::ids::{Label, OwnerId};
use crate::kinds::TokenKinds;
use crate::paging::{Page, PageRequest};
use crate::sessions::{SessionRows, end_sessions_in};
use crate::token::{TokenFamily, TokenSecret};
use crate::tokens::{NewToken, TokenOrigin, TokenRecord, TokenRow, TokenRows, fresh_token};

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The account's owner id.
    pub id: OwnerId,
    /// Its role.
    pub role: UserRole,
    /// Whether it may authenticate.
    pub status: UserStatus,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

impl User {
    /// The identity the account acts as.
    pub fn identity(&self) -> Identity {
        Identity::new(self.id.clone(), self.role)
    }
}

/// What installing the configured legacy token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyOutcome {
    /// The same value was already installed: nothing written.
    Unchanged,
    /// Installed for the first time (the Owner was created if missing).
    Installed,
    /// A different value was installed before: the old row was revoked, the new installed.
    Replaced,
    /// The same value was installed before and its user revoked it: the revocation is
    /// kept (a revoked credential is never revived) and nothing is written. The server
    /// starts anyway and logs that a new value must be configured.
    Revoked,
}

/// Users: creation, roles, status, deletion, and the first Owner.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates the first Owner with a `manage`+`api` token, once. [`crate::Error::Conflict`]
    /// when any Owner exists.
    async fn bootstrap_owner(&self, owner: &OwnerId, token: NewToken) -> Result<User>;

    /// Installs the grandfathered legacy token for `owner` (created as an Owner if missing),
    /// with kinds `manage`+`api`. Idempotent; a changed value revokes the old row.
    async fn install_legacy_token(&self, owner: &OwnerId, token: NewToken)
    -> Result<LegacyOutcome>;

    /// Whether any Owner exists.
    async fn has_owner(&self) -> Result<bool>;

    /// Creates a user with a first `manage`+`api` token, under the rules of
    /// [`crate::authz::check_create`]. Conflict if the id is taken.
    async fn create_user(
        &self,
        scope: &AdminScope,
        id: &OwnerId,
        role: UserRole,
        first_token: NewToken,
    ) -> Result<User>;

    /// One user, for an admin.
    async fn get_user(&self, scope: &AdminScope, id: &OwnerId) -> Result<User>;

    /// Users by id, for an admin.
    async fn list_users(&self, scope: &AdminScope, page: &PageRequest) -> Result<Page<User>>;

    /// Changes a role under [`crate::authz::check_role_change`].
    async fn set_role(&self, scope: &AdminScope, id: &OwnerId, role: UserRole) -> Result<User>;

    /// Suspends or resumes under [`crate::authz::check_status_change`].
    async fn set_status(
        &self,
        scope: &AdminScope,
        id: &OwnerId,
        status: UserStatus,
    ) -> Result<User>;

    /// Deletes under [`crate::authz::check_delete`]: revokes every token, removes every
    /// channel identity and pending pairing, revokes resources, destroys the data key and
    /// secrets and the webhook endpoint, all in one transaction.
    async fn delete_user(&self, scope: &AdminScope, id: &OwnerId) -> Result<()>;
}

/// Creates the first Owner with a `manage`+`api` token.
pub async fn bootstrap_owner<S: UserStore + ?Sized>(
    store: &S,
    owner: &OwnerId,
    rng: &mut (dyn RandomSource + Send),
) -> Result<(User, TokenSecret)> {
    let (secret, fresh) = fresh_token(TokenFamily::User, rng);
    let user = store
        .bootstrap_owner(
            owner,
            NewToken {
                fresh,
                label: Some(Label::known("bootstrap")),
                expires_at: None,
            },
        )
        .await?;
    Ok((user, secret))
}

/// Creates a user with their first `manage`+`api` token.
pub async fn create_user<S: UserStore + ?Sized>(
    store: &S,
    admin: &AdminScope,
    id: &OwnerId,
    role: UserRole,
    rng: &mut (dyn RandomSource + Send),
) -> Result<(User, TokenSecret)> {
    crate::authz::check_create(admin, role)?;
    let (secret, fresh) = fresh_token(TokenFamily::User, rng);
    let user = store
        .create_user(
            admin,
            id,
            role,
            NewToken {
                fresh,
                label: Some(Label::known("first token")),
                expires_at: None,
            },
        )
        .await?;
    Ok((user, secret))
}

/// The user rows a transaction reads and writes: SQL and row mapping, no decisions.
#[async_trait]
pub trait UserRows: Tx {
    /// One user by id.
    async fn find_user(&mut self, id: &OwnerId) -> Result<Option<User>>;
    /// Up to `limit` users with an id after `after` (bytewise), by id.
    async fn users_after(&mut self, after: Option<&str>, limit: u32) -> Result<Vec<User>>;
    /// Whether any Owner exists, active or not.
    async fn owner_exists(&mut self) -> Result<bool>;
    /// How many Owners are active.
    async fn active_owner_count(&mut self) -> Result<u64>;
    /// Inserts an active user created (and updated) `at`.
    async fn insert_user(&mut self, id: &OwnerId, role: UserRole, at: OffsetDateTime)
    -> Result<()>;
    /// Sets the role of the user when it is `from`; whether a row changed.
    async fn update_role(
        &mut self,
        id: &OwnerId,
        from: UserRole,
        to: UserRole,
        at: OffsetDateTime,
    ) -> Result<bool>;
    /// Sets the user's status.
    async fn update_status(
        &mut self,
        id: &OwnerId,
        status: UserStatus,
        at: OffsetDateTime,
    ) -> Result<()>;
    /// Deletes the user (the schema cascades to everything they own); whether a row went.
    async fn delete_user_row(&mut self, id: &OwnerId) -> Result<bool>;
    /// How many channel identities the user has.
    async fn identity_count(&mut self, owner: &OwnerId) -> Result<u64>;
    /// Revokes `at` every legacy token live at `at`; how many.
    async fn revoke_live_legacy(&mut self, at: OffsetDateTime) -> Result<u64>;
}

/// Inserts `id` as an active user with `role` at [`Tx::now`]; [`Error::Conflict`] when the
/// id is taken.
async fn add_user<T: UserRows + ?Sized>(tx: &mut T, id: &OwnerId, role: UserRole) -> Result<User> {
    if tx.find_user(id).await?.is_some() {
        return Err(Error::Conflict(format!("user `{id}` already exists")));
    }
    let now = tx.now();
    tx.insert_user(id, role, now).await?;
    Ok(User {
        id: id.clone(),
        role,
        status: UserStatus::Active,
        created_at: now,
    })
}

/// Stores a user's first token (`manage`+`api`) at [`Tx::now`].
async fn first_token<T: TokenRows + ?Sized>(
    tx: &mut T,
    owner: &OwnerId,
    token: &NewToken,
    origin: TokenOrigin,
) -> Result<TokenRecord> {
    let created_at = tx.now();
    tx.insert_token(TokenRow {
        owner,
        fresh: &token.fresh,
        kinds: &TokenKinds::manage_api(),
        label: token.label.as_deref(),
        origin,
        created_at,
        expires_at: token.expires_at,
    })
    .await
}

/// What a management rule decides on, read in the transaction that applies the change:
/// `scope` re-checked ([`db::current_scope`]), the target and the count of active Owners.
/// [`Error::NotFound`] when the target is absent.
async fn managed<T: UserRows + ?Sized>(
    tx: &mut T,
    scope: &AdminScope,
    id: &OwnerId,
) -> Result<(AdminScope, User, TargetState)> {
    let scope = db::current_scope(tx, scope).await?;
    let user = tx.find_user(id).await?.ok_or(Error::NotFound)?;
    let state = TargetState {
        role: user.role,
        status: user.status,
        active_owners: tx.active_owner_count().await?,
    };
    Ok((scope, user, state))
}

/// Every database keeps users: each use case once, over [`UserRows`].
#[async_trait]
impl<D> UserStore for D
where
    D: Transactions,
    D::Tx: UserRows + TokenRows + SessionRows,
{
    async fn bootstrap_owner(&self, owner: &OwnerId, token: NewToken) -> Result<User> {
        let owner = owner.clone();
        db::write(self, move |tx| {
            Box::pin(async move {
                if tx.owner_exists().await? {
                    return Err(Error::Conflict("an Owner already exists".into()));
                }
                let user = add_user(tx, &owner, UserRole::Owner).await?;
                let record = first_token(tx, &owner, &token, TokenOrigin::Issued).await?;
                let now = tx.now();
                tx.append(events::owner_bootstrapped(now, &owner, &record.id))
                    .await?;
                Ok(user)
            })
        })
        .await
    }

    async fn install_legacy_token(
        &self,
        owner: &OwnerId,
        token: NewToken,
    ) -> Result<LegacyOutcome> {
        let owner = owner.clone();
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                if let Some(same) = tx.token_by_digest(&token.fresh.digest).await? {
                    if same.owner_id == owner && same.origin == TokenOrigin::Legacy {
                        // Revoked by its user: kept so (a user's action never stops the
                        // server from starting, and a revoked credential is never revived).
                        return Ok(if same.is_live(now) {
                            LegacyOutcome::Unchanged
                        } else {
                            LegacyOutcome::Revoked
                        });
                    }
                    // Stored already as another kind or another owner's: a credential
                    // never moves to another owner.
                    return Err(Error::Conflict(
                        "the configured legacy token is in use by another user or token; configure a new value"
                            .into(),
                    ));
                }
                if tx.find_user(&owner).await?.is_none() {
                    add_user(tx, &owner, UserRole::Owner).await?;
                }
                let outcome = if tx.revoke_live_legacy(now).await? > 0 {
                    LegacyOutcome::Replaced
                } else {
                    LegacyOutcome::Installed
                };
                let record = first_token(tx, &owner, &token, TokenOrigin::Legacy).await?;
                tx.append(events::legacy_installed(now, &owner, &record.id, outcome == LegacyOutcome::Replaced))
                    .await?;
                Ok(outcome)
            })
        })
        .await
    }

    async fn has_owner(&self) -> Result<bool> {
        self.read(|tx| Box::pin(async move { tx.owner_exists().await }))
            .await
    }

    async fn create_user(
        &self,
        scope: &AdminScope,
        id: &OwnerId,
        role: UserRole,
        first: NewToken,
    ) -> Result<User> {
        let (scope, id) = (scope.clone(), id.clone());
        db::write(self, move |tx| {
            Box::pin(async move {
                let scope = db::current_scope(tx, &scope).await?;
                check_create(&scope, role)?;
                let user = add_user(tx, &id, role).await?;
                let record = first_token(tx, &id, &first, TokenOrigin::Issued).await?;
                let now = tx.now();
                tx.append(events::user_created(
                    now,
                    scope.actor(),
                    &id,
                    role,
                    &record.id,
                ))
                .await?;
                Ok(user)
            })
        })
        .await
    }

    async fn get_user(&self, _scope: &AdminScope, id: &OwnerId) -> Result<User> {
        let id = id.clone();
        self.read(move |tx| {
            Box::pin(async move { tx.find_user(&id).await?.ok_or(Error::NotFound) })
        })
        .await
    }

    async fn list_users(&self, _scope: &AdminScope, page: &PageRequest) -> Result<Page<User>> {
        let page = page.clone();
        self.read(move |tx| {
            Box::pin(async move {
                let users = tx
                    .users_after(page.after.as_deref(), page.fetch_limit())
                    .await?;
                Ok(Page::of_fetched(users, &page, |u| u.id.as_str().to_owned()))
            })
        })
        .await
    }

    async fn set_role(&self, scope: &AdminScope, id: &OwnerId, role: UserRole) -> Result<User> {
        let (scope, id) = (scope.clone(), id.clone());
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let (scope, user, state) = managed(tx, &scope, &id).await?;
                check_role_change(&scope, &id, &state, role)?;
                if !tx.update_role(&id, user.role, role, now).await? {
                    return Err(Error::NotFound);
                }
                tx.append(events::user_role_changed(
                    now,
                    scope.actor(),
                    &id,
                    user.role,
                    role,
                ))
                .await?;
                Ok(User { role, ..user })
            })
        })
        .await
    }

    async fn set_status(
        &self,
        scope: &AdminScope,
        id: &OwnerId,
        status: UserStatus,
    ) -> Result<User> {
        let (scope, id) = (scope.clone(), id.clone());
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let (scope, user, state) = managed(tx, &scope, &id).await?;
                check_status_change(&scope, &id, &state, status)?;
                tx.update_status(&id, status, now).await?;
                if status != UserStatus::Active {
                    end_sessions_in(tx, &id, None).await?;
                }
                tx.append(events::user_status_changed(now, scope.actor(), &id, status))
                    .await?;
                Ok(User { status, ..user })
            })
        })
        .await
    }

    async fn delete_user(&self, scope: &AdminScope, id: &OwnerId) -> Result<()> {
        let (scope, id) = (scope.clone(), id.clone());
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let (scope, _, state) = managed(tx, &scope, &id).await?;
                check_delete(&scope, &id, &state)?;
                let tokens = tx.live_token_count(&id, now).await?;
                let identities = tx.identity_count(&id).await?;
                // The schema cascades to tokens, identities, the data key, secrets,
                // resources (and their grants), the webhook endpoint and deliveries.
                // Pairing requests belong to no owner; audit events keep the owner id as
                // text.
                if !tx.delete_user_row(&id).await? {
                    return Err(Error::NotFound);
                }
                tx.append(events::user_deleted(
                    now,
                    scope.actor(),
                    &id,
                    tokens,
                    identities,
                ))
                .await
            })
        })
        .await
    }
}
