//! Passkeys: the rows of [`PasskeyRows`].

use async_trait::async_trait;
use ownership_core::passkeys::{
    CredentialId, PasskeyLabel, PasskeyRecord, PasskeyRow, PasskeyRows,
};
use ownership_core::{OwnerId, Result};
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use super::db::PgTx;
use super::support::query;
use super::support::{
    col, count_col, integrity, owner_col, parsed, unavailable, unique_or_unavailable,
};

fn record_from(row: &PgRow) -> Result<PasskeyRecord> {
    let count: i64 = col(row, "sign_count")?;
    Ok(PasskeyRecord {
        credential_id: parsed(row, "credential_id", CredentialId::parse)?,
        owner_id: owner_col(row, "owner_id")?,
        label: parsed(row, "label", PasskeyLabel::parse)?,
        credential: col(row, "credential")?,
        sign_count: u32::try_from(count).map_err(|_| integrity("sign_count"))?,
        created_at: col(row, "created_at")?,
        last_used_at: col(row, "last_used_at")?,
    })
}

#[async_trait]
impl PasskeyRows for PgTx {
    async fn insert_passkey(&mut self, row: PasskeyRow<'_>) -> Result<()> {
        let new = row.new;
        query(
            "INSERT INTO passkeys (credential_id, owner_id, label, credential, sign_count, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new.credential_id.as_str())
        .bind(row.owner.as_str())
        .bind(new.label.as_str())
        .bind(new.credential.as_str())
        .bind(i64::from(new.sign_count))
        .bind(row.created_at)
        .execute(self.conn())
        .await
        .map_err(|e| unique_or_unavailable(e, "this passkey is already registered"))
        .map(drop)
    }

    async fn passkey(&mut self, id: &CredentialId) -> Result<Option<PasskeyRecord>> {
        query(
            "SELECT credential_id, owner_id, label, credential, sign_count, created_at, last_used_at
             FROM passkeys WHERE credential_id = $1",
        )
            .bind(id.as_str())
            .fetch_optional(self.conn())
            .await
            .map_err(unavailable)?
            .map(|row| record_from(&row))
            .transpose()
    }

    async fn passkeys_of(&mut self, owner: &OwnerId) -> Result<Vec<PasskeyRecord>> {
        query(
            "SELECT credential_id, owner_id, label, credential, sign_count, created_at, last_used_at
             FROM passkeys WHERE owner_id = $1
             ORDER BY created_at DESC, credential_id DESC",
        )
        .bind(owner.as_str())
        .fetch_all(self.conn())
        .await
        .map_err(unavailable)?
        .iter()
        .map(record_from)
        .collect()
    }

    async fn passkey_count(&mut self, owner: &OwnerId) -> Result<u64> {
        let row = query("SELECT COUNT(*) AS n FROM passkeys WHERE owner_id = $1")
            .bind(owner.as_str())
            .fetch_one(self.conn())
            .await
            .map_err(unavailable)?;
        count_col(&row, "n")
    }

    async fn update_passkey_use(
        &mut self,
        id: &CredentialId,
        credential: &str,
        sign_count: u32,
        at: OffsetDateTime,
    ) -> Result<()> {
        query(
            "UPDATE passkeys SET credential = $2, sign_count = $3, last_used_at = $4
             WHERE credential_id = $1",
        )
        .bind(id.as_str())
        .bind(credential)
        .bind(i64::from(sign_count))
        .bind(at)
        .execute(self.conn())
        .await
        .map_err(unavailable)
        .map(drop)
    }

    async fn delete_passkey(&mut self, owner: &OwnerId, id: &CredentialId) -> Result<bool> {
        let done = query("DELETE FROM passkeys WHERE credential_id = $1 AND owner_id = $2")
            .bind(id.as_str())
            .bind(owner.as_str())
            .execute(self.conn())
            .await
            .map_err(unavailable)?;
        Ok(done.rows_affected() > 0)
    }
}
