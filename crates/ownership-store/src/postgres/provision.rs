//! Static user-token tables: the state a table touches is read, the plan is made by
//! `ownership_core::provision::plan` and executed, all in one transaction that holds the
//! audit-head lock. A dry run reads in a `READ ONLY` transaction and writes nothing.

use async_trait::async_trait;
use ownership_core::authz::AdminScope;
use ownership_core::ports::{FreshToken, NewToken, ProvisionStore, TokenOrigin};
use ownership_core::provision::{self, ProvisionPlan, ProvisionState, ProvisionTable, StoredToken};
use ownership_core::token::TokenDigest;
use ownership_core::{Error, Result};
use sqlx::postgres::{PgConnection, PgRow};
use time::OffsetDateTime;

use super::PgStore;
use super::support::query;
use super::support::{Write, bytes_col, unavailable};
use super::tokens::{insert_token, token_from_row};
use super::users::{active_owners, insert_user, user_from_row};
use crate::OsRandom;
use ownership_core::events;

const STORED_COLS: &str = "id, owner_id, kinds, label, display_prefix, origin, created_at, \
                           expires_at, revoked_at, last_used_at, digest";

fn stored_from(row: &PgRow) -> Result<StoredToken> {
    Ok(StoredToken {
        record: token_from_row(row)?,
        digest: TokenDigest::from_bytes(bytes_col::<32>(row, "digest")?),
    })
}

/// Reads what the table touches: its users, the active Owner count, the tokens with its
/// digests and every live provisioned token.
async fn read_state(
    conn: &mut PgConnection,
    table: &ProvisionTable,
    now: OffsetDateTime,
) -> Result<ProvisionState> {
    let ids: Vec<String> = table
        .users()
        .into_iter()
        .map(|(_, id, _)| id.as_str().to_owned())
        .collect();
    let users = query("SELECT id, role, status, created_at FROM users WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(unavailable)?
        .iter()
        .map(user_from_row)
        .collect::<Result<Vec<_>>>()?;
    let active_owners = active_owners(&mut *conn).await?;
    let digests: Vec<Vec<u8>> = table
        .entries()
        .iter()
        .map(|e| e.digest.as_bytes().to_vec())
        .collect();
    let sql = format!(
        "SELECT {STORED_COLS} FROM tokens
         WHERE digest = ANY($1)
            OR (origin = 'provisioned'
                AND (revoked_at IS NULL OR revoked_at > $2)
                AND (expires_at IS NULL OR expires_at > $2))"
    );
    let tokens = query(sqlx::AssertSqlSafe(sql))
        .bind(digests)
        .bind(now)
        .fetch_all(&mut *conn)
        .await
        .map_err(unavailable)?
        .iter()
        .map(stored_from)
        .collect::<Result<Vec<_>>>()?;
    Ok(ProvisionState {
        users,
        active_owners,
        tokens,
    })
}

/// Writes a plan and its audit events.
async fn execute(
    w: &mut Write,
    scope: &AdminScope,
    plan: &ProvisionPlan,
    now: OffsetDateTime,
) -> Result<()> {
    for u in &plan.users_created {
        insert_user(w.conn(), &u.user_id, u.role, now).await?;
    }
    for r in &plan.roles_changed {
        let changed =
            query("UPDATE users SET role = $2, updated_at = $3 WHERE id = $1 AND role = $4")
                .bind(r.user_id.as_str())
                .bind(r.to.as_str())
                .bind(now)
                .bind(r.from.as_str())
                .execute(w.conn())
                .await
                .map_err(unavailable)?
                .rows_affected();
        if changed != 1 {
            return Err(Error::Conflict(
                "a user changed while the table was applied".into(),
            ));
        }
    }
    for t in &plan.tokens_added {
        let token = NewToken {
            fresh: FreshToken {
                id: t.token_id.clone(),
                digest: t.digest,
                display_prefix: t.display_prefix.clone(),
            },
            label: t.label.clone(),
            expires_at: None,
        };
        insert_token(
            w.conn(),
            &t.user_id,
            &token,
            &t.kinds,
            TokenOrigin::Provisioned,
            now,
        )
        .await?;
    }
    for u in &plan.tokens_updated {
        query(
            "UPDATE tokens SET kinds = $3, label = $4
             WHERE id = $1 AND owner_id = $2 AND origin = 'provisioned'",
        )
        .bind(u.token_id.as_str())
        .bind(u.user_id.as_str())
        .bind(u.kinds.to_csv())
        .bind(u.label.as_deref())
        .execute(w.conn())
        .await
        .map_err(unavailable)?;
    }
    for r in &plan.tokens_revoked {
        query(
            "UPDATE tokens SET revoked_at = $3
             WHERE id = $1 AND owner_id = $2 AND origin = 'provisioned'",
        )
        .bind(r.token_id.as_str())
        .bind(r.user_id.as_str())
        .bind(now)
        .execute(w.conn())
        .await
        .map_err(unavailable)?;
    }
    for event in events::provisioned(now, scope.actor(), plan) {
        w.audit(event).await?;
    }
    Ok(())
}

/// `UserStore::provision` on PostgreSQL.
pub(super) async fn provision(
    store: &PgStore,
    scope: &AdminScope,
    table: &ProvisionTable,
    dry_run: bool,
) -> Result<ProvisionPlan> {
    if dry_run {
        let now = store.now();
        let mut tx = store.pool.begin().await.map_err(unavailable)?;
        query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let state = read_state(&mut tx, table, now).await?;
        let plan = provision::plan(scope, table, &state, now, &mut OsRandom)?;
        tx.rollback().await.map_err(unavailable)?;
        return Ok(plan);
    }
    let mut w = Write::begin(&store.pool, store.clock.as_ref()).await?;
    let now = w.now();
    let scope = &super::recheck::current_scope(w.conn(), scope).await?;
    let state = read_state(w.conn(), table, now).await?;
    let plan = provision::plan(scope, table, &state, now, &mut OsRandom)?;
    if plan.is_empty() {
        // Nothing to write: dropping the transaction rolls it back and frees the lock.
        return Ok(plan);
    }
    execute(&mut w, scope, &plan, now).await?;
    w.commit().await?;
    Ok(plan)
}

#[async_trait]
impl ProvisionStore for PgStore {
    async fn provision(
        &self,
        scope: &AdminScope,
        table: &ProvisionTable,
        dry_run: bool,
    ) -> Result<ProvisionPlan> {
        provision(self, scope, table, dry_run).await
    }
}
