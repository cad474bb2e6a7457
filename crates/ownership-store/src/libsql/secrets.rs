//! Per-owner sealed secrets and wrapped data keys. The store never sees a plaintext or a
//! key: it keeps what the caller sealed.

use ::libsql::{Connection, Value};
use async_trait::async_trait;
use ownership_core::authz::{OwnerScope, SystemScope};
use ownership_core::ids::SecretName;
use ownership_core::ports::{Sealed, SecretMeta, SecretStore};
use ownership_core::{Error, OwnerId, Result};

use super::LibsqlStore;
use super::audit::append_audit;
use super::conn::{
    args, blob, bytes, exec, exists, micros, now_of, parsed, query_all, query_opt, time_at, u32_at,
};
use super::users::active_user;
use ownership_core::events;

/// Three columns (nonce, ciphertext, version) from `i` on.
pub(super) fn sealed_from(row: &[Value], i: usize, what: &str) -> Result<Sealed> {
    Ok(Sealed {
        nonce: bytes::<12>(row, i, what)?,
        ciphertext: blob(row, i + 1)?,
        key_version: u32_at(row, i + 2, what)?,
    })
}

async fn secret_meta(
    conn: &Connection,
    owner: &OwnerId,
    name: &SecretName,
) -> Result<Option<SecretMeta>> {
    query_opt(
        conn,
        "SELECT name, created_at, updated_at FROM secrets WHERE owner_id = ?1 AND name = ?2",
        args![owner.as_str(), name.as_str()],
    )
    .await?
    .map(|row| meta_from(&row))
    .transpose()
}

fn meta_from(row: &[Value]) -> Result<SecretMeta> {
    Ok(SecretMeta {
        name: parsed(row, 0, "secret name", SecretName::parse)?,
        created_at: time_at(row, 1)?,
        updated_at: time_at(row, 2)?,
    })
}

#[async_trait]
impl SecretStore for LibsqlStore {
    async fn data_key(&self, scope: &OwnerScope) -> Result<Option<Sealed>> {
        let owner = scope.owner().as_str().to_owned();
        let row = self
            .worker
            .read(async move |c: &Connection| {
                query_opt(
                    c,
                    "SELECT nonce, wrapped, key_version FROM owner_keys WHERE owner_id = ?1",
                    args![owner],
                )
                .await
            })
            .await?;
        row.map(|r| sealed_from(&r, 0, "data key")).transpose()
    }

    async fn put_secret(
        &self,
        scope: &OwnerScope,
        name: &SecretName,
        value: Sealed,
        new_data_key: Option<Sealed>,
    ) -> Result<SecretMeta> {
        let scope = scope.clone();
        let name = name.clone();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                let at = micros(now)?;
                let owner = scope.owner();
                if active_user(c, owner).await?.is_none() {
                    return Err(Error::NotFound);
                }
                let has_key = exists(c, "SELECT 1 FROM owner_keys WHERE owner_id = ?1", args![owner.as_str()]).await?;
                match (&new_data_key, has_key) {
                    (Some(key), false) => {
                        exec(
                            c,
                            "INSERT INTO owner_keys (owner_id, nonce, wrapped, key_version, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                            args![owner.as_str(), key.nonce.as_slice(), key.ciphertext.as_slice(), key.key_version, at],
                        )
                        .await?;
                    }
                    (Some(_), true) => {
                        return Err(Error::Conflict("a data key was installed meanwhile; read it and retry".into()));
                    }
                    (None, false) => {
                        return Err(Error::Conflict("the owner has no data key yet".into()));
                    }
                    (None, true) => {}
                }
                exec(
                    c,
                    "INSERT INTO secrets (owner_id, name, nonce, ciphertext, key_version, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) \
                     ON CONFLICT (owner_id, name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
                     key_version = excluded.key_version, updated_at = excluded.updated_at",
                    args![
                        owner.as_str(),
                        name.as_str(),
                        value.nonce.as_slice(),
                        value.ciphertext.as_slice(),
                        value.key_version,
                        at,
                    ],
                )
                .await?;
                append_audit(c, events::secret_put(now, scope.actor(), owner, &name)).await?;
                secret_meta(c, owner, &name)
                    .await?
                    .ok_or_else(|| super::conn::integrity("written secret"))
            })
            .await
    }

    async fn get_secret(&self, scope: &OwnerScope, name: &SecretName) -> Result<Option<Sealed>> {
        let owner = scope.owner().as_str().to_owned();
        let name = name.as_str().to_owned();
        let row = self
            .worker
            .read(async move |c: &Connection| {
                query_opt(
                    c,
                    "SELECT nonce, ciphertext, key_version FROM secrets WHERE owner_id = ?1 AND name = ?2",
                    args![owner, name],
                )
                .await
            })
            .await?;
        row.map(|r| sealed_from(&r, 0, "secret")).transpose()
    }

    async fn list_secrets(&self, scope: &OwnerScope) -> Result<Vec<SecretMeta>> {
        let owner = scope.owner().as_str().to_owned();
        let rows = self
            .worker
            .read(async move |c: &Connection| {
                query_all(
                    c,
                    "SELECT name, created_at, updated_at FROM secrets WHERE owner_id = ?1 ORDER BY name",
                    args![owner],
                )
                .await
            })
            .await?;
        rows.iter().map(|r| meta_from(r)).collect()
    }

    async fn delete_secret(&self, scope: &OwnerScope, name: &SecretName) -> Result<()> {
        let scope = scope.clone();
        let name = name.clone();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                let owner = scope.owner();
                let deleted = exec(
                    c,
                    "DELETE FROM secrets WHERE owner_id = ?1 AND name = ?2",
                    args![owner.as_str(), name.as_str()],
                )
                .await?;
                if deleted == 0 {
                    return Err(Error::NotFound);
                }
                append_audit(c, events::secret_deleted(now, scope.actor(), owner, &name)).await?;
                Ok(())
            })
            .await
    }

    async fn all_data_keys(&self, _scope: &SystemScope) -> Result<Vec<(OwnerId, Sealed)>> {
        let rows = self
            .worker
            .read(async move |c: &Connection| {
                query_all(c, "SELECT owner_id, nonce, wrapped, key_version FROM owner_keys ORDER BY owner_id", Vec::new()).await
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    parsed(r, 0, "data key owner", OwnerId::parse)?,
                    sealed_from(r, 1, "data key")?,
                ))
            })
            .collect()
    }

    async fn replace_data_keys(
        &self,
        _scope: &SystemScope,
        keys: &[(OwnerId, Sealed, Sealed)],
    ) -> Result<u64> {
        let keys = keys.to_vec();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                let mut replaced = 0_u64;
                for (owner, old, new) in &keys {
                    replaced += exec(
                        c,
                        "UPDATE owner_keys SET nonce = ?1, wrapped = ?2, key_version = ?3 \
                         WHERE owner_id = ?4 AND nonce = ?5 AND wrapped = ?6 AND key_version = ?7",
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
                }
                if replaced > 0 {
                    append_audit(c, events::secrets_rewrapped(now, replaced)).await?;
                }
                Ok(replaced)
            })
            .await
    }
}
