//! The resources area: resource credentials, tokens that let a program read named
//! secrets of one owner, the port that keeps them and the use cases around it.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::RandomSource;
use crate::authz::OwnerScope;
use std::collections::BTreeSet;

use crate::crypto::{self, MasterKeys, SecretValue};
use crate::db::{self, Transactions, Tx};
use crate::error::{Error, Result};
use crate::events;
use crate::identity::UserStatus;
use crate::ids::{OwnerId, ResourceId, SecretName};
use crate::quotas;
use crate::secrets::{SecretRows, SecretStore, active_owner, owner_data_key};
use crate::token::{PresentedToken, TokenDigest, TokenFamily, TokenSecret, classify};
use crate::tokens::{FreshToken, fresh_token};

/// A resource to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewResource {
    /// Its public id.
    pub id: ResourceId,
    /// What it is (`job`, say): free text up to 64 bytes.
    pub kind: String,
    /// An id in the caller's own system.
    pub external_ref: Option<String>,
    /// Secret names it may fetch.
    pub grants: Vec<SecretName>,
    /// Its token (family `resource`).
    pub token: FreshToken,
}

/// A registered resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRecord {
    /// Public id.
    pub id: ResourceId,
    /// Its creator, whose scope it reads.
    pub owner_id: OwnerId,
    /// What it is.
    pub kind: String,
    /// The caller's own id for it.
    pub external_ref: Option<String>,
    /// Granted secret names.
    pub grants: Vec<SecretName>,
    /// When registered.
    pub created_at: OffsetDateTime,
    /// When revoked.
    pub revoked_at: Option<OffsetDateTime>,
}

/// Resources that fetch their creator's granted secrets.
#[async_trait]
pub trait ResourceStore: Send + Sync {
    /// Registers a resource.
    async fn create_resource(&self, scope: &OwnerScope, new: NewResource)
    -> Result<ResourceRecord>;
    /// One of the owner's resources.
    async fn get_resource(&self, scope: &OwnerScope, id: &ResourceId) -> Result<ResourceRecord>;
    /// The owner's resources.
    async fn list_resources(&self, scope: &OwnerScope) -> Result<Vec<ResourceRecord>>;
    /// Revokes one (its token stops working).
    async fn revoke_resource(&self, scope: &OwnerScope, id: &ResourceId) -> Result<()>;
    /// The live resource for a resource-token digest whose creator is active; `None` for
    /// anything else.
    async fn resolve_resource(&self, digest: &TokenDigest) -> Result<Option<ResourceRecord>>;
}

/// What a resource-token lookup reads: the resource (with its grants) and its creator's
/// account status. The point read
/// [`ResourceDatabase::resource_by_digest`] answers it,
/// and a cache may keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceAuth {
    /// The resource.
    pub record: ResourceRecord,
    /// Its creator's account status now.
    pub status: UserStatus,
}

impl ResourceAuth {
    /// The one rule of "is this resource live": not revoked, and its creator active.
    pub fn decide(self) -> Option<ResourceRecord> {
        (self.record.revoked_at.is_none() && self.status == UserStatus::Active)
            .then_some(self.record)
    }
}

/// A resource row to insert.
#[derive(Debug, Clone, Copy)]
pub struct ResourceRow<'a> {
    /// Whose.
    pub owner: &'a OwnerId,
    /// What to register.
    pub new: &'a NewResource,
    /// The grants, sorted and without repeats.
    pub grants: &'a [SecretName],
    /// When registered.
    pub created_at: OffsetDateTime,
}

/// The resource rows a transaction reads and writes: SQL and row mapping, no decisions.
#[async_trait]
pub trait ResourceRows: Tx {
    /// Inserts a resource and its grants. A taken id or token digest is
    /// [`Error::Conflict`].
    async fn insert_resource(&mut self, row: ResourceRow<'_>) -> Result<()>;
    /// One of the owner's resources, with its grants in byte order.
    async fn resource(
        &mut self,
        owner: &OwnerId,
        id: &ResourceId,
    ) -> Result<Option<ResourceRecord>>;
    /// The owner's resources, newest first, with their grants.
    async fn resources_of(&mut self, owner: &OwnerId) -> Result<Vec<ResourceRecord>>;
    /// The resource whose token has this digest (any owner's), with its creator's
    /// account status.
    async fn resource_by_token(&mut self, digest: &TokenDigest) -> Result<Option<ResourceAuth>>;
    /// How many of the owner's resources are not revoked.
    async fn live_resource_count(&mut self, owner: &OwnerId) -> Result<u64>;
    /// Sets the resource's revocation time.
    async fn set_resource_revoked(
        &mut self,
        owner: &OwnerId,
        id: &ResourceId,
        at: OffsetDateTime,
    ) -> Result<()>;
}

/// Longest accepted resource kind, in bytes.
pub const KIND_MAX_BYTES: usize = 64;

/// A database that keeps resource credentials: transactions with [`ResourceRows`] (and
/// the secrets they grant), and the point read behind every resource-credential request
/// (which a cache may answer).
pub trait ResourceDatabase: Transactions<Tx: ResourceRows + SecretRows> {
    /// The resource whose token has this digest, with its creator's account status,
    /// outside any transaction.
    fn resource_by_digest(
        &self,
        digest: &TokenDigest,
    ) -> impl std::future::Future<Output = Result<Option<ResourceAuth>>> + Send;
}

/// Every [`ResourceDatabase`] keeps resources: each use case once, over [`ResourceRows`].
#[async_trait]
impl<D: ResourceDatabase> ResourceStore for D {
    async fn create_resource(
        &self,
        scope: &OwnerScope,
        new: NewResource,
    ) -> Result<ResourceRecord> {
        if new.kind.is_empty() || new.kind.len() > KIND_MAX_BYTES {
            return Err(Error::invalid(
                "kind",
                format!("must be 1 to {KIND_MAX_BYTES} bytes"),
            ));
        }
        // Sorted (names are ASCII: byte order) and without repeats, as they are read back.
        let grants: Vec<SecretName> = new
            .grants
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let scope = scope.clone();
        let limit = self.limits().quotas.resources;
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let owner = active_owner(tx, &scope).await?;
                let live = tx.live_resource_count(owner).await?;
                quotas::within("resource credentials", live, 1, limit)?;
                for name in &grants {
                    if !tx.has_secret(owner, name).await? {
                        return Err(Error::invalid(
                            "grants",
                            format!("no secret named `{name}`"),
                        ));
                    }
                }
                tx.insert_resource(ResourceRow {
                    owner,
                    new: &new,
                    grants: &grants,
                    created_at: now,
                })
                .await?;
                tx.append(events::resource_created(
                    now,
                    scope.actor(),
                    owner,
                    &new.id,
                    &grants,
                ))
                .await?;
                Ok(ResourceRecord {
                    id: new.id,
                    owner_id: owner.clone(),
                    kind: new.kind,
                    external_ref: new.external_ref,
                    grants,
                    created_at: now,
                    revoked_at: None,
                })
            })
        })
        .await
    }

    async fn get_resource(&self, scope: &OwnerScope, id: &ResourceId) -> Result<ResourceRecord> {
        let (owner, id) = (scope.owner().clone(), id.clone());
        self.read(move |tx| {
            Box::pin(async move { tx.resource(&owner, &id).await?.ok_or(Error::NotFound) })
        })
        .await
    }

    async fn list_resources(&self, scope: &OwnerScope) -> Result<Vec<ResourceRecord>> {
        let owner = scope.owner().clone();
        self.read(move |tx| Box::pin(async move { tx.resources_of(&owner).await }))
            .await
    }

    async fn revoke_resource(&self, scope: &OwnerScope, id: &ResourceId) -> Result<()> {
        let (scope, id) = (scope.clone(), id.clone());
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let owner = scope.owner();
                let resource = tx.resource(owner, &id).await?.ok_or(Error::NotFound)?;
                // Already revoked: nothing to change, nothing to audit.
                if resource.revoked_at.is_some() {
                    return Ok(());
                }
                tx.set_resource_revoked(owner, &id, now).await?;
                tx.append(events::resource_revoked(now, scope.actor(), owner, &id))
                    .await
            })
        })
        .await
    }

    async fn resolve_resource(&self, digest: &TokenDigest) -> Result<Option<ResourceRecord>> {
        Ok(self
            .resource_by_digest(digest)
            .await?
            .and_then(ResourceAuth::decide))
    }
}

/// Longest accepted `external_ref`, in bytes.
pub const EXTERNAL_REF_MAX_BYTES: usize = 256;

/// What an owner asks of a new resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRequest {
    /// What it is (`job`, say): 1–64 bytes, no control characters.
    pub kind: String,
    /// The caller's own id for it: at most 256 bytes, no control characters.
    pub external_ref: Option<String>,
    /// Secret names it may fetch (each must exist in the owner's scope).
    pub grants: Vec<SecretName>,
}

/// Registers a resource with grants to some of the owner's secrets, and returns its
/// resource token (family `resource`), to show once.
pub async fn create_resource<S: ResourceStore + ?Sized>(
    store: &S,
    scope: &OwnerScope,
    request: ResourceRequest,
    rng: &mut (dyn RandomSource + Send),
) -> Result<(ResourceRecord, TokenSecret)> {
    if request.kind.chars().any(char::is_control) {
        return Err(Error::invalid(
            "kind",
            "must not contain control characters",
        ));
    }
    if let Some(r) = &request.external_ref
        && (r.len() > EXTERNAL_REF_MAX_BYTES || r.chars().any(char::is_control))
    {
        return Err(Error::invalid(
            "external_ref",
            format!("must be at most {EXTERNAL_REF_MAX_BYTES} bytes without control characters"),
        ));
    }
    let (secret, fresh) = fresh_token(TokenFamily::Resource, rng);
    let record = store
        .create_resource(
            scope,
            NewResource {
                id: ResourceId::generate(rng),
                kind: request.kind,
                external_ref: request.external_ref,
                grants: request.grants,
                token: fresh,
            },
        )
        .await?;
    Ok((record, secret))
}

/// The granted secrets of the resource a resource token names, read from its creator's
/// scope and nowhere else.
///
/// The token must be one of ours of family `resource` (checked offline first); the
/// resource must be live and its creator active ([`ResourceStore::resolve_resource`]);
/// the scope read is the creator's, built from the resolved record. Every granted secret
/// must exist and open. There is no fallback: any failure is an error, and callers answer
/// every error the same way so that the answer is no oracle.
pub async fn resource_credentials<S: ResourceStore + SecretStore + ?Sized>(
    store: &S,
    keys: &MasterKeys,
    raw_token: &str,
) -> Result<(ResourceRecord, Vec<(SecretName, SecretValue)>)> {
    let presented = classify(raw_token).map_err(|_| Error::Unauthenticated)?;
    if !matches!(presented, PresentedToken::Ours(_, TokenFamily::Resource)) {
        return Err(Error::Unauthenticated);
    }
    let record = store
        .resolve_resource(&presented.secret().digest())
        .await?
        .filter(|r| r.revoked_at.is_none())
        .ok_or(Error::Unauthenticated)?;
    // The creator's scope, for the grants of a credential the store resolved as live.
    let scope = OwnerScope::of_resource_credential(record.owner_id.clone());
    let mut values = Vec::with_capacity(record.grants.len());
    if !record.grants.is_empty() {
        let key = owner_data_key(store, keys, &scope)
            .await?
            .ok_or(Error::NotFound)?;
        for name in &record.grants {
            let sealed = store
                .get_secret(&scope, name)
                .await?
                .ok_or(Error::NotFound)?;
            values.push((
                name.clone(),
                crypto::open_value(&key, scope.owner(), name, &sealed)?,
            ));
        }
    }
    Ok((record, values))
}
