//! Webhook endpoints (one per owner, sealed signing secrets with a rotation grace) and the
//! delivery log.

use ::libsql::{Connection, Value};
use async_trait::async_trait;
use ownership_core::authz::{OwnerScope, SystemScope};
use ownership_core::ids::DeliveryId;
use ownership_core::ports::{
    Delivery, DeliveryState, Page, PageRequest, Sealed, WebhookEndpoint, WebhookStore,
};
use ownership_core::{Error, OwnerId, Result};
use time::OffsetDateTime;

use super::LibsqlStore;
use super::audit::append_audit;
use super::conn::{
    args, exec, int, micros, now_of, opt_blob, opt_int, opt_text, opt_time, page_limit, parsed,
    query_all, query_opt, text, time_at, u32_at,
};
use super::secrets::sealed_from;
use super::users::active_user;
use ownership_core::events;

const ENDPOINT_COLS: &str = "owner_id, url, secret_nonce, secret_ct, secret_version, prev_nonce, prev_ct, prev_version, \
     prev_until, created_at";

const DELIVERY_COLS: &str = "id, owner_id, event_type, payload, state, attempts, next_attempt_at, last_result, created_at, rowid";

/// How many columns [`DELIVERY_COLS`] holds.
const DELIVERY_WIDTH: usize = 10;

/// An endpoint from the columns of [`ENDPOINT_COLS`] starting at `at`. A previous secret
/// is returned only while its grace lasts.
fn endpoint_from(row: &[Value], at: usize, now: OffsetDateTime) -> Result<WebhookEndpoint> {
    let previous = match (
        opt_blob(row, at + 5)?,
        opt_blob(row, at + 6)?,
        opt_int(row, at + 7)?,
        opt_time(row, at + 8)?,
    ) {
        (Some(nonce), Some(ciphertext), Some(version), Some(until)) => {
            let sealed = Sealed {
                nonce: <[u8; 12]>::try_from(nonce.as_slice())
                    .map_err(|_| super::conn::integrity("webhook previous secret"))?,
                ciphertext,
                key_version: u32::try_from(version)
                    .map_err(|_| super::conn::integrity("webhook previous secret"))?,
            };
            (until > now).then_some((sealed, until))
        }
        (None, None, None, None) => None,
        _ => return Err(super::conn::integrity("webhook previous secret")),
    };
    Ok(WebhookEndpoint {
        owner_id: parsed(row, at, "webhook owner", OwnerId::parse)?,
        url: text(row, at + 1)?,
        secret: sealed_from(row, at + 2, "webhook secret")?,
        previous_secret: previous,
        created_at: time_at(row, at + 9)?,
    })
}

/// A delivery from the columns of [`DELIVERY_COLS`] starting at `at`.
fn delivery_from(row: &[Value], at: usize) -> Result<Delivery> {
    Ok(Delivery {
        id: parsed(row, at, "delivery id", DeliveryId::parse)?,
        owner_id: parsed(row, at + 1, "delivery owner", OwnerId::parse)?,
        event_type: text(row, at + 2)?,
        payload: text(row, at + 3)?,
        state: parsed(row, at + 4, "delivery state", DeliveryState::parse)?,
        attempts: u32_at(row, at + 5, "delivery attempts")?,
        next_attempt_at: time_at(row, at + 6)?,
        last_result: opt_text(row, at + 7)?,
        created_at: time_at(row, at + 8)?,
    })
}

async fn endpoint(
    conn: &Connection,
    owner: &OwnerId,
    now: OffsetDateTime,
) -> Result<Option<WebhookEndpoint>> {
    let sql = format!("SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE owner_id = ?1");
    query_opt(conn, &sql, args![owner.as_str()])
        .await?
        .map(|row| endpoint_from(&row, 0, now))
        .transpose()
}

/// The delivery cursor: `created_at` microseconds and rowid of the last item.
fn parse_cursor(after: Option<&String>) -> Result<Option<(i64, i64)>> {
    let Some(raw) = after else {
        return Ok(None);
    };
    raw.split_once(':')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .map(Some)
        .ok_or_else(|| Error::invalid("cursor", "not a cursor from a previous page"))
}

#[async_trait]
impl WebhookStore for LibsqlStore {
    async fn put_endpoint(
        &self,
        scope: &OwnerScope,
        url: &str,
        secret: Sealed,
    ) -> Result<WebhookEndpoint> {
        let scope = scope.clone();
        let url = url.to_owned();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                let at = micros(now)?;
                let owner = scope.owner();
                if active_user(c, owner).await?.is_none() {
                    return Err(Error::NotFound);
                }
                exec(
                    c,
                    "INSERT INTO webhook_endpoints (owner_id, url, secret_nonce, secret_ct, secret_version, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) \
                     ON CONFLICT (owner_id) DO UPDATE SET url = excluded.url, secret_nonce = excluded.secret_nonce, \
                     secret_ct = excluded.secret_ct, secret_version = excluded.secret_version, prev_nonce = NULL, \
                     prev_ct = NULL, prev_version = NULL, prev_until = NULL, created_at = excluded.created_at, \
                     updated_at = excluded.updated_at",
                    args![owner.as_str(), url.as_str(), secret.nonce.as_slice(), secret.ciphertext.as_slice(), secret.key_version, at],
                )
                .await?;
                append_audit(c, events::webhook_set(now, scope.actor(), owner, &url)).await?;
                endpoint(c, owner, now).await?.ok_or_else(|| super::conn::integrity("written endpoint"))
            })
            .await
    }

    async fn get_endpoint(&self, scope: &OwnerScope) -> Result<Option<WebhookEndpoint>> {
        let owner = scope.owner().clone();
        let now = self.now();
        self.worker
            .read(async move |c: &Connection| endpoint(c, &owner, now).await)
            .await
    }

    async fn delete_endpoint(&self, scope: &OwnerScope) -> Result<()> {
        let scope = scope.clone();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                let owner = scope.owner();
                let deleted = exec(
                    c,
                    "DELETE FROM webhook_endpoints WHERE owner_id = ?1",
                    args![owner.as_str()],
                )
                .await?;
                if deleted == 0 {
                    return Err(Error::NotFound);
                }
                append_audit(c, events::webhook_deleted(now, scope.actor(), owner)).await?;
                Ok(())
            })
            .await
    }

    async fn rotate_endpoint_secret(
        &self,
        scope: &OwnerScope,
        secret: Sealed,
        grace_until: OffsetDateTime,
    ) -> Result<WebhookEndpoint> {
        let scope = scope.clone();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                let owner = scope.owner();
                let until = micros(grace_until)?;
                let changed = exec(
                    c,
                    "UPDATE webhook_endpoints SET prev_nonce = secret_nonce, prev_ct = secret_ct, prev_version = secret_version, \
                     prev_until = ?1, secret_nonce = ?2, secret_ct = ?3, secret_version = ?4, updated_at = ?5 WHERE owner_id = ?6",
                    args![
                        until,
                        secret.nonce.as_slice(),
                        secret.ciphertext.as_slice(),
                        secret.key_version,
                        micros(now)?,
                        owner.as_str(),
                    ],
                )
                .await?;
                if changed == 0 {
                    return Err(Error::NotFound);
                }
                let until = super::conn::from_micros(until)?;
                append_audit(c, events::webhook_secret_rotated(now, scope.actor(), owner, until)).await?;
                endpoint(c, owner, now).await?.ok_or(Error::NotFound)
            })
            .await
    }

    async fn enqueue_delivery(
        &self,
        _scope: &SystemScope,
        owner: &OwnerId,
        id: DeliveryId,
        event_type: &str,
        payload: &str,
    ) -> Result<Option<Delivery>> {
        let owner = owner.clone();
        let event_type = event_type.to_owned();
        let payload = payload.to_owned();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                let at = micros(now)?;
                if endpoint(c, &owner, now).await?.is_none() {
                    return Ok(None);
                }
                if super::conn::exists(c, "SELECT 1 FROM webhook_deliveries WHERE id = ?1", args![id.as_str()]).await? {
                    return Err(Error::Conflict("the delivery already exists".into()));
                }
                exec(
                    c,
                    "INSERT INTO webhook_deliveries (id, owner_id, event_type, payload, state, attempts, next_attempt_at, created_at) \
                     VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5)",
                    args![id.as_str(), owner.as_str(), event_type.as_str(), payload.as_str(), at],
                )
                .await?;
                let sql = format!("SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE id = ?1");
                let row = query_opt(c, &sql, args![id.as_str()])
                    .await?
                    .ok_or_else(|| super::conn::integrity("inserted delivery"))?;
                Ok(Some(delivery_from(&row, 0)?))
            })
            .await
    }

    async fn due_deliveries(
        &self,
        _scope: &SystemScope,
        limit: u32,
    ) -> Result<Vec<(Delivery, WebhookEndpoint)>> {
        let now = self.now();
        let at = micros(now)?;
        let limit = i64::from(limit.clamp(1, 500));
        let rows = self
            .worker
            .read(async move |c: &Connection| {
                let delivery_cols = DELIVERY_COLS
                    .split(", ")
                    .map(|col| format!("d.{col}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let endpoint_cols = ENDPOINT_COLS
                    .split(',')
                    .map(|col| format!("e.{}", col.trim()))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "SELECT {delivery_cols}, {endpoint_cols} FROM webhook_deliveries d \
                     JOIN webhook_endpoints e ON e.owner_id = d.owner_id \
                     WHERE d.state = 'pending' AND d.next_attempt_at <= ?1 \
                     ORDER BY d.created_at, d.rowid LIMIT ?2"
                );
                query_all(c, &sql, args![at, limit]).await
            })
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    delivery_from(row, 0)?,
                    endpoint_from(row, DELIVERY_WIDTH, now)?,
                ))
            })
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
        let id = id.clone();
        let next = micros(next_attempt_at)?;
        let result = result.to_owned();
        self.worker
            .write(async move |c: &Connection| {
                let changed = exec(
                    c,
                    "UPDATE webhook_deliveries SET state = ?1, attempts = attempts + 1, next_attempt_at = ?2, last_result = ?3 \
                     WHERE id = ?4",
                    args![state.as_str(), next, result, id.as_str()],
                )
                .await?;
                if changed == 0 {
                    return Err(Error::NotFound);
                }
                Ok(())
            })
            .await
    }

    async fn list_deliveries(
        &self,
        scope: &OwnerScope,
        page: &PageRequest,
    ) -> Result<Page<Delivery>> {
        let cursor = parse_cursor(page.after.as_ref())?;
        let limit = page_limit(page.limit);
        let owner = scope.owner().as_str().to_owned();
        let rows = self
            .worker
            .read(async move |c: &Connection| match cursor {
                Some((created, rowid)) => {
                    let sql = format!(
                        "SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE owner_id = ?1 \
                         AND (created_at < ?2 OR (created_at = ?2 AND rowid < ?3)) \
                         ORDER BY created_at DESC, rowid DESC LIMIT ?4"
                    );
                    query_all(c, &sql, args![owner, created, rowid, limit]).await
                }
                None => {
                    let sql = format!(
                        "SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE owner_id = ?1 \
                         ORDER BY created_at DESC, rowid DESC LIMIT ?2"
                    );
                    query_all(c, &sql, args![owner, limit]).await
                }
            })
            .await?;
        let wanted = usize::try_from(limit - 1).unwrap_or(usize::MAX);
        let mut items = Vec::with_capacity(rows.len().min(wanted));
        let mut next = None;
        for (i, row) in rows.iter().enumerate() {
            if i == wanted {
                break;
            }
            items.push(delivery_from(row, 0)?);
            if i + 1 == wanted && rows.len() > wanted {
                next = Some(format!(
                    "{}:{}",
                    int(row, 8)?,
                    int(row, DELIVERY_WIDTH - 1)?
                ));
            }
        }
        Ok(Page { items, next })
    }
}
