//! Resources and their grants: the rows of [`ResourceRows`], and the digest lookup behind
//! [`Database::resource_by_digest`](ownership_core::db::Database::resource_by_digest).

use async_trait::async_trait;
use ownership_core::ids::{ResourceId, SecretName};
use ownership_core::ports::ResourceRecord;
use ownership_core::resources::{ResourceAuth, ResourceRow, ResourceRows};
use ownership_core::{OwnerId, Result, UserStatus};
use time::OffsetDateTime;

use super::driver::*;
use super::tx::SqlTx;
use ownership_core::token::TokenDigest;

const RESOURCE_COLS: &str = "id, owner_id, kind, external_ref, created_at, revoked_at";

async fn grants<D: Driver>(d: &mut D, id: &str) -> Result<Vec<SecretName>> {
    query_all(
        d,
        "SELECT secret_name FROM resource_grants WHERE resource_id = $1 ORDER BY secret_name COLLATE \"C\"",
        args![id],
    )
    .await?
    .iter()
    .map(|row| parsed(row, 0, "granted secret name", SecretName::parse))
    .collect()
}

/// A resource row (selected with [`RESOURCE_COLS`]) with its grants.
async fn record_from<D: Driver>(d: &mut D, row: &[Val]) -> Result<ResourceRecord> {
    let id = text(row, 0)?;
    Ok(ResourceRecord {
        id: ResourceId::parse(&id).map_err(|_| integrity("resource id"))?,
        owner_id: parsed(row, 1, "resource owner", OwnerId::parse)?,
        kind: text(row, 2)?,
        external_ref: opt_text(row, 3)?,
        grants: grants(d, &id).await?,
        created_at: time_at(row, 4)?,
        revoked_at: opt_time(row, 5)?,
    })
}

/// The resource whose token has this digest, with its creator's status.
pub(crate) async fn resource_by_digest<D: Driver>(
    d: &mut D,
    digest: &[u8],
) -> Result<Option<ResourceAuth>> {
    let sql = "SELECT r.id, r.owner_id, r.kind, r.external_ref, r.created_at, r.revoked_at, u.status \
         FROM resources r JOIN users u ON u.id = r.owner_id WHERE r.token_digest = $1";
    let Some(row) = query_opt(d, sql, args![digest]).await? else {
        return Ok(None);
    };
    Ok(Some(ResourceAuth {
        status: parsed(&row, 6, "user status", UserStatus::parse)?,
        record: record_from(d, &row).await?,
    }))
}

#[async_trait]
impl<D: Driver> ResourceRows for SqlTx<D> {
    async fn insert_resource(&mut self, row: ResourceRow<'_>) -> Result<()> {
        let new = row.new;
        let digest = new.token.digest.as_bytes().as_slice();
        self.d.execute(
            "INSERT INTO resources (id, owner_id, kind, external_ref, token_digest, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            args![new.id.as_str(), row.owner.as_str(), new.kind.as_str(), new.external_ref.clone(), digest, row.created_at],
        )
        .await
        .map_err(conflict("a resource with this id or token already exists"))?;
        for name in row.grants {
            exec(
                &mut self.d,
                "INSERT INTO resource_grants (resource_id, secret_name) VALUES ($1, $2)",
                args![new.id.as_str(), name.as_str()],
            )
            .await?;
        }
        Ok(())
    }

    async fn resource(
        &mut self,
        owner: &OwnerId,
        id: &ResourceId,
    ) -> Result<Option<ResourceRecord>> {
        let sql = format!("SELECT {RESOURCE_COLS} FROM resources WHERE id = $1 AND owner_id = $2");
        match query_opt(&mut self.d, &sql, args![id.as_str(), owner.as_str()]).await? {
            Some(row) => Ok(Some(record_from(&mut self.d, &row).await?)),
            None => Ok(None),
        }
    }

    async fn resources_of(&mut self, owner: &OwnerId) -> Result<Vec<ResourceRecord>> {
        let sql = format!(
            "SELECT {RESOURCE_COLS} FROM resources WHERE owner_id = $1 ORDER BY created_at DESC, {}",
            pick::<D>("id DESC", "rowid DESC")
        );
        let rows = query_all(&mut self.d, &sql, args![owner.as_str()]).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(record_from(&mut self.d, row).await?);
        }
        Ok(out)
    }

    async fn resource_by_token(&mut self, digest: &TokenDigest) -> Result<Option<ResourceAuth>> {
        resource_by_digest(&mut self.d, digest.as_bytes()).await
    }

    async fn live_resource_count(&mut self, owner: &OwnerId) -> Result<u64> {
        query_count(
            &mut self.d,
            "SELECT count(*) FROM resources WHERE owner_id = $1 AND revoked_at IS NULL",
            args![owner.as_str()],
            "resource count",
        )
        .await
    }

    async fn set_resource_revoked(
        &mut self,
        owner: &OwnerId,
        id: &ResourceId,
        at: OffsetDateTime,
    ) -> Result<()> {
        exec(
            &mut self.d,
            "UPDATE resources SET revoked_at = $1 WHERE id = $2 AND owner_id = $3",
            args![at, id.as_str(), owner.as_str()],
        )
        .await
        .map(drop)
    }
}
