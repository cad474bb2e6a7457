//! OpenID Connect links: the rows of [`OidcRows`].

use async_trait::async_trait;
use ownership_core::oidc::{OidcLink, OidcRows, OidcSubject};
use ownership_core::{OwnerId, Result};

use super::driver::*;
use super::tx::SqlTx;

fn link_from(row: &[Val]) -> Result<OidcLink> {
    Ok(OidcLink {
        subject: OidcSubject::parse(&text(row, 0)?, &text(row, 1)?)
            .map_err(|_| integrity("oidc subject"))?,
        owner: parsed(row, 2, "oidc link owner", OwnerId::parse)?,
        created_at: time_at(row, 3)?,
    })
}

#[async_trait]
impl<D: Driver> OidcRows for SqlTx<D> {
    async fn insert_oidc_link(&mut self, link: &OidcLink) -> Result<()> {
        let s = &link.subject;
        self.d
            .execute(
                "INSERT INTO oidc_links (issuer, subject, owner_id, created_at) VALUES ($1, $2, $3, $4)",
                args![s.issuer(), s.subject(), link.owner.as_str(), link.created_at],
            )
            .await
            .map_err(conflict("this identity-provider account is linked already"))
            .map(drop)
    }

    async fn oidc_link(&mut self, subject: &OidcSubject) -> Result<Option<OidcLink>> {
        query_opt(
            &mut self.d,
            "SELECT issuer, subject, owner_id, created_at FROM oidc_links WHERE issuer = $1 AND subject = $2",
            args![subject.issuer(), subject.subject()],
        )
        .await?
        .map(|row| link_from(&row))
        .transpose()
    }

    async fn oidc_links_of(&mut self, owner: &OwnerId) -> Result<Vec<OidcLink>> {
        query_all(
            &mut self.d,
            "SELECT issuer, subject, owner_id, created_at FROM oidc_links WHERE owner_id = $1 ORDER BY created_at, issuer COLLATE \"C\", subject COLLATE \"C\"",
            args![owner.as_str()],
        )
        .await?
        .iter()
        .map(|row| link_from(row))
        .collect()
    }

    async fn delete_oidc_link(&mut self, subject: &OidcSubject) -> Result<bool> {
        exec(
            &mut self.d,
            "DELETE FROM oidc_links WHERE issuer = $1 AND subject = $2",
            args![subject.issuer(), subject.subject()],
        )
        .await
        .map(|n| n > 0)
    }
}
