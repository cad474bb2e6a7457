//! The resources area: resource credentials, tokens that let a program read named
//! secrets of one owner, the port that keeps them and the use cases around it.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::RandomSource;
use crate::authz::OwnerScope;
use crate::crypto::{self, MasterKeys, SecretValue};
use crate::error::{Error, Result};
use crate::ids::{OwnerId, ResourceId, SecretName};
use crate::secrets::{SecretStore, owner_data_key};
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
