//! Passkeys: the rows of [`PasskeyRows`].

use async_trait::async_trait;
use ownership_core::passkeys::{
    CredentialId, PasskeyLabel, PasskeyRecord, PasskeyRow, PasskeyRows,
};
use ownership_core::{OwnerId, Result};
use time::OffsetDateTime;

use super::driver::*;
use super::tx::SqlTx;

const COLS: &str =
    "credential_id, owner_id, label, credential, sign_count, created_at, last_used_at";

fn record_from(row: &[Val]) -> Result<PasskeyRecord> {
    Ok(PasskeyRecord {
        credential_id: parsed(row, 0, "passkey credential id", CredentialId::parse)?,
        owner_id: parsed(row, 1, "passkey owner", OwnerId::parse)?,
        label: parsed(row, 2, "passkey label", PasskeyLabel::parse)?,
        credential: text(row, 3)?,
        sign_count: u32_at(row, 4, "passkey counter")?,
        created_at: time_at(row, 5)?,
        last_used_at: opt_time(row, 6)?,
    })
}

#[async_trait]
impl<D: Driver> PasskeyRows for SqlTx<D> {
    async fn insert_passkey(&mut self, row: PasskeyRow<'_>) -> Result<()> {
        let new = row.new;
        self.d
            .execute(
                "INSERT INTO passkeys (credential_id, owner_id, label, credential, sign_count, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                args![
                    new.credential_id.as_str(),
                    row.owner.as_str(),
                    new.label.as_str(),
                    new.credential.as_str(),
                    new.sign_count,
                    row.created_at
                ],
            )
            .await
            .map_err(conflict("this passkey is already registered"))
            .map(drop)
    }

    async fn passkey(&mut self, id: &CredentialId) -> Result<Option<PasskeyRecord>> {
        let sql = format!("SELECT {COLS} FROM passkeys WHERE credential_id = $1");
        query_opt(&mut self.d, &sql, args![id.as_str()])
            .await?
            .map(|row| record_from(&row))
            .transpose()
    }

    async fn passkeys_of(&mut self, owner: &OwnerId) -> Result<Vec<PasskeyRecord>> {
        let sql = format!(
            "SELECT {COLS} FROM passkeys WHERE owner_id = $1 ORDER BY created_at DESC, {}",
            pick::<D>("credential_id DESC", "rowid DESC")
        );
        query_all(&mut self.d, &sql, args![owner.as_str()])
            .await?
            .iter()
            .map(|row| record_from(row))
            .collect()
    }

    async fn passkey_count(&mut self, owner: &OwnerId) -> Result<u64> {
        query_count(
            &mut self.d,
            "SELECT COUNT(*) FROM passkeys WHERE owner_id = $1",
            args![owner.as_str()],
            "passkey count",
        )
        .await
    }

    async fn update_passkey_use(
        &mut self,
        id: &CredentialId,
        credential: &str,
        sign_count: u32,
        at: OffsetDateTime,
    ) -> Result<()> {
        exec(
            &mut self.d,
            "UPDATE passkeys SET credential = $1, sign_count = $2, last_used_at = $3 WHERE credential_id = $4",
            args![credential, sign_count, at, id.as_str()],
        )
        .await
        .map(drop)
    }

    async fn delete_passkey(&mut self, owner: &OwnerId, id: &CredentialId) -> Result<bool> {
        exec(
            &mut self.d,
            "DELETE FROM passkeys WHERE credential_id = $1 AND owner_id = $2",
            args![id.as_str(), owner.as_str()],
        )
        .await
        .map(|n| n > 0)
    }
}
