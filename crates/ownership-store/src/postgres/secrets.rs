//! [`SecretStore`]: wrapped per-owner data keys and sealed values (encryption happens
//! outside the store).

use async_trait::async_trait;
use ownership_core::authz::{OwnerScope, SystemScope};
use ownership_core::ids::SecretName;
use ownership_core::ports::{Sealed, SecretMeta, SecretStore};
use ownership_core::{Error, OwnerId, Result, UserStatus};
use sqlx::postgres::PgRow;

use super::PgStore;
use super::support::{Write, col, owner_col, parsed, sealed_cols, unavailable, version_param};
use super::support::{query, query_scalar};
use ownership_core::events;

fn meta_from_row(row: &PgRow) -> Result<SecretMeta> {
    Ok(SecretMeta {
        name: parsed(row, "name", SecretName::parse)?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

#[async_trait]
impl SecretStore for PgStore {
    async fn data_key(&self, scope: &OwnerScope) -> Result<Option<Sealed>> {
        let row = query("SELECT nonce, wrapped, key_version FROM owner_keys WHERE owner_id = $1")
            .bind(scope.owner().as_str())
            .fetch_optional(self.reads())
            .await
            .map_err(unavailable)?;
        row.map(|row| sealed_cols(&row, "nonce", "wrapped", "key_version"))
            .transpose()
    }

    async fn put_secret(
        &self,
        scope: &OwnerScope,
        name: &SecretName,
        value: Sealed,
        new_data_key: Option<Sealed>,
    ) -> Result<SecretMeta> {
        let value_version = version_param(value.key_version)?;
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
        let has_key: bool =
            query_scalar("SELECT EXISTS (SELECT 1 FROM owner_keys WHERE owner_id = $1)")
                .bind(scope.owner().as_str())
                .fetch_one(w.conn())
                .await
                .map_err(unavailable)?;
        match (new_data_key, has_key) {
            (Some(key), false) => {
                query(
                    "INSERT INTO owner_keys (owner_id, nonce, wrapped, key_version, created_at)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(scope.owner().as_str())
                .bind(key.nonce.as_slice())
                .bind(key.ciphertext.as_slice())
                .bind(version_param(key.key_version)?)
                .bind(now)
                .execute(w.conn())
                .await
                .map_err(unavailable)?;
            }
            (Some(_), true) => {
                return Err(Error::Conflict(
                    "a data key was installed meanwhile; read it and retry".into(),
                ));
            }
            (None, false) => {
                return Err(Error::Conflict("the owner has no data key yet".into()));
            }
            (None, true) => {}
        }
        let row = query(
            "INSERT INTO secrets (owner_id, name, nonce, ciphertext, key_version, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (owner_id, name) DO UPDATE
             SET nonce = EXCLUDED.nonce, ciphertext = EXCLUDED.ciphertext,
                 key_version = EXCLUDED.key_version, updated_at = EXCLUDED.updated_at
             RETURNING name, created_at, updated_at",
        )
        .bind(scope.owner().as_str())
        .bind(name.as_str())
        .bind(value.nonce.as_slice())
        .bind(value.ciphertext.as_slice())
        .bind(value_version)
        .bind(now)
        .fetch_one(w.conn())
        .await
        .map_err(unavailable)?;
        let meta = meta_from_row(&row)?;
        w.audit(events::secret_put(now, scope.actor(), scope.owner(), name))
            .await?;
        w.commit().await?;
        Ok(meta)
    }

    async fn get_secret(&self, scope: &OwnerScope, name: &SecretName) -> Result<Option<Sealed>> {
        let row = query(
            "SELECT nonce, ciphertext, key_version FROM secrets WHERE owner_id = $1 AND name = $2",
        )
        .bind(scope.owner().as_str())
        .bind(name.as_str())
        .fetch_optional(self.reads())
        .await
        .map_err(unavailable)?;
        row.map(|row| sealed_cols(&row, "nonce", "ciphertext", "key_version"))
            .transpose()
    }

    async fn list_secrets(&self, scope: &OwnerScope) -> Result<Vec<SecretMeta>> {
        let rows = query(
            "SELECT name, created_at, updated_at FROM secrets WHERE owner_id = $1 ORDER BY name COLLATE \"C\"",
        )
        .bind(scope.owner().as_str())
        .fetch_all(self.reads())
        .await
        .map_err(unavailable)?;
        rows.iter().map(meta_from_row).collect()
    }

    async fn delete_secret(&self, scope: &OwnerScope, name: &SecretName) -> Result<()> {
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        let removed = query("DELETE FROM secrets WHERE owner_id = $1 AND name = $2")
            .bind(scope.owner().as_str())
            .bind(name.as_str())
            .execute(w.conn())
            .await
            .map_err(unavailable)?
            .rows_affected();
        if removed == 0 {
            return Err(Error::NotFound);
        }
        w.audit(events::secret_deleted(
            now,
            scope.actor(),
            scope.owner(),
            name,
        ))
        .await?;
        w.commit().await
    }

    async fn all_data_keys(&self, _scope: &SystemScope) -> Result<Vec<(OwnerId, Sealed)>> {
        let rows = query(
            "SELECT owner_id, nonce, wrapped, key_version FROM owner_keys ORDER BY owner_id COLLATE \"C\"",
        )
        .fetch_all(self.reads())
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok((
                    owner_col(row, "owner_id")?,
                    sealed_cols(row, "nonce", "wrapped", "key_version")?,
                ))
            })
            .collect()
    }

    async fn replace_data_keys(
        &self,
        _scope: &SystemScope,
        keys: &[(OwnerId, Sealed, Sealed)],
    ) -> Result<u64> {
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        let mut replaced = 0;
        for (owner, old, new) in keys {
            replaced += query(
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
            .execute(w.conn())
            .await
            .map_err(unavailable)?
            .rows_affected();
        }
        if replaced > 0 {
            w.audit(events::secrets_rewrapped(now, replaced)).await?;
        }
        w.commit().await?;
        Ok(replaced)
    }
}
