//! Webhook endpoints (one per owner, sealed signing secrets, the previous one kept for a
//! rotation's grace) and the delivery log: the rows of [`WebhookRows`].

use async_trait::async_trait;
use ownership_core::ids::DeliveryId;
use ownership_core::ports::{Delivery, DeliveryState, Sealed, WebhookEndpoint};
use ownership_core::webhook::{DeliveryCursor, EndpointUrl, WebhookRows, previous_secret_of};
use ownership_core::{OwnerId, Result};
use time::OffsetDateTime;

use super::driver::*;
use super::secrets::sealed_from;
use super::tx::SqlTx;

const ENDPOINT_COLS: &str = "e.owner_id, e.url, e.secret_nonce, e.secret_ct, e.secret_version, \
     e.prev_nonce, e.prev_ct, e.prev_version, e.prev_until, e.created_at";

const DELIVERY_COLS: &str = "d.id, d.owner_id, d.event_type, d.payload, d.state, d.attempts, \
     d.next_attempt_at, d.last_result, d.created_at";

/// How many columns [`DELIVERY_COLS`] holds.
const DELIVERY_WIDTH: usize = 9;

/// An endpoint from the columns of [`ENDPOINT_COLS`] starting at `at`.
fn endpoint_from(row: &[Val], at: usize) -> Result<WebhookEndpoint> {
    let previous = previous_secret_of(
        opt_blob(row, at + 5)?,
        opt_blob(row, at + 6)?,
        opt_int(row, at + 7)?,
        opt_time(row, at + 8)?,
    )?;
    Ok(WebhookEndpoint {
        owner_id: parsed(row, at, "webhook owner", OwnerId::parse)?,
        url: parsed(row, at + 1, "endpoint url", EndpointUrl::parse)?,
        secret: sealed_from(row, at + 2, "webhook secret")?,
        previous_secret: previous,
        created_at: time_at(row, at + 9)?,
    })
}

/// A delivery from the columns of [`DELIVERY_COLS`].
fn delivery_from(row: &[Val]) -> Result<Delivery> {
    Ok(Delivery {
        id: parsed(row, 0, "delivery id", DeliveryId::parse)?,
        owner_id: parsed(row, 1, "delivery owner", OwnerId::parse)?,
        event_type: text(row, 2)?,
        payload: text(row, 3)?,
        state: parsed(row, 4, "delivery state", DeliveryState::parse)?,
        attempts: u32_at(row, 5, "delivery attempts")?,
        next_attempt_at: time_at(row, 6)?,
        last_result: opt_text(row, 7)?,
        created_at: time_at(row, 8)?,
    })
}

#[async_trait]
impl<D: Driver> WebhookRows for SqlTx<D> {
    async fn upsert_endpoint(
        &mut self,
        owner: &OwnerId,
        url: &EndpointUrl,
        secret: &Sealed,
        at: OffsetDateTime,
    ) -> Result<()> {
        exec(
            &mut self.d,
            "INSERT INTO webhook_endpoints (owner_id, url, secret_nonce, secret_ct, secret_version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (owner_id) DO UPDATE SET url = excluded.url, secret_nonce = excluded.secret_nonce, \
             secret_ct = excluded.secret_ct, secret_version = excluded.secret_version, prev_nonce = NULL, \
             prev_ct = NULL, prev_version = NULL, prev_until = NULL, created_at = excluded.created_at, \
             updated_at = excluded.updated_at",
            args![owner.as_str(), url.as_str(), secret.nonce.as_slice(), secret.ciphertext.as_slice(), secret.key_version, at],
        )
        .await
        .map(drop)
    }

    async fn endpoint(&mut self, owner: &OwnerId) -> Result<Option<WebhookEndpoint>> {
        let sql = format!("SELECT {ENDPOINT_COLS} FROM webhook_endpoints e WHERE e.owner_id = $1");
        query_opt(&mut self.d, &sql, args![owner.as_str()])
            .await?
            .map(|row| endpoint_from(&row, 0))
            .transpose()
    }

    async fn remove_endpoint(&mut self, owner: &OwnerId) -> Result<bool> {
        let deleted = exec(
            &mut self.d,
            "DELETE FROM webhook_endpoints WHERE owner_id = $1",
            args![owner.as_str()],
        )
        .await?;
        Ok(deleted > 0)
    }

    async fn shift_endpoint_secret(
        &mut self,
        owner: &OwnerId,
        secret: &Sealed,
        until: OffsetDateTime,
        at: OffsetDateTime,
    ) -> Result<bool> {
        let changed = exec(
            &mut self.d,
            "UPDATE webhook_endpoints SET prev_nonce = secret_nonce, prev_ct = secret_ct, prev_version = secret_version, \
             prev_until = $1, secret_nonce = $2, secret_ct = $3, secret_version = $4, updated_at = $5 WHERE owner_id = $6",
            args![
                until,
                secret.nonce.as_slice(),
                secret.ciphertext.as_slice(),
                secret.key_version,
                at,
                owner.as_str(),
            ],
        )
        .await?;
        Ok(changed > 0)
    }

    async fn insert_delivery(&mut self, d: &Delivery) -> Result<()> {
        self.d.execute(
            "INSERT INTO webhook_deliveries (id, owner_id, event_type, payload, state, attempts, next_attempt_at, last_result, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            args![
                d.id.as_str(),
                d.owner_id.as_str(),
                d.event_type.as_str(),
                d.payload.as_str(),
                d.state.as_str(),
                d.attempts,
                d.next_attempt_at,
                d.last_result.clone(),
                d.created_at,
            ],
        )
        .await
        .map_err(conflict("a delivery with this id already exists"))
        .map(drop)
    }

    async fn due_at(
        &mut self,
        at: OffsetDateTime,
        limit: u32,
        per_owner: u32,
    ) -> Result<Vec<(Delivery, WebhookEndpoint)>> {
        let sql = format!(
            "SELECT {DELIVERY_COLS}, {ENDPOINT_COLS} FROM ( \
                 SELECT q.*, ROW_NUMBER() OVER (PARTITION BY q.owner_id ORDER BY q.created_at, q.id) AS turn \
                 FROM webhook_deliveries q WHERE q.state = 'pending' AND q.next_attempt_at <= $1 \
             ) d JOIN webhook_endpoints e ON e.owner_id = d.owner_id \
             WHERE d.turn <= $3 ORDER BY d.turn, d.created_at, d.id LIMIT $2"
        );
        query_all(&mut self.d, &sql, args![at, limit, per_owner])
            .await?
            .iter()
            .map(|row| Ok((delivery_from(row)?, endpoint_from(row, DELIVERY_WIDTH)?)))
            .collect()
    }

    async fn defer_pending(
        &mut self,
        owner: &OwnerId,
        until: OffsetDateTime,
        note: &str,
    ) -> Result<u64> {
        exec(
            &mut self.d,
            "UPDATE webhook_deliveries SET next_attempt_at = $2, last_result = $3 \
             WHERE owner_id = $1 AND state = 'pending' AND next_attempt_at < $2",
            args![owner.as_str(), until, note],
        )
        .await
    }

    async fn update_delivery(
        &mut self,
        id: &DeliveryId,
        state: DeliveryState,
        next_attempt_at: OffsetDateTime,
        result: &str,
    ) -> Result<bool> {
        let changed = exec(
            &mut self.d,
            "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, next_attempt_at = $2, last_result = $3 \
             WHERE id = $4",
            args![state.as_str(), next_attempt_at, result, id.as_str()],
        )
        .await?;
        Ok(changed > 0)
    }

    async fn deliveries_of(
        &mut self,
        owner: &OwnerId,
        before: Option<&DeliveryCursor>,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLS} FROM webhook_deliveries d WHERE d.owner_id = $1 \
             AND ($2 IS NULL OR d.created_at < $2 OR (d.created_at = $2 AND d.id < $3)) \
             ORDER BY d.created_at DESC, d.id DESC LIMIT $4"
        );
        let at = before.map(|c| c.created_at);
        let id = before.map(|c| c.id.as_str());
        query_all(&mut self.d, &sql, args![owner.as_str(), at, id, limit])
            .await?
            .iter()
            .map(|row| delivery_from(row))
            .collect()
    }
}
