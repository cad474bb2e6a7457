//! [`WebhookStore`]: one endpoint per owner with a sealed signing secret (and the
//! previous one during a rotation's grace), and the delivery log.

use async_trait::async_trait;
use ownership_core::authz::{OwnerScope, SystemScope};
use ownership_core::ids::DeliveryId;
use ownership_core::ports::{
    Delivery, DeliveryState, Page, PageRequest, Sealed, WebhookEndpoint, WebhookStore,
};
use ownership_core::{Error, OwnerId, Result, UserStatus};
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use super::PgStore;
use super::support::{
    Write, col, limit_plus_one, owner_col, parsed, sealed_cols, take_page, u32_col, unavailable,
    version_param,
};
use super::support::{query, query_scalar};
use ownership_core::events;

/// The endpoint columns, aliased so they can sit beside a delivery's in one row.
const ENDPOINT_COLUMNS: &str =
    "e.owner_id AS e_owner_id, e.url AS e_url, e.secret_nonce AS e_secret_nonce,
     e.secret_ct AS e_secret_ct, e.secret_version AS e_secret_version, e.prev_nonce AS e_prev_nonce,
     e.prev_ct AS e_prev_ct, e.prev_version AS e_prev_version, e.prev_until AS e_prev_until,
     e.created_at AS e_created_at";

/// An endpoint from the columns of [`ENDPOINT_COLUMNS`]. The previous secret is shown
/// only while its grace lasts.
fn endpoint_from_row(row: &PgRow, now: OffsetDateTime) -> Result<WebhookEndpoint> {
    let prev_nonce: Option<Vec<u8>> = col(row, "e_prev_nonce")?;
    let prev_ct: Option<Vec<u8>> = col(row, "e_prev_ct")?;
    let prev_version: Option<i32> = col(row, "e_prev_version")?;
    let prev_until: Option<OffsetDateTime> = col(row, "e_prev_until")?;
    let previous_secret = match (prev_nonce, prev_ct, prev_version, prev_until) {
        (Some(nonce), Some(ciphertext), Some(version), Some(until)) => {
            let sealed = Sealed {
                nonce: <[u8; 12]>::try_from(nonce.as_slice())
                    .map_err(|_| super::support::integrity("e_prev_nonce"))?,
                ciphertext,
                key_version: u32::try_from(version)
                    .map_err(|_| super::support::integrity("e_prev_version"))?,
            };
            (until > now).then_some((sealed, until))
        }
        (None, None, None, None) => None,
        _ => return Err(super::support::integrity("webhook endpoint")),
    };
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

/// The delivery-list cursor: `<created_at in unix microseconds>:<id>` of the last item.
fn delivery_cursor(d: &Delivery) -> String {
    format!("{}:{}", d.created_at.unix_timestamp_nanos() / 1_000, d.id)
}

fn parse_delivery_cursor(raw: &str) -> Result<(OffsetDateTime, String)> {
    let bad = || Error::invalid("cursor", "not a cursor from a previous page");
    let (micros, id) = raw.split_once(':').ok_or_else(bad)?;
    let micros: i128 = micros.parse().map_err(|_| bad())?;
    let at = micros
        .checked_mul(1_000)
        .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
        .ok_or_else(bad)?;
    let id = DeliveryId::parse(id).map_err(|_| bad())?;
    Ok((at, id.as_str().to_owned()))
}

#[async_trait]
impl WebhookStore for PgStore {
    async fn put_endpoint(
        &self,
        scope: &OwnerScope,
        url: &str,
        secret: Sealed,
    ) -> Result<WebhookEndpoint> {
        let version = version_param(secret.key_version)?;
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
        .bind(scope.owner().as_str())
        .bind(url)
        .bind(secret.nonce.as_slice())
        .bind(secret.ciphertext.as_slice())
        .bind(version)
        .bind(now)
        .execute(w.conn())
        .await
        .map_err(unavailable)?;
        w.audit(events::webhook_set(now, scope.actor(), scope.owner(), url))
            .await?;
        w.commit().await?;
        Ok(WebhookEndpoint {
            owner_id: scope.owner().clone(),
            url: url.to_owned(),
            secret,
            previous_secret: None,
            created_at: now,
        })
    }

    async fn get_endpoint(&self, scope: &OwnerScope) -> Result<Option<WebhookEndpoint>> {
        let now = self.now();
        let row = query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e WHERE e.owner_id = $1"
        )))
        .bind(scope.owner().as_str())
        .fetch_optional(self.reads())
        .await
        .map_err(unavailable)?;
        row.map(|row| endpoint_from_row(&row, now)).transpose()
    }

    async fn delete_endpoint(&self, scope: &OwnerScope) -> Result<()> {
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        let removed = query("DELETE FROM webhook_endpoints WHERE owner_id = $1")
            .bind(scope.owner().as_str())
            .execute(w.conn())
            .await
            .map_err(unavailable)?
            .rows_affected();
        if removed == 0 {
            return Err(Error::NotFound);
        }
        w.audit(events::webhook_deleted(now, scope.actor(), scope.owner()))
            .await?;
        w.commit().await
    }

    async fn rotate_endpoint_secret(
        &self,
        scope: &OwnerScope,
        secret: Sealed,
        grace_until: OffsetDateTime,
    ) -> Result<WebhookEndpoint> {
        let grace_until = ownership_core::audit::truncate_to_micros(grace_until);
        let version = version_param(secret.key_version)?;
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        // On the right of SET, columns hold their old values: the current secret becomes
        // the previous one.
        let row = query(sqlx::AssertSqlSafe(format!(
            "UPDATE webhook_endpoints AS e
             SET prev_nonce = e.secret_nonce, prev_ct = e.secret_ct, prev_version = e.secret_version,
                 prev_until = $5, secret_nonce = $2, secret_ct = $3, secret_version = $4, updated_at = $6
             WHERE e.owner_id = $1
             RETURNING {ENDPOINT_COLUMNS}"
        )))
        .bind(scope.owner().as_str())
        .bind(secret.nonce.as_slice())
        .bind(secret.ciphertext.as_slice())
        .bind(version)
        .bind(grace_until)
        .bind(now)
        .fetch_optional(w.conn())
        .await
        .map_err(unavailable)?
        .ok_or(Error::NotFound)?;
        let endpoint = endpoint_from_row(&row, now)?;
        w.audit(events::webhook_secret_rotated(
            now,
            scope.actor(),
            scope.owner(),
            grace_until,
        ))
        .await?;
        w.commit().await?;
        Ok(endpoint)
    }

    async fn enqueue_delivery(
        &self,
        _scope: &SystemScope,
        owner: &OwnerId,
        id: DeliveryId,
        event_type: &str,
        payload: &str,
    ) -> Result<Option<Delivery>> {
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        let has_endpoint: bool =
            query_scalar("SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE owner_id = $1)")
                .bind(owner.as_str())
                .fetch_one(w.conn())
                .await
                .map_err(unavailable)?;
        if !has_endpoint {
            return Ok(None);
        }
        query(
            "INSERT INTO webhook_deliveries
                 (id, owner_id, event_type, payload, state, attempts, next_attempt_at, last_result, created_at)
             VALUES ($1, $2, $3, $4, 'pending', 0, $5, NULL, $5)",
        )
        .bind(id.as_str())
        .bind(owner.as_str())
        .bind(event_type)
        .bind(payload)
        .bind(now)
        .execute(w.conn())
        .await
        .map_err(|e| super::support::unique_or_unavailable(e, "a delivery with this id already exists"))?;
        w.commit().await?;
        Ok(Some(Delivery {
            id,
            owner_id: owner.clone(),
            event_type: event_type.to_owned(),
            payload: payload.to_owned(),
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_result: None,
            created_at: now,
        }))
    }

    async fn due_deliveries(
        &self,
        _scope: &SystemScope,
        limit: u32,
    ) -> Result<Vec<(Delivery, WebhookEndpoint)>> {
        let now = self.now();
        let rows = query(sqlx::AssertSqlSafe(format!(
            "SELECT d.id, d.owner_id, d.event_type, d.payload, d.state, d.attempts, d.next_attempt_at,
                    d.last_result, d.created_at, {ENDPOINT_COLUMNS}
             FROM webhook_deliveries d JOIN webhook_endpoints e ON e.owner_id = d.owner_id
             WHERE d.state = 'pending' AND d.next_attempt_at <= $1
             ORDER BY d.created_at, d.id
             LIMIT $2"
        )))
        .bind(now)
        .bind(i64::from(limit.clamp(1, 500)))
        .fetch_all(self.reads())
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| Ok((delivery_from_row(row)?, endpoint_from_row(row, now)?)))
            .collect()
    }

    async fn record_attempt(
        &self,
        _scope: &SystemScope,
        id: &DeliveryId,
        state: DeliveryState,
        next_attempt_at: OffsetDateTime,
        result: &str,
    ) -> Result<()> {
        let next_attempt_at = ownership_core::audit::truncate_to_micros(next_attempt_at);
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let updated = query(
            "UPDATE webhook_deliveries
             SET state = $2, attempts = attempts + 1, next_attempt_at = $3, last_result = $4
             WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(state.as_str())
        .bind(next_attempt_at)
        .bind(result)
        .execute(w.conn())
        .await
        .map_err(unavailable)?
        .rows_affected();
        if updated == 0 {
            return Err(Error::NotFound);
        }
        w.commit().await
    }

    async fn list_deliveries(
        &self,
        scope: &OwnerScope,
        page: &PageRequest,
    ) -> Result<Page<Delivery>> {
        let cursor = page
            .after
            .as_deref()
            .map(parse_delivery_cursor)
            .transpose()?;
        let (before_at, before_id) = cursor.unzip();
        let rows = query(
            "SELECT id, owner_id, event_type, payload, state, attempts, next_attempt_at, last_result, created_at
             FROM webhook_deliveries
             WHERE owner_id = $1
               AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
             ORDER BY created_at DESC, id DESC
             LIMIT $4",
        )
        .bind(scope.owner().as_str())
        .bind(before_at)
        .bind(before_id)
        .bind(limit_plus_one(page))
        .fetch_all(self.reads())
        .await
        .map_err(unavailable)?;
        let deliveries = rows
            .iter()
            .map(delivery_from_row)
            .collect::<Result<Vec<_>>>()?;
        let (items, more) = take_page(deliveries, page);
        let next = more.then(|| items.last().map(delivery_cursor)).flatten();
        Ok(Page { items, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_cursors_round_trip_and_refuse_garbage() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
            + time::Duration::microseconds(123_456);
        let d = Delivery {
            id: DeliveryId::parse("msg_0123456789abcdef0123").unwrap(),
            owner_id: OwnerId::parse("alice").unwrap(),
            event_type: "token.revoked".into(),
            payload: "{}".into(),
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: at,
            last_result: None,
            created_at: at,
        };
        let (back_at, back_id) = parse_delivery_cursor(&delivery_cursor(&d)).unwrap();
        assert_eq!(back_at, at);
        assert_eq!(back_id, d.id.as_str());
        for bad in [
            "",
            "1",
            "x:msg_0123456789abcdef0123",
            "1:nope",
            "99999999999999999999999999:msg_0123456789abcdef0123",
        ] {
            assert!(parse_delivery_cursor(bad).is_err(), "{bad}");
        }
    }
}
