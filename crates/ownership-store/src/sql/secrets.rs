//! Per-owner sealed secrets and wrapped data keys: the rows of [`SecretRows`]. The store
//! never sees a plaintext or a key: it keeps what the caller sealed.

use async_trait::async_trait;
use ownership_core::ids::SecretName;
use ownership_core::ports::{Sealed, SecretMeta};
use ownership_core::secrets::{SecretRows, SecretUsage};
use ownership_core::{OwnerId, Result};
use time::OffsetDateTime;

use super::driver::*;
use super::tx::SqlTx;

/// Three columns (nonce, ciphertext, version) from `i` on.
pub(super) fn sealed_from(row: &[Val], i: usize, what: &str) -> Result<Sealed> {
    Ok(Sealed {
        nonce: bytes::<12>(row, i, what)?,
        ciphertext: blob(row, i + 1)?,
        key_version: u32_at(row, i + 2, what)?,
    })
}

fn meta_from(row: &[Val]) -> Result<SecretMeta> {
    Ok(SecretMeta {
        name: parsed(row, 0, "secret name", SecretName::parse)?,
        created_at: time_at(row, 1)?,
        updated_at: time_at(row, 2)?,
    })
}

#[async_trait]
impl<D: Driver> SecretRows for SqlTx<D> {
    async fn owner_key(&mut self, owner: &OwnerId) -> Result<Option<Sealed>> {
        query_opt(
            &mut self.d,
            "SELECT nonce, wrapped, key_version FROM owner_keys WHERE owner_id = $1",
            args![owner.as_str()],
        )
        .await?
        .map(|r| sealed_from(&r, 0, "data key"))
        .transpose()
    }

    async fn insert_owner_key(
        &mut self,
        owner: &OwnerId,
        key: &Sealed,
        at: OffsetDateTime,
    ) -> Result<()> {
        exec(
            &mut self.d,
            "INSERT INTO owner_keys (owner_id, nonce, wrapped, key_version, created_at) VALUES ($1, $2, $3, $4, $5)",
            args![owner.as_str(), key.nonce.as_slice(), key.ciphertext.as_slice(), key.key_version, at],
        )
        .await
        .map(drop)
    }

    async fn owner_keys(&mut self) -> Result<Vec<(OwnerId, Sealed)>> {
        query_all(
            &mut self.d,
            "SELECT owner_id, nonce, wrapped, key_version FROM owner_keys ORDER BY owner_id COLLATE \"C\"",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok((
                parsed(r, 0, "data key owner", OwnerId::parse)?,
                sealed_from(r, 1, "data key")?,
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
        let changed = exec(
            &mut self.d,
            "UPDATE owner_keys SET nonce = $1, wrapped = $2, key_version = $3 \
             WHERE owner_id = $4 AND nonce = $5 AND wrapped = $6 AND key_version = $7",
            args![
                new.nonce.as_slice(),
                new.ciphertext.as_slice(),
                new.key_version,
                owner.as_str(),
                old.nonce.as_slice(),
                old.ciphertext.as_slice(),
                old.key_version,
            ],
        )
        .await?;
        Ok(changed > 0)
    }

    async fn upsert_secret(
        &mut self,
        owner: &OwnerId,
        name: &SecretName,
        value: &Sealed,
        at: OffsetDateTime,
    ) -> Result<SecretMeta> {
        let row = query_one(
            &mut self.d,
            "INSERT INTO secrets (owner_id, name, nonce, ciphertext, key_version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (owner_id, name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
             key_version = excluded.key_version, updated_at = excluded.updated_at \
             RETURNING name, created_at, updated_at",
            args![
                owner.as_str(),
                name.as_str(),
                value.nonce.as_slice(),
                value.ciphertext.as_slice(),
                value.key_version,
                at,
            ],
            "written secret",
        )
        .await?;
        meta_from(&row)
    }

    async fn secret(&mut self, owner: &OwnerId, name: &SecretName) -> Result<Option<Sealed>> {
        query_opt(
            &mut self.d,
            "SELECT nonce, ciphertext, key_version FROM secrets WHERE owner_id = $1 AND name = $2",
            args![owner.as_str(), name.as_str()],
        )
        .await?
        .map(|r| sealed_from(&r, 0, "secret"))
        .transpose()
    }

    async fn secret_usage(&mut self, owner: &OwnerId) -> Result<SecretUsage> {
        let row = query_opt(
            &mut self.d,
            "SELECT count(*), coalesce(sum(length(ciphertext)), 0) FROM secrets WHERE owner_id = $1",
            args![owner.as_str()],
        )
        .await?
        .ok_or_else(|| integrity("secret usage"))?;
        Ok(SecretUsage {
            count: count_at(&row, 0, "secret count")?,
            ciphertext_bytes: count_at(&row, 1, "secret bytes")?,
        })
    }

    async fn has_secret(&mut self, owner: &OwnerId, name: &SecretName) -> Result<bool> {
        exists(
            &mut self.d,
            "SELECT 1 FROM secrets WHERE owner_id = $1 AND name = $2",
            args![owner.as_str(), name.as_str()],
        )
        .await
    }

    async fn secrets_of(&mut self, owner: &OwnerId) -> Result<Vec<SecretMeta>> {
        query_all(
            &mut self.d,
            "SELECT name, created_at, updated_at FROM secrets WHERE owner_id = $1 ORDER BY name COLLATE \"C\"",
            args![owner.as_str()],
        )
        .await?
        .iter()
        .map(|r| meta_from(r))
        .collect()
    }

    async fn remove_secret(&mut self, owner: &OwnerId, name: &SecretName) -> Result<bool> {
        let deleted = exec(
            &mut self.d,
            "DELETE FROM secrets WHERE owner_id = $1 AND name = $2",
            args![owner.as_str(), name.as_str()],
        )
        .await?;
        Ok(deleted > 0)
    }
}
