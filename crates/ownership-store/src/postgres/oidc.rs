//! OpenID Connect links: the rows of [`OidcRows`].

use async_trait::async_trait;
use ownership_core::oidc::{OidcLink, OidcRows, OidcSubject};
use ownership_core::{OwnerId, Result};
use sqlx::postgres::PgRow;

use super::db::PgTx;
use super::support::query;
use super::support::{col, integrity, owner_col, unavailable, unique_or_unavailable};

fn link_from(row: &PgRow) -> Result<OidcLink> {
    let issuer: String = col(row, "issuer")?;
    let subject: String = col(row, "subject")?;
    Ok(OidcLink {
        subject: OidcSubject::parse(&issuer, &subject).map_err(|_| integrity("oidc subject"))?,
        owner: owner_col(row, "owner_id")?,
        created_at: col(row, "created_at")?,
    })
}

#[async_trait]
impl OidcRows for PgTx {
    async fn insert_oidc_link(&mut self, link: &OidcLink) -> Result<()> {
        query(
            "INSERT INTO oidc_links (issuer, subject, owner_id, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(link.subject.issuer())
        .bind(link.subject.subject())
        .bind(link.owner.as_str())
        .bind(link.created_at)
        .execute(self.conn())
        .await
        .map_err(|e| unique_or_unavailable(e, "this identity-provider account is linked already"))
        .map(drop)
    }

    async fn oidc_link(&mut self, subject: &OidcSubject) -> Result<Option<OidcLink>> {
        query(
            "SELECT issuer, subject, owner_id, created_at FROM oidc_links
             WHERE issuer = $1 AND subject = $2",
        )
        .bind(subject.issuer())
        .bind(subject.subject())
        .fetch_optional(self.conn())
        .await
        .map_err(unavailable)?
        .map(|row| link_from(&row))
        .transpose()
    }

    async fn oidc_links_of(&mut self, owner: &OwnerId) -> Result<Vec<OidcLink>> {
        query(
            "SELECT issuer, subject, owner_id, created_at FROM oidc_links
             WHERE owner_id = $1 ORDER BY created_at, issuer COLLATE \"C\", subject COLLATE \"C\"",
        )
        .bind(owner.as_str())
        .fetch_all(self.conn())
        .await
        .map_err(unavailable)?
        .iter()
        .map(link_from)
        .collect()
    }

    async fn delete_oidc_link(&mut self, subject: &OidcSubject) -> Result<bool> {
        query("DELETE FROM oidc_links WHERE issuer = $1 AND subject = $2")
            .bind(subject.issuer())
            .bind(subject.subject())
            .execute(self.conn())
            .await
            .map_err(unavailable)
            .map(|r| r.rows_affected() > 0)
    }
}
