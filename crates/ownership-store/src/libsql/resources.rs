//! Resources: registered with grants to their creator's secrets, resolved by token digest.

use std::collections::BTreeSet;

use ::libsql::{Connection, Value};
use async_trait::async_trait;
use ownership_core::authz::OwnerScope;
use ownership_core::ids::{ResourceId, SecretName};
use ownership_core::ports::{NewResource, ResourceRecord, ResourceStore};
use ownership_core::token::TokenDigest;
use ownership_core::{Error, OwnerId, Result, UserStatus};

use super::LibsqlStore;
use super::audit::append_audit;
use super::conn::{
    args, exec, exists, micros, now_of, opt_text, opt_time, parsed, query_all, query_opt, text,
    time_at,
};
use super::users::active_user;
use ownership_core::events;

/// Longest accepted resource kind, in bytes.
const KIND_MAX_BYTES: usize = 64;

const RESOURCE_COLS: &str = "id, owner_id, kind, external_ref, created_at, revoked_at";

async fn grants(conn: &Connection, id: &str) -> Result<Vec<SecretName>> {
    query_all(
        conn,
        "SELECT secret_name FROM resource_grants WHERE resource_id = ?1 ORDER BY secret_name",
        args![id],
    )
    .await?
    .iter()
    .map(|row| parsed(row, 0, "granted secret name", SecretName::parse))
    .collect()
}

/// A resource row (selected with [`RESOURCE_COLS`]) with its grants.
async fn record_from(conn: &Connection, row: &[Value]) -> Result<ResourceRecord> {
    let id = text(row, 0)?;
    Ok(ResourceRecord {
        id: ResourceId::parse(&id).map_err(|_| super::conn::integrity("resource id"))?,
        owner_id: parsed(row, 1, "resource owner", OwnerId::parse)?,
        kind: text(row, 2)?,
        external_ref: opt_text(row, 3)?,
        grants: grants(conn, &id).await?,
        created_at: time_at(row, 4)?,
        revoked_at: opt_time(row, 5)?,
    })
}

async fn scoped_resource(
    conn: &Connection,
    owner: &OwnerId,
    id: &ResourceId,
) -> Result<Option<ResourceRecord>> {
    let sql = format!("SELECT {RESOURCE_COLS} FROM resources WHERE id = ?1 AND owner_id = ?2");
    match query_opt(conn, &sql, args![id.as_str(), owner.as_str()]).await? {
        Some(row) => Ok(Some(record_from(conn, &row).await?)),
        None => Ok(None),
    }
}

#[async_trait]
impl ResourceStore for LibsqlStore {
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
        let scope = scope.clone();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                let owner = scope.owner();
                if active_user(c, owner).await?.is_none() {
                    return Err(Error::NotFound);
                }
                let wanted: BTreeSet<&SecretName> = new.grants.iter().collect();
                for name in &wanted {
                    let held = exists(
                        c,
                        "SELECT 1 FROM secrets WHERE owner_id = ?1 AND name = ?2",
                        args![owner.as_str(), name.as_str()],
                    )
                    .await?;
                    if !held {
                        return Err(Error::invalid("grants", format!("no secret named `{name}`")));
                    }
                }
                let digest = new.token.digest.as_bytes().as_slice();
                if exists(
                    c,
                    "SELECT 1 FROM resources WHERE id = ?1 OR token_digest = ?2",
                    args![new.id.as_str(), digest],
                )
                .await?
                {
                    return Err(Error::Conflict("the resource already exists".into()));
                }
                exec(
                    c,
                    "INSERT INTO resources (id, owner_id, kind, external_ref, token_digest, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    args![new.id.as_str(), owner.as_str(), new.kind.as_str(), new.external_ref.clone(), digest, micros(now)?],
                )
                .await?;
                for name in &wanted {
                    exec(
                        c,
                        "INSERT INTO resource_grants (resource_id, secret_name) VALUES (?1, ?2)",
                        args![new.id.as_str(), name.as_str()],
                    )
                    .await?;
                }
                let granted: Vec<SecretName> = wanted.into_iter().cloned().collect();
                append_audit(c, events::resource_created(now, scope.actor(), owner, &new.id, &granted)).await?;
                scoped_resource(c, owner, &new.id)
                    .await?
                    .ok_or_else(|| super::conn::integrity("inserted resource"))
            })
            .await
    }

    async fn get_resource(&self, scope: &OwnerScope, id: &ResourceId) -> Result<ResourceRecord> {
        let owner = scope.owner().clone();
        let id = id.clone();
        self.worker
            .read(async move |c: &Connection| {
                scoped_resource(c, &owner, &id)
                    .await?
                    .ok_or(Error::NotFound)
            })
            .await
    }

    async fn list_resources(&self, scope: &OwnerScope) -> Result<Vec<ResourceRecord>> {
        let owner = scope.owner().as_str().to_owned();
        self.worker
            .read(async move |c: &Connection| {
                let sql = format!(
                    "SELECT {RESOURCE_COLS} FROM resources WHERE owner_id = ?1 ORDER BY created_at DESC, rowid DESC"
                );
                let rows = query_all(c, &sql, args![owner]).await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(record_from(c, row).await?);
                }
                Ok(out)
            })
            .await
    }

    async fn revoke_resource(&self, scope: &OwnerScope, id: &ResourceId) -> Result<()> {
        let scope = scope.clone();
        let id = id.clone();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                let owner = scope.owner();
                let resource = scoped_resource(c, owner, &id)
                    .await?
                    .ok_or(Error::NotFound)?;
                if resource.revoked_at.is_some() {
                    return Ok(());
                }
                exec(
                    c,
                    "UPDATE resources SET revoked_at = ?1 WHERE id = ?2 AND owner_id = ?3",
                    args![micros(now)?, id.as_str(), owner.as_str()],
                )
                .await?;
                append_audit(c, events::resource_revoked(now, scope.actor(), owner, &id)).await?;
                Ok(())
            })
            .await
    }

    async fn resolve_resource(&self, digest: &TokenDigest) -> Result<Option<ResourceRecord>> {
        let digest = digest.as_bytes().to_vec();
        let found = self
            .worker
            .read(async move |c: &Connection| {
                let sql = "SELECT r.id, r.owner_id, r.kind, r.external_ref, r.created_at, r.revoked_at, u.status \
                     FROM resources r JOIN users u ON u.id = r.owner_id WHERE r.token_digest = ?1";
                let Some(row) = query_opt(c, sql, args![digest]).await? else {
                    return Ok(None);
                };
                let status = parsed(&row, 6, "user status", UserStatus::parse)?;
                let record = record_from(c, &row).await?;
                Ok(Some((record, status)))
            })
            .await?;
        Ok(found.and_then(|(record, status)| {
            (record.revoked_at.is_none() && status == UserStatus::Active).then_some(record)
        }))
    }
}
