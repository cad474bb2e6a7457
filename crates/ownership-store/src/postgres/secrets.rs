//! Wrapped per-owner data keys and sealed values: the rows of [`SecretRows`] (encryption
//! happens outside the store).

use async_trait::async_trait;
use ownership_core::ids::SecretName;
use ownership_core::ports::{Sealed, SecretMeta};
use ownership_core::secrets::{SecretRows, SecretUsage};
use ownership_core::{OwnerId, Result};
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use super::db::PgTx;
use super::support::{col, count_col, owner_col, parsed, sealed_cols, unavailable, version_param};
use super::support::{query, query_scalar};

fn meta_from_row(row: &PgRow) -> Result<SecretMeta> {
    Ok(SecretMeta {
        name: parsed(row, "name", SecretName::parse)?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

#[async_trait]
impl SecretRows for PgTx {
    async fn owner_key(&mut self, owner: &OwnerId) -> Result<Option<Sealed>> {
        query("SELECT nonce, wrapped, key_version FROM owner_keys WHERE owner_id = $1")
            .bind(owner.as_str())
            .fetch_optional(self.conn())
            .await
            .map_err(unavailable)?
            .map(|row| sealed_cols(&row, "nonce", "wrapped", "key_version"))
            .transpose()
    }

    async fn insert_owner_key(
        &mut self,
        owner: &OwnerId,
        key: &Sealed,
        at: OffsetDateTime,
    ) -> Result<()> {
        query(
            "INSERT INTO owner_keys (owner_id, nonce, wrapped, key_version, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(owner.as_str())
        .bind(key.nonce.as_slice())
        .bind(key.ciphertext.as_slice())
        .bind(version_param(key.key_version)?)
        .bind(at)
        .execute(self.conn())
        .await
        .map_err(unavailable)
        .map(drop)
    }

    async fn owner_keys(&mut self) -> Result<Vec<(OwnerId, Sealed)>> {
        query(
            "SELECT owner_id, nonce, wrapped, key_version FROM owner_keys ORDER BY owner_id COLLATE \"C\"",
        )
        .fetch_all(self.conn())
        .await
        .map_err(unavailable)?
        .iter()
        .map(|row| {
            Ok((
                owner_col(row, "owner_id")?,
                sealed_cols(row, "nonce", "wrapped", "key_version")?,
            ))
        })
        .collect()
    }

    async fn swap_owner_key(
        &mut self,
        owner: &OwnerId,
        old: &Sealed,
        new: &Sealed,
    ) -> Result<bool> {
        let changed = query(
            "UPDATE owner_keys SET nonce = $5, wrapped = $6, key_version = $7
             WHERE owner_id = $1 AND nonce = $2 AND wrapped = $3 AND key_version = $4",
        )
        .bind(owner.as_str())
        .bind(old.nonce.as_slice())
        .bind(old.ciphertext.as_slice())
        .bind(version_param(old.key_version)?)
        .bind(new.nonce.as_slice())
        .bind(new.ciphertext.as_slice())
        .bind(version_param(new.key_version)?)
        .execute(self.conn())
        .await
        .map_err(unavailable)?
        .rows_affected();
        Ok(changed > 0)
    }

    async fn upsert_secret(
        &mut self,
        owner: &OwnerId,
        name: &SecretName,
        value: &Sealed,
        at: OffsetDateTime,
    ) -> Result<SecretMeta> {
        let row = query(
            "INSERT INTO secrets (owner_id, name, nonce, ciphertext, key_version, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (owner_id, name) DO UPDATE
             SET nonce = EXCLUDED.nonce, ciphertext = EXCLUDED.ciphertext,
                 key_version = EXCLUDED.key_version, updated_at = EXCLUDED.updated_at
             RETURNING name, created_at, updated_at",
        )
        .bind(owner.as_str())
        .bind(name.as_str())
        .bind(value.nonce.as_slice())
        .bind(value.ciphertext.as_slice())
        .bind(version_param(value.key_version)?)
        .bind(at)
        .fetch_one(self.conn())
        .await
        .map_err(unavailable)?;
        meta_from_row(&row)
    }

    async fn secret(&mut self, owner: &OwnerId, name: &SecretName) -> Result<Option<Sealed>> {
        query(
            "SELECT nonce, ciphertext, key_version FROM secrets WHERE owner_id = $1 AND name = $2",
        )
        .bind(owner.as_str())
        .bind(name.as_str())
        .fetch_optional(self.conn())
        .await
        .map_err(unavailable)?
        .map(|row| sealed_cols(&row, "nonce", "ciphertext", "key_version"))
        .transpose()
    }

    async fn secret_usage(&mut self, owner: &OwnerId) -> Result<SecretUsage> {
        let row = query(
            "SELECT count(*) AS n, coalesce(sum(length(ciphertext)), 0)::bigint AS bytes FROM secrets WHERE owner_id = $1",
        )
        .bind(owner.as_str())
        .fetch_one(self.conn())
        .await
        .map_err(unavailable)?;
        Ok(SecretUsage {
            count: count_col(&row, "n")?,
            ciphertext_bytes: count_col(&row, "bytes")?,
        })
    }

    async fn has_secret(&mut self, owner: &OwnerId, name: &SecretName) -> Result<bool> {
        query_scalar("SELECT EXISTS (SELECT 1 FROM secrets WHERE owner_id = $1 AND name = $2)")
            .bind(owner.as_str())
            .bind(name.as_str())
            .fetch_one(self.conn())
            .await
            .map_err(unavailable)
    }

    async fn secrets_of(&mut self, owner: &OwnerId) -> Result<Vec<SecretMeta>> {
        query(
            "SELECT name, created_at, updated_at FROM secrets WHERE owner_id = $1 ORDER BY name COLLATE \"C\"",
        )
        .bind(owner.as_str())
        .fetch_all(self.conn())
        .await
        .map_err(unavailable)?
        .iter()
        .map(meta_from_row)
        .collect()
    }

    async fn remove_secret(&mut self, owner: &OwnerId, name: &SecretName) -> Result<bool> {
        let removed = query("DELETE FROM secrets WHERE owner_id = $1 AND name = $2")
            .bind(owner.as_str())
            .bind(name.as_str())
            .execute(self.conn())
            .await
            .map_err(unavailable)?
            .rows_affected();
        Ok(removed > 0)
    }
}
