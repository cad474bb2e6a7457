//! Webhook endpoints (one per owner, sealed signing secrets, the previous one kept for a
//! rotation's grace) and the delivery log: the rows of [`WebhookRows`].

use async_trait::async_trait;
use ownership_core::ids::DeliveryId;
use ownership_core::ports::{Delivery, DeliveryState, Sealed, WebhookEndpoint};
use ownership_core::webhook::{DeliveryCursor, WebhookRows, previous_secret_of};
use ownership_core::{OwnerId, Result};
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use super::db::PgTx;
use super::support::{
    col, integrity, owner_col, parsed, query, sealed_cols, u32_col, unavailable,
    unique_or_unavailable, version_param,
};

/// The endpoint columns, aliased so they can sit beside a delivery's in one row.
const ENDPOINT_COLUMNS: &str =
    "e.owner_id AS e_owner_id, e.url AS e_url, e.secret_nonce AS e_secret_nonce,
     e.secret_ct AS e_secret_ct, e.secret_version AS e_secret_version, e.prev_nonce AS e_prev_nonce,
     e.prev_ct AS e_prev_ct, e.prev_version AS e_prev_version, e.prev_until AS e_prev_until,
     e.created_at AS e_created_at";

/// The delivery columns.
const DELIVERY_COLUMNS: &str = "d.id, d.owner_id, d.event_type, d.payload, d.state, d.attempts,
     d.next_attempt_at, d.last_result, d.created_at";

/// An endpoint from the columns of [`ENDPOINT_COLUMNS`].
fn endpoint_from_row(row: &PgRow) -> Result<WebhookEndpoint> {
    let prev_version: Option<i32> = col(row, "e_prev_version")?;
    let previous_secret = previous_secret_of(
        col(row, "e_prev_nonce")?,
        col(row, "e_prev_ct")?,
        prev_version.map(i64::from),
        col(row, "e_prev_until")?,
    )?;
    Ok(WebhookEndpoint {
        owner_id: owner_col(row, "e_owner_id")?,
        url: col(row, "e_url")?,
        secret: sealed_cols(row, "e_secret_nonce", "e_secret_ct", "e_secret_version")?,
        previous_secret,
        created_at: col(row, "e_created_at")?,
    })
}

fn delivery_from_row(row: &PgRow) -> Result<Delivery> {
    Ok(Delivery {
        id: parsed(row, "id", DeliveryId::parse)?,
        owner_id: owner_col(row, "owner_id")?,
        event_type: col(row, "event_type")?,
        payload: col(row, "payload")?,
        state: parsed(row, "state", DeliveryState::parse)?,
        attempts: u32_col(row, "attempts")?,
        next_attempt_at: col(row, "next_attempt_at")?,
        last_result: col(row, "last_result")?,
        created_at: col(row, "created_at")?,
    })
}

#[async_trait]
impl WebhookRows for PgTx {
    async fn upsert_endpoint(
        &mut self,
        owner: &OwnerId,
        url: &str,
        secret: &Sealed,
        at: OffsetDateTime,
    ) -> Result<()> {
        query(
            "INSERT INTO webhook_endpoints
                 (owner_id, url, secret_nonce, secret_ct, secret_version,
                  prev_nonce, prev_ct, prev_version, prev_until, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, NULL, NULL, NULL, NULL, $6, $6)
             ON CONFLICT (owner_id) DO UPDATE
             SET url = EXCLUDED.url, secret_nonce = EXCLUDED.secret_nonce,
                 secret_ct = EXCLUDED.secret_ct, secret_version = EXCLUDED.secret_version,
                 prev_nonce = NULL, prev_ct = NULL, prev_version = NULL, prev_until = NULL,
                 created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at",
        )
        .bind(owner.as_str())
        .bind(url)
        .bind(secret.nonce.as_slice())
        .bind(secret.ciphertext.as_slice())
        .bind(version_param(secret.key_version)?)
        .bind(at)
        .execute(self.conn())
        .await
        .map_err(unavailable)
        .map(drop)
    }

    async fn endpoint(&mut self, owner: &OwnerId) -> Result<Option<WebhookEndpoint>> {
        query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e WHERE e.owner_id = $1"
        )))
        .bind(owner.as_str())
        .fetch_optional(self.conn())
        .await
        .map_err(unavailable)?
        .map(|row| endpoint_from_row(&row))
        .transpose()
    }

    async fn remove_endpoint(&mut self, owner: &OwnerId) -> Result<bool> {
        let removed = query("DELETE FROM webhook_endpoints WHERE owner_id = $1")
            .bind(owner.as_str())
            .execute(self.conn())
            .await
            .map_err(unavailable)?
            .rows_affected();
        Ok(removed > 0)
    }

    async fn shift_endpoint_secret(
        &mut self,
        owner: &OwnerId,
        secret: &Sealed,
        until: OffsetDateTime,
        at: OffsetDateTime,
    ) -> Result<bool> {
        // On the right of SET, columns hold their old values: the current secret becomes
        // the previous one.
        let changed = query(
            "UPDATE webhook_endpoints
             SET prev_nonce = secret_nonce, prev_ct = secret_ct, prev_version = secret_version,
                 prev_until = $5, secret_nonce = $2, secret_ct = $3, secret_version = $4, updated_at = $6
             WHERE owner_id = $1",
        )
        .bind(owner.as_str())
        .bind(secret.nonce.as_slice())
        .bind(secret.ciphertext.as_slice())
        .bind(version_param(secret.key_version)?)
        .bind(until)
        .bind(at)
        .execute(self.conn())
        .await
        .map_err(unavailable)?
        .rows_affected();
        Ok(changed > 0)
    }

    async fn insert_delivery(&mut self, d: &Delivery) -> Result<()> {
        query(
            "INSERT INTO webhook_deliveries
                 (id, owner_id, event_type, payload, state, attempts, next_attempt_at, last_result, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(d.id.as_str())
        .bind(d.owner_id.as_str())
        .bind(&d.event_type)
        .bind(&d.payload)
        .bind(d.state.as_str())
        .bind(i32::try_from(d.attempts).map_err(|_| integrity("attempts"))?)
        .bind(d.next_attempt_at)
        .bind(d.last_result.as_deref())
        .bind(d.created_at)
        .execute(self.conn())
        .await
        .map_err(|e| unique_or_unavailable(e, "a delivery with this id already exists"))
        .map(drop)
    }

    async fn due_at(
        &mut self,
        at: OffsetDateTime,
        limit: u32,
        per_owner: u32,
    ) -> Result<Vec<(Delivery, WebhookEndpoint)>> {
        query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS}, {ENDPOINT_COLUMNS}
             FROM (SELECT q.*, ROW_NUMBER() OVER (PARTITION BY q.owner_id ORDER BY q.created_at, q.id) AS turn
                   FROM webhook_deliveries q
                   WHERE q.state = 'pending' AND q.next_attempt_at <= $1) d
             JOIN webhook_endpoints e ON e.owner_id = d.owner_id
             WHERE d.turn <= $3
             ORDER BY d.turn, d.created_at, d.id
             LIMIT $2"
        )))
        .bind(at)
        .bind(i64::from(limit))
        .bind(i64::from(per_owner))
        .fetch_all(self.conn())
        .await
        .map_err(unavailable)?
        .iter()
        .map(|row| Ok((delivery_from_row(row)?, endpoint_from_row(row)?)))
        .collect()
    }

    async fn defer_pending(
        &mut self,
        owner: &OwnerId,
        until: OffsetDateTime,
        note: &str,
    ) -> Result<u64> {
        Ok(query(
            "UPDATE webhook_deliveries SET next_attempt_at = $2, last_result = $3
             WHERE owner_id = $1 AND state = 'pending' AND next_attempt_at < $2",
        )
        .bind(owner.as_str())
        .bind(until)
        .bind(note)
        .execute(self.conn())
        .await
        .map_err(unavailable)?
        .rows_affected())
    }

    async fn update_delivery(
        &mut self,
        id: &DeliveryId,
        state: DeliveryState,
        next_attempt_at: OffsetDateTime,
        result: &str,
    ) -> Result<bool> {
        let updated = query(
            "UPDATE webhook_deliveries
             SET state = $2, attempts = attempts + 1, next_attempt_at = $3, last_result = $4
             WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(state.as_str())
        .bind(next_attempt_at)
        .bind(result)
        .execute(self.conn())
        .await
        .map_err(unavailable)?
        .rows_affected();
        Ok(updated > 0)
    }

    async fn deliveries_of(
        &mut self,
        owner: &OwnerId,
        before: Option<&DeliveryCursor>,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d
             WHERE d.owner_id = $1
               AND ($2::timestamptz IS NULL OR (d.created_at, d.id) < ($2, $3))
             ORDER BY d.created_at DESC, d.id DESC
             LIMIT $4"
        )))
        .bind(owner.as_str())
        .bind(before.map(|c| c.created_at))
        .bind(before.map(|c| c.id.as_str()))
        .bind(i64::from(limit))
        .fetch_all(self.conn())
        .await
        .map_err(unavailable)?
        .iter()
        .map(delivery_from_row)
        .collect()
    }
}
