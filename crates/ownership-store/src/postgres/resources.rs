//! Resources and their grants: the rows of [`ResourceRows`], and the digest lookup behind
//! [`Database::resource_by_digest`](ownership_core::db::Database::resource_by_digest).

use std::collections::HashMap;

use async_trait::async_trait;
use ownership_core::ids::{ResourceId, SecretName};
use ownership_core::ports::ResourceRecord;
use ownership_core::resources::{ResourceAuth, ResourceRow, ResourceRows};
use ownership_core::token::TokenDigest;
use ownership_core::{OwnerId, Result, UserStatus};
use sqlx::postgres::{PgConnection, PgRow};
use time::OffsetDateTime;

use super::PgStore;
use super::db::PgTx;
use super::support::{col, owner_col, parsed, unavailable, unique_or_unavailable};
use super::support::{fetch_count, query, query_scalar};
use crate::metrics::Op;
use ownership_core::resources::ResourceDatabase;

fn resource_from_row(row: &PgRow, grants: Vec<SecretName>) -> Result<ResourceRecord> {
    Ok(ResourceRecord {
        id: parsed(row, "id", ResourceId::parse)?,
        owner_id: owner_col(row, "owner_id")?,
        kind: col(row, "kind")?,
        external_ref: col(row, "external_ref")?,
        grants,
        created_at: col(row, "created_at")?,
        revoked_at: col(row, "revoked_at")?,
    })
}

/// The grants of the given resources, each list in byte order of the name.
async fn grants_of(
    conn: &mut PgConnection,
    ids: &[String],
) -> Result<HashMap<String, Vec<SecretName>>> {
    let rows = query(
        "SELECT resource_id, secret_name FROM resource_grants
         WHERE resource_id = ANY($1)
         ORDER BY resource_id, secret_name COLLATE \"C\"",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
    .map_err(unavailable)?;
    let mut out: HashMap<String, Vec<SecretName>> = HashMap::new();
    for row in &rows {
        let id: String = col(row, "resource_id")?;
        out.entry(id)
            .or_default()
            .push(parsed(row, "secret_name", SecretName::parse)?);
    }
    Ok(out)
}

/// Resource rows with their grants.
async fn with_grants(conn: &mut PgConnection, rows: &[PgRow]) -> Result<Vec<ResourceRecord>> {
    let ids = rows
        .iter()
        .map(|row| col::<String>(row, "id"))
        .collect::<Result<Vec<_>>>()?;
    let mut grants = grants_of(conn, &ids).await?;
    rows.iter()
        .zip(&ids)
        .map(|(row, id)| resource_from_row(row, grants.remove(id).unwrap_or_default()))
        .collect()
}

/// The resource whose token has this digest, with its creator's status.
async fn resource_by_digest(
    conn: &mut PgConnection,
    digest: &TokenDigest,
) -> Result<Option<ResourceAuth>> {
    let Some(row) = query(
        "SELECT r.id, r.owner_id, r.kind, r.external_ref, r.created_at, r.revoked_at, u.status
         FROM resources r JOIN users u ON u.id = r.owner_id
         WHERE r.token_digest = $1",
    )
    .bind(digest.as_bytes().as_slice())
    .fetch_optional(&mut *conn)
    .await
    .map_err(unavailable)?
    else {
        return Ok(None);
    };
    let status = parsed(&row, "status", UserStatus::parse)?;
    Ok(with_grants(conn, std::slice::from_ref(&row))
        .await?
        .pop()
        .map(|record| ResourceAuth { record, status }))
}

#[async_trait]
impl ResourceRows for PgTx {
    async fn insert_resource(&mut self, row: ResourceRow<'_>) -> Result<()> {
        let new = row.new;
        query(
            "INSERT INTO resources (id, owner_id, kind, external_ref, token_digest, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new.id.as_str())
        .bind(row.owner.as_str())
        .bind(&new.kind)
        .bind(new.external_ref.as_deref())
        .bind(new.token.digest.as_bytes().as_slice())
        .bind(row.created_at)
        .execute(self.conn())
        .await
        .map_err(|e| unique_or_unavailable(e, "a resource with this id or token already exists"))?;
        let names: Vec<&str> = row.grants.iter().map(SecretName::as_str).collect();
        query(
            "INSERT INTO resource_grants (resource_id, secret_name) SELECT $1, unnest($2::text[])",
        )
        .bind(new.id.as_str())
        .bind(&names)
        .execute(self.conn())
        .await
        .map_err(unavailable)
        .map(drop)
    }

    async fn resource(
        &mut self,
        owner: &OwnerId,
        id: &ResourceId,
    ) -> Result<Option<ResourceRecord>> {
        let rows = query(
            "SELECT id, owner_id, kind, external_ref, created_at, revoked_at
             FROM resources WHERE owner_id = $1 AND id = $2",
        )
        .bind(owner.as_str())
        .bind(id.as_str())
        .fetch_all(self.conn())
        .await
        .map_err(unavailable)?;
        Ok(with_grants(self.conn(), &rows).await?.pop())
    }

    async fn resources_of(&mut self, owner: &OwnerId) -> Result<Vec<ResourceRecord>> {
        let rows = query(
            "SELECT id, owner_id, kind, external_ref, created_at, revoked_at
             FROM resources WHERE owner_id = $1
             ORDER BY created_at DESC, id DESC",
        )
        .bind(owner.as_str())
        .fetch_all(self.conn())
        .await
        .map_err(unavailable)?;
        with_grants(self.conn(), &rows).await
    }

    async fn resource_by_token(&mut self, digest: &TokenDigest) -> Result<Option<ResourceAuth>> {
        resource_by_digest(self.conn(), digest).await
    }

    async fn live_resource_count(&mut self, owner: &OwnerId) -> Result<u64> {
        let query = query_scalar(
            "SELECT count(*) FROM resources WHERE owner_id = $1 AND revoked_at IS NULL",
        )
        .bind(owner.as_str());
        fetch_count(self.conn(), query, "resource count").await
    }

    async fn set_resource_revoked(
        &mut self,
        owner: &OwnerId,
        id: &ResourceId,
        at: OffsetDateTime,
    ) -> Result<()> {
        query("UPDATE resources SET revoked_at = $3 WHERE owner_id = $1 AND id = $2")
            .bind(owner.as_str())
            .bind(id.as_str())
            .bind(at)
            .execute(self.conn())
            .await
            .map_err(unavailable)
            .map(drop)
    }
}

impl ResourceDatabase for PgStore {
    async fn resource_by_digest(&self, digest: &TokenDigest) -> Result<Option<ResourceAuth>> {
        crate::metrics::timed("postgres", Op::Read, async {
            let mut conn = self.reads().acquire().await.map_err(unavailable)?;
            resource_by_digest(&mut conn, digest).await
        })
        .await
    }
}
