//! `ownership tokens issue|list|rotate|revoke --user ID`.
//!
//! `issue` mints under [`MintPermit::by_operator`]: the operator may mint any kinds for any
//! user (audited as `operator:<name>`). `list`, `rotate` and `revoke` work on the named
//! user's tokens in that user's [`OwnerScope`](ownership_core::authz::OwnerScope) (see
//! [`Operator::for_owner`], audited as the operator).

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use ownership_core::authz::{MintPermit, Rotator};
use ownership_core::ids::{Label, TokenId};
use ownership_core::ports::TokenRecord;
use ownership_core::token::TokenFamily;
use ownership_core::{Error, TokenKind, TokenKinds, service};
use ownership_http::wire::{NewTokenView, TokenView};
use ownership_store::OsRandom;
use serde::Serialize;
use time::OffsetDateTime;

use super::output::{Output, when, when_opt};
use super::{CliError, Operator, domain, user_id};

/// Token management for a named user.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Mint a token for a user and print it: shown once.
    Issue {
        /// Whose token it is.
        #[arg(long, value_name = "ID")]
        user: String,
        /// Comma-separated kinds: `manage`, `api` (a person's), or `channel:<name>`,
        /// `verify` (a service's); not both sorts in one token.
        #[arg(long, value_name = "KINDS")]
        kinds: String,
        /// A label to tell it apart (at most 100 characters).
        #[arg(long)]
        label: Option<String>,
        /// Lifetime in seconds (default: no expiry).
        #[arg(long, value_name = "SECONDS")]
        expires_in: Option<u64>,
    },
    /// List a user's tokens, newest first (never their values).
    List {
        /// Whose tokens.
        #[arg(long, value_name = "ID")]
        user: String,
    },
    /// Replace a live token by a new one with the same kinds, label and expiry, and print
    /// the new value: shown once. The old one stops working now, or after `--grace`.
    Rotate {
        /// Whose token it is.
        #[arg(long, value_name = "ID")]
        user: String,
        /// The token's id (`tok_…`, from `tokens list`).
        token_id: String,
        /// Keep the old token working this many seconds.
        #[arg(long, value_name = "SECONDS")]
        grace: Option<u64>,
    },
    /// Revoke a token now.
    Revoke {
        /// Whose token it is.
        #[arg(long, value_name = "ID")]
        user: String,
        /// The token's id (`tok_…`, from `tokens list`).
        token_id: String,
        /// Revoke only if the token holds this kind (a guard against revoking the wrong one).
        #[arg(long)]
        kind: Option<String>,
    },
}

/// Parses a token id without ever echoing the input (it may be a token value pasted by
/// mistake).
fn token_id(raw: &str) -> Result<TokenId, CliError> {
    if raw.starts_with("own_") {
        return Err(CliError::new(
            "TOKEN_ID must be a token's id (`tok_…`), not its value; `ownership tokens list --user ID` shows the ids",
        ));
    }
    TokenId::parse(raw).map_err(|_| {
        CliError::new("invalid TOKEN_ID: expected `tok_` and 20 hex digits (see `ownership tokens list --user ID`)")
    })
}

fn kinds_and_family(raw: &str) -> Result<(TokenKinds, TokenFamily), CliError> {
    let kinds = TokenKinds::parse_csv(raw).map_err(domain)?;
    let service = kinds.iter().filter(|k| k.is_service()).count();
    let family = match service {
        0 => TokenFamily::User,
        n if n == kinds.iter().count() => TokenFamily::Service,
        _ => {
            return Err(CliError::new(
                "a token holds a person's kinds (`manage`, `api`) or a service's (`channel:<name>`, `verify`), not both",
            ));
        }
    };
    Ok((kinds, family))
}

fn expiry(now: OffsetDateTime, seconds: Option<u64>) -> Result<Option<OffsetDateTime>, CliError> {
    let Some(seconds) = seconds else {
        return Ok(None);
    };
    if seconds == 0 {
        return Err(CliError::new("--expires-in must be positive"));
    }
    i64::try_from(seconds)
        .ok()
        .and_then(|s| now.checked_add(time::Duration::seconds(s)))
        .filter(|t| t.year() <= 9999)
        .map(Some)
        .ok_or_else(|| CliError::new("--expires-in is too large"))
}

fn state(t: &TokenRecord, now: OffsetDateTime) -> String {
    match (t.revoked_at, t.expires_at) {
        (Some(at), _) if at <= now => "revoked".to_owned(),
        (Some(at), _) => format!("grace until {}", when(at)),
        (None, Some(at)) if at <= now => "expired".to_owned(),
        _ => "live".to_owned(),
    }
}

#[derive(Serialize)]
struct Rotated {
    #[serde(flatten)]
    new: NewTokenView,
    replaces: String,
}

#[derive(Serialize)]
struct TokenList {
    user_id: String,
    tokens: Vec<TokenView>,
}

/// Runs a `tokens` command.
pub async fn run(cmd: TokensCommand, op: &Operator, out: Output) -> Result<ExitCode, CliError> {
    match cmd {
        TokensCommand::Issue {
            user,
            kinds,
            label,
            expires_in,
        } => {
            let user = op.user(&user_id(&user)?).await?;
            let (kinds, family) = kinds_and_family(&kinds)?;
            let expires_at = expiry(op.clock.now(), expires_in)?;
            let permit =
                MintPermit::by_operator(&op.scope, user.id.clone(), kinds).map_err(domain)?;
            let (record, secret) = service::issue_with(
                &*op.store,
                &permit,
                family,
                Label::parse_optional(label.as_deref()).map_err(domain)?,
                expires_at,
                &mut OsRandom,
            )
            .await
            .map_err(domain)?;
            let view = NewTokenView {
                meta: TokenView::from(&record),
                token: secret.expose().to_owned(),
            };
            out.show(&view, |o| {
                o.note(&format!(
                    "issued token {} ({}) for user `{}`{}; its value, shown once:",
                    record.id,
                    record.kinds.to_csv(),
                    user.id,
                    record
                        .expires_at
                        .map(|at| format!(", expires {}", when(at)))
                        .unwrap_or_default()
                ))?;
                o.line(secret.expose())?;
                o.note("It is stored only as a digest and cannot be shown again.")
            })?;
        }
        TokensCommand::List { user } => {
            let user = op.user(&user_id(&user)?).await?;
            let tokens = op
                .store
                .list_tokens(&op.for_owner(&user)?)
                .await
                .map_err(domain)?;
            let list = TokenList {
                user_id: user.id.to_string(),
                tokens: tokens.iter().map(TokenView::from).collect(),
            };
            let now = op.clock.now();
            out.show(&list, |o| {
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.to_string(),
                            t.kinds.to_csv(),
                            t.label.as_deref().unwrap_or("-").to_owned(),
                            format!("{}…", t.display_prefix.trim_end_matches('…')),
                            t.origin.as_str().to_owned(),
                            when(t.created_at),
                            when_opt(t.expires_at),
                            when_opt(t.last_used_at),
                            state(t, now),
                        ]
                    })
                    .collect();
                o.table(
                    &[
                        "ID",
                        "KINDS",
                        "LABEL",
                        "PREFIX",
                        "ORIGIN",
                        "CREATED",
                        "EXPIRES",
                        "LAST USED",
                        "STATE",
                    ],
                    &rows,
                    &format!("user `{}` has no tokens", user.id),
                )
            })?;
        }
        TokensCommand::Rotate {
            user,
            token_id: raw,
            grace,
        } => {
            let id = token_id(&raw)?;
            let user = op.user(&user_id(&user)?).await?;
            let (record, secret) = service::rotate_token(
                &*op.store,
                &Rotator::Operator(op.scope.clone(), user.id.clone()),
                &id,
                grace.map(Duration::from_secs),
                &mut OsRandom,
            )
            .await
            .map_err(|e| match e {
                Error::NotFound => CliError::new(format!(
                    "user `{}` has no live token `{id}` (revoked, expired, already rotated, or not theirs)",
                    user.id
                )),
                e => domain(e),
            })?;
            let view = Rotated {
                new: NewTokenView {
                    meta: TokenView::from(&record),
                    token: secret.expose().to_owned(),
                },
                replaces: id.to_string(),
            };
            out.show(&view, |o| {
                let old = match grace.filter(|g| *g > 0) {
                    Some(g) => format!("keeps working for {g} s"),
                    None => "is revoked (a running server refuses it within 1 s)".to_owned(),
                };
                o.note(&format!(
                    "rotated {id} into {} for user `{}`; the old token {old}; the new value, shown once:",
                    record.id, user.id
                ))?;
                o.line(secret.expose())?;
                o.note("It is stored only as a digest and cannot be shown again.")
            })?;
        }
        TokensCommand::Revoke {
            user,
            token_id: raw,
            kind,
        } => {
            let id = token_id(&raw)?;
            let kind = kind
                .as_deref()
                .map(TokenKind::parse)
                .transpose()
                .map_err(domain)?;
            let user = op.user(&user_id(&user)?).await?;
            let record = op
                .store
                .revoke_token(&op.for_owner(&user)?, &id, kind.as_ref())
                .await
                .map_err(|e| match e {
                    Error::NotFound => {
                        CliError::new(format!("user `{}` has no token `{id}`", user.id))
                    }
                    Error::Conflict(m) => {
                        CliError::new(format!("{m}: token `{id}` was not revoked"))
                    }
                    e => domain(e),
                })?;
            out.show(&TokenView::from(&record), |o| {
                o.line(&format!(
                    "revoked token {} ({}) of user `{}`; a running server refuses it within 1 s",
                    record.id,
                    record.kinds.to_csv(),
                    user.id
                ))
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_values_are_never_echoed() {
        let e = token_id("own_u_secretsecretsecret").unwrap_err();
        assert!(!e.message().contains("secret"), "{e}");
        let e = token_id("nonsense-value").unwrap_err();
        assert!(!e.message().contains("nonsense"), "{e}");
        assert!(token_id("tok_0123456789abcdef0123").is_ok());
    }

    #[test]
    fn kinds_pick_a_family_and_never_mix() {
        assert_eq!(kinds_and_family("manage,api").unwrap().1, TokenFamily::User);
        assert_eq!(
            kinds_and_family("channel:telegram,verify").unwrap().1,
            TokenFamily::Service
        );
        assert!(kinds_and_family("manage,channel:telegram").is_err());
        assert!(kinds_and_family("").is_err());
        assert!(kinds_and_family("root").is_err());
    }

    #[test]
    fn expiry_is_positive_and_bounded() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(expiry(now, None).unwrap(), None);
        assert!(expiry(now, Some(0)).is_err());
        assert!(expiry(now, Some(u64::MAX)).is_err());
        assert_eq!(
            expiry(now, Some(60)).unwrap(),
            Some(now + time::Duration::seconds(60))
        );
    }
}
