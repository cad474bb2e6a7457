//! OpenID Connect links: the rows of [`OidcRows`].

use ::libsql::Value;
use async_trait::async_trait;
use ownership_core::oidc::{OidcLink, OidcRows, OidcSubject};
use ownership_core::{Error, OwnerId, Result};

use super::conn::{args, exec, integrity, micros, parsed, query_all, query_opt, text, time_at};
use super::db::LibsqlTx;

fn link_from(row: &[Value]) -> Result<OidcLink> {
    Ok(OidcLink {
        subject: OidcSubject::parse(&text(row, 0)?, &text(row, 1)?)
            .map_err(|_| integrity("oidc subject"))?,
        owner: parsed(row, 2, "oidc link owner", OwnerId::parse)?,
        created_at: time_at(row, 3)?,
    })
}

#[async_trait]
impl OidcRows for LibsqlTx {
    async fn insert_oidc_link(&mut self, link: &OidcLink) -> Result<()> {
        let s = &link.subject;
        if query_opt(
            &self.conn,
            "SELECT 1 FROM oidc_links WHERE issuer = ?1 AND subject = ?2",
            args![s.issuer(), s.subject()],
        )
        .await?
        .is_some()
        {
            return Err(Error::Conflict(
                "this identity-provider account is linked already".into(),
            ));
        }
        exec(
            &self.conn,
            "INSERT INTO oidc_links (issuer, subject, owner_id, created_at) VALUES (?1, ?2, ?3, ?4)",
            args![s.issuer(), s.subject(), link.owner.as_str(), micros(link.created_at)?],
        )
        .await
        .map(drop)
    }

    async fn oidc_link(&mut self, subject: &OidcSubject) -> Result<Option<OidcLink>> {
        query_opt(
            &self.conn,
            "SELECT issuer, subject, owner_id, created_at FROM oidc_links WHERE issuer = ?1 AND subject = ?2",
            args![subject.issuer(), subject.subject()],
        )
        .await?
        .map(|row| link_from(&row))
        .transpose()
    }

    async fn oidc_links_of(&mut self, owner: &OwnerId) -> Result<Vec<OidcLink>> {
        query_all(
            &self.conn,
            "SELECT issuer, subject, owner_id, created_at FROM oidc_links WHERE owner_id = ?1 ORDER BY created_at, issuer, subject",
            args![owner.as_str()],
        )
        .await?
        .iter()
        .map(|row| link_from(row))
        .collect()
    }

    async fn delete_oidc_link(&mut self, subject: &OidcSubject) -> Result<bool> {
        exec(
            &self.conn,
            "DELETE FROM oidc_links WHERE issuer = ?1 AND subject = ?2",
            args![subject.issuer(), subject.subject()],
        )
        .await
        .map(|n| n > 0)
    }
}
