//! [`ResourceStore`]: resources that fetch their creator's granted secrets.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use ownership_core::authz::OwnerScope;
use ownership_core::ids::{ResourceId, SecretName};
use ownership_core::ports::{NewResource, ResourceRecord, ResourceStore};
use ownership_core::token::TokenDigest;
use ownership_core::{Error, Result, UserStatus};
use sqlx::postgres::{PgConnection, PgRow};

use super::PgStore;
use super::support::{Write, col, owner_col, parsed, unavailable, unique_or_unavailable};
use super::support::{query, query_scalar};
use crate::metrics::Op;
use ownership_core::events;

/// Longest resource kind, in bytes.
const KIND_MAX_BYTES: usize = 64;

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

#[async_trait]
impl ResourceStore for PgStore {
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
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        let status: Option<String> = query_scalar("SELECT status FROM users WHERE id = $1")
            .bind(scope.owner().as_str())
            .fetch_optional(w.conn())
            .await
            .map_err(unavailable)?;
        if status.as_deref() != Some(UserStatus::Active.as_str()) {
            return Err(Error::NotFound);
        }
        let names: Vec<&str> = grants.iter().map(SecretName::as_str).collect();
        let existing: Vec<String> =
            query_scalar("SELECT name FROM secrets WHERE owner_id = $1 AND name = ANY($2)")
                .bind(scope.owner().as_str())
                .bind(&names)
                .fetch_all(w.conn())
                .await
                .map_err(unavailable)?;
        let existing: BTreeSet<&str> = existing.iter().map(String::as_str).collect();
        if let Some(missing) = names.iter().find(|n| !existing.contains(*n)) {
            return Err(Error::invalid(
                "grants",
                format!("no secret named `{missing}`"),
            ));
        }
        query(
            "INSERT INTO resources (id, owner_id, kind, external_ref, token_digest, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new.id.as_str())
        .bind(scope.owner().as_str())
        .bind(&new.kind)
        .bind(new.external_ref.as_deref())
        .bind(new.token.digest.as_bytes().as_slice())
        .bind(now)
        .execute(w.conn())
        .await
        .map_err(|e| unique_or_unavailable(e, "a resource with this id or token already exists"))?;
        if !names.is_empty() {
            query(
                "INSERT INTO resource_grants (resource_id, secret_name) SELECT $1, unnest($2::text[])",
            )
            .bind(new.id.as_str())
            .bind(&names)
            .execute(w.conn())
            .await
            .map_err(unavailable)?;
        }
        w.audit(events::resource_created(
            now,
            scope.actor(),
            scope.owner(),
            &new.id,
            &grants,
        ))
        .await?;
        w.commit().await?;
        Ok(ResourceRecord {
            id: new.id,
            owner_id: scope.owner().clone(),
            kind: new.kind,
            external_ref: new.external_ref,
            grants,
            created_at: now,
            revoked_at: None,
        })
    }

    async fn get_resource(&self, scope: &OwnerScope, id: &ResourceId) -> Result<ResourceRecord> {
        let mut conn = self.reads().acquire().await.map_err(unavailable)?;
        let row = query(
            "SELECT id, owner_id, kind, external_ref, created_at, revoked_at
             FROM resources WHERE owner_id = $1 AND id = $2",
        )
        .bind(scope.owner().as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(unavailable)?
        .ok_or(Error::NotFound)?;
        with_grants(&mut conn, std::slice::from_ref(&row))
            .await?
            .pop()
            .ok_or(Error::NotFound)
    }

    async fn list_resources(&self, scope: &OwnerScope) -> Result<Vec<ResourceRecord>> {
        let mut conn = self.reads().acquire().await.map_err(unavailable)?;
        let rows = query(
            "SELECT id, owner_id, kind, external_ref, created_at, revoked_at
             FROM resources WHERE owner_id = $1
             ORDER BY created_at DESC, id DESC",
        )
        .bind(scope.owner().as_str())
        .fetch_all(&mut *conn)
        .await
        .map_err(unavailable)?;
        with_grants(&mut conn, &rows).await
    }

    async fn revoke_resource(&self, scope: &OwnerScope, id: &ResourceId) -> Result<()> {
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        let revoked_at: Option<Option<time::OffsetDateTime>> =
            query_scalar("SELECT revoked_at FROM resources WHERE owner_id = $1 AND id = $2")
                .bind(scope.owner().as_str())
                .bind(id.as_str())
                .fetch_optional(w.conn())
                .await
                .map_err(unavailable)?;
        match revoked_at {
            None => return Err(Error::NotFound),
            // Already revoked: nothing to change, nothing to audit.
            Some(Some(_)) => return Ok(()),
            Some(None) => {}
        }
        query("UPDATE resources SET revoked_at = $3 WHERE owner_id = $1 AND id = $2")
            .bind(scope.owner().as_str())
            .bind(id.as_str())
            .bind(now)
            .execute(w.conn())
            .await
            .map_err(unavailable)?;
        w.audit(events::resource_revoked(
            now,
            scope.actor(),
            scope.owner(),
            id,
        ))
        .await?;
        w.commit().await
    }

    async fn resolve_resource(&self, digest: &TokenDigest) -> Result<Option<ResourceRecord>> {
        crate::metrics::timed("postgres", Op::Read, async {
            let now = self.now();
            let mut conn = self.reads().acquire().await.map_err(unavailable)?;
            let row = query(
                "SELECT r.id, r.owner_id, r.kind, r.external_ref, r.created_at, r.revoked_at
                 FROM resources r JOIN users u ON u.id = r.owner_id
                 WHERE r.token_digest = $1
                   AND (r.revoked_at IS NULL OR r.revoked_at > $2)
                   AND u.status = 'active'",
            )
            .bind(digest.as_bytes().as_slice())
            .bind(now)
            .fetch_optional(&mut *conn)
            .await
            .map_err(unavailable)?;
            match row {
                None => Ok(None),
                Some(row) => Ok(with_grants(&mut conn, std::slice::from_ref(&row))
                    .await?
                    .pop()),
            }
        })
        .await
    }
}
