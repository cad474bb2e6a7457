//! The users area: who exists, their role and status, and the port and use cases that
//! create and change them (the rules themselves are in [`crate::authz`]).

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::RandomSource;
use crate::authz::AdminScope;
use crate::error::Result;
use crate::identity::{Identity, UserRole, UserStatus};
use crate::ids::OwnerId;
use crate::paging::{Page, PageRequest};
use crate::token::{TokenFamily, TokenSecret};
use crate::tokens::{NewToken, fresh_token};

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
                label: Some("bootstrap".into()),
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
                label: Some("first token".into()),
                expires_at: None,
            },
        )
        .await?;
    Ok((user, secret))
}
