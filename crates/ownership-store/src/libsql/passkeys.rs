//! Passkeys: the rows of [`PasskeyRows`].

use ::libsql::Value;
use async_trait::async_trait;
use ownership_core::passkeys::{
    CredentialId, PasskeyLabel, PasskeyRecord, PasskeyRow, PasskeyRows,
};
use ownership_core::{Error, OwnerId, Result};
use time::OffsetDateTime;

use super::conn::{
    args, exec, exists, integrity, micros, opt_time, parsed, query_all, query_i64, query_opt, text,
    time_at,
};
use super::db::LibsqlTx;

const COLS: &str =
    "credential_id, owner_id, label, credential, sign_count, created_at, last_used_at";

fn record_from(row: &[Value]) -> Result<PasskeyRecord> {
    Ok(PasskeyRecord {
        credential_id: parsed(row, 0, "passkey credential id", CredentialId::parse)?,
        owner_id: parsed(row, 1, "passkey owner", OwnerId::parse)?,
        label: parsed(row, 2, "passkey label", PasskeyLabel::parse)?,
        credential: text(row, 3)?,
        sign_count: u32_of(row, 4)?,
        created_at: time_at(row, 5)?,
        last_used_at: opt_time(row, 6)?,
    })
}

fn u32_of(row: &[Value], i: usize) -> Result<u32> {
    match row.get(i) {
        Some(Value::Integer(n)) => u32::try_from(*n).map_err(|_| integrity("passkey counter")),
        _ => Err(integrity("passkey counter")),
    }
}

#[async_trait]
impl PasskeyRows for LibsqlTx {
    async fn insert_passkey(&mut self, row: PasskeyRow<'_>) -> Result<()> {
        let new = row.new;
        if exists(
            &self.conn,
            "SELECT 1 FROM passkeys WHERE credential_id = ?1",
            args![new.credential_id.as_str()],
        )
        .await?
        {
            return Err(Error::Conflict("this passkey is already registered".into()));
        }
        exec(
            &self.conn,
            "INSERT INTO passkeys (credential_id, owner_id, label, credential, sign_count, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            args![
                new.credential_id.as_str(),
                row.owner.as_str(),
                new.label.as_str(),
                new.credential.as_str(),
                i64::from(new.sign_count),
                micros(row.created_at)?
            ],
        )
        .await
        .map(drop)
    }

    async fn passkey(&mut self, id: &CredentialId) -> Result<Option<PasskeyRecord>> {
        let sql = format!("SELECT {COLS} FROM passkeys WHERE credential_id = ?1");
        query_opt(&self.conn, &sql, args![id.as_str()])
            .await?
            .map(|row| record_from(&row))
            .transpose()
    }

    async fn passkeys_of(&mut self, owner: &OwnerId) -> Result<Vec<PasskeyRecord>> {
        let sql = format!(
            "SELECT {COLS} FROM passkeys WHERE owner_id = ?1 ORDER BY created_at DESC, rowid DESC"
        );
        query_all(&self.conn, &sql, args![owner.as_str()])
            .await?
            .iter()
            .map(|row| record_from(row))
            .collect()
    }

    async fn passkey_count(&mut self, owner: &OwnerId) -> Result<u64> {
        let n = query_i64(
            &self.conn,
            "SELECT COUNT(*) FROM passkeys WHERE owner_id = ?1",
            args![owner.as_str()],
        )
        .await?;
        u64::try_from(n).map_err(|_| integrity("passkey count"))
    }

    async fn update_passkey_use(
        &mut self,
        id: &CredentialId,
        credential: &str,
        sign_count: u32,
        at: OffsetDateTime,
    ) -> Result<()> {
        exec(
            &self.conn,
            "UPDATE passkeys SET credential = ?1, sign_count = ?2, last_used_at = ?3 WHERE credential_id = ?4",
            args![credential, i64::from(sign_count), micros(at)?, id.as_str()],
        )
        .await
        .map(drop)
    }

    async fn delete_passkey(&mut self, owner: &OwnerId, id: &CredentialId) -> Result<bool> {
        let n = exec(
            &self.conn,
            "DELETE FROM passkeys WHERE credential_id = ?1 AND owner_id = ?2",
            args![id.as_str(), owner.as_str()],
        )
        .await?;
        Ok(n > 0)
    }
}
