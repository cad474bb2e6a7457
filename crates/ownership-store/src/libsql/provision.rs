//! Static user-token tables: the state a table touches is read, the plan is made by
//! `ownership_core::provision::plan` and executed, all in one `BEGIN IMMEDIATE`
//! transaction (a dry run reads in a read transaction and writes nothing).

use ::libsql::{Connection, Value};
use async_trait::async_trait;
use ownership_core::authz::AdminScope;
use ownership_core::ports::{FreshToken, ProvisionStore, TokenOrigin};
use ownership_core::provision::{self, ProvisionPlan, ProvisionState, ProvisionTable, StoredToken};
use ownership_core::token::TokenDigest;
use ownership_core::{Error, Result};
use time::OffsetDateTime;

use super::LibsqlStore;
use super::audit::append_audit;
use super::conn::{args, bytes, exec, micros, now_of, query_all, query_i64};
use super::tokens::{TOKEN_COLS, insert_token, token_from};
use super::users::{insert_user, user};
use crate::OsRandom;
use ownership_core::events;
use ownership_core::tokens::TokenRow;

/// A `tokens` row selected with [`TOKEN_COLS`] and then `digest`.
fn stored_from(row: &[Value]) -> Result<StoredToken> {
    Ok(StoredToken {
        record: token_from(row)?,
        digest: TokenDigest::from_bytes(bytes::<32>(row, 10, "token digest")?),
    })
}

/// Reads what the table touches: its users, the active Owner count, the tokens with its
/// digests and every live provisioned token.
async fn read_state(
    c: &Connection,
    table: &ProvisionTable,
    now: OffsetDateTime,
) -> Result<ProvisionState> {
    let mut users = Vec::new();
    for (_, id, _) in table.users() {
        if let Some(u) = user(c, id).await? {
            users.push(u);
        }
    }
    let owners = query_i64(
        c,
        "SELECT COUNT(*) FROM users WHERE role = 'owner' AND status = 'active'",
        Vec::new(),
    )
    .await?;
    let by_digest = format!("SELECT {TOKEN_COLS}, digest FROM tokens WHERE digest = ?1");
    let mut tokens = Vec::new();
    for e in table.entries() {
        for row in query_all(c, &by_digest, args![e.digest.as_bytes().as_slice()]).await? {
            tokens.push(stored_from(&row)?);
        }
    }
    let live = format!(
        "SELECT {TOKEN_COLS}, digest FROM tokens WHERE origin = 'provisioned' \
         AND (revoked_at IS NULL OR revoked_at > ?1) AND (expires_at IS NULL OR expires_at > ?1)"
    );
    for row in query_all(c, &live, args![micros(now)?]).await? {
        tokens.push(stored_from(&row)?);
    }
    Ok(ProvisionState {
        users,
        active_owners: u64::try_from(owners).map_err(|_| super::conn::integrity("owner count"))?,
        tokens,
    })
}

/// Writes a plan and its audit events.
async fn execute(
    c: &Connection,
    scope: &AdminScope,
    plan: &ProvisionPlan,
    now: OffsetDateTime,
) -> Result<()> {
    let at = micros(now)?;
    for u in &plan.users_created {
        insert_user(c, &u.user_id, u.role, now).await?;
    }
    for r in &plan.roles_changed {
        let changed = exec(
            c,
            "UPDATE users SET role = ?1, updated_at = ?2 WHERE id = ?3 AND role = ?4",
            args![r.to.as_str(), at, r.user_id.as_str(), r.from.as_str()],
        )
        .await?;
        if changed != 1 {
            return Err(Error::Conflict(
                "a user changed while the table was applied".into(),
            ));
        }
    }
    for t in &plan.tokens_added {
        insert_token(
            c,
            TokenRow {
                owner: &t.user_id,
                fresh: &FreshToken {
                    id: t.token_id.clone(),
                    digest: t.digest,
                    display_prefix: t.display_prefix.clone(),
                },
                kinds: &t.kinds,
                label: t.label.as_deref(),
                origin: TokenOrigin::Provisioned,
                created_at: now,
                expires_at: None,
            },
        )
        .await?;
    }
    for u in &plan.tokens_updated {
        exec(
            c,
            "UPDATE tokens SET kinds = ?1, label = ?2 WHERE id = ?3 AND owner_id = ?4 AND origin = 'provisioned'",
            args![u.kinds.to_csv(), u.label.clone(), u.token_id.as_str(), u.user_id.as_str()],
        )
        .await?;
    }
    for r in &plan.tokens_revoked {
        exec(
            c,
            "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND owner_id = ?3 AND origin = 'provisioned'",
            args![at, r.token_id.as_str(), r.user_id.as_str()],
        )
        .await?;
    }
    for event in events::provisioned(now, scope.actor(), plan) {
        append_audit(c, event).await?;
    }
    Ok(())
}

/// `UserStore::provision` on libSQL.
pub(super) async fn provision(
    store: &LibsqlStore,
    scope: &AdminScope,
    table: &ProvisionTable,
    dry_run: bool,
) -> Result<ProvisionPlan> {
    let scope = scope.clone();
    let table = table.clone();
    let clock = store.clock.clone();
    let job = async move |c: &Connection| {
        let now = now_of(clock.as_ref());
        let scope = super::recheck::current_scope(c, &scope).await?;
        let state = read_state(c, &table, now).await?;
        let plan = provision::plan(&scope, &table, &state, now, &mut OsRandom)?;
        if !dry_run && !plan.is_empty() {
            execute(c, &scope, &plan, now).await?;
        }
        Ok(plan)
    };
    if dry_run {
        store.worker.read(job).await
    } else {
        store.worker.write(job).await
    }
}

#[async_trait]
impl ProvisionStore for LibsqlStore {
    async fn provision(
        &self,
        scope: &AdminScope,
        table: &ProvisionTable,
        dry_run: bool,
    ) -> Result<ProvisionPlan> {
        provision(self, scope, table, dry_run).await
    }
}
