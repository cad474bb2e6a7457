//! `ownership pairing list CHANNEL`, `ownership pairing approve CHANNEL CODE --user ID` and
//! `ownership pairing unlink CHANNEL EXTERNAL_ID --user ID`.
//!
//! Codes are stored as keyed hashes, so `list` shows who asked, never a code; `approve`
//! takes the code the person reads out. The key is resolved exactly as the server resolves
//! it ([`crate::server::pairing_key`]): this command must see the same
//! `OWNERSHIP_PAIRING_KEY` / `OWNERSHIP_MASTER_KEY` (or their `_FILE` forms) as the server.

use std::process::ExitCode;

use clap::Subcommand;
use ownership_core::ids::{ChannelKey, ExternalId};
use ownership_core::ports::PendingPairing;
use ownership_core::{ChannelName, Error, UserStatus, service};
use ownership_http::wire::{IdentityView, PendingView};
use serde::Serialize;

use super::output::{Output, when};
use super::{CliError, Operator, domain, user_id};
use crate::server;

/// Channel pairing.
#[derive(Debug, Subcommand)]
pub enum PairingCommand {
    /// List a channel's pending pairing requests, oldest first (never their codes).
    List {
        /// The channel (`telegram`, …; case-insensitive).
        channel: String,
    },
    /// Approve the code a person reads out, binding their chat account to a user.
    Approve {
        /// The channel (`telegram`, …; case-insensitive).
        channel: String,
        /// The code the chat bot showed (`ABCD-EFGH`; case, spaces and dashes do not matter).
        code: String,
        /// The user to bind the chat account to.
        #[arg(long, value_name = "ID")]
        user: String,
    },
    /// Unlink a chat account from the user it is bound to.
    Unlink {
        /// The channel (`telegram`, …; case-insensitive).
        channel: String,
        /// The sender's id on that channel.
        external_id: String,
        /// The user the chat account is bound to.
        #[arg(long, value_name = "ID")]
        user: String,
    },
}

#[derive(Serialize)]
struct Unlinked {
    channel: String,
    external_id: String,
    user_id: String,
    unlinked: bool,
}

fn channel(raw: &str) -> Result<ChannelName, CliError> {
    ChannelName::parse(raw).map_err(|e| match e {
        Error::Invalid { reason, .. } => {
            CliError::new(format!("invalid channel `{raw}`: {reason}"))
        }
        e => domain(e),
    })
}

#[derive(Serialize)]
struct PendingList {
    channel: String,
    requests: Vec<PendingView>,
}

fn rows(list: &[PendingPairing]) -> Vec<Vec<String>> {
    list.iter()
        .map(|p| {
            vec![
                p.id.to_string(),
                p.key.external_id.to_string(),
                p.meta.clone().unwrap_or_else(|| "-".to_owned()),
                when(p.created_at),
                when(p.expires_at),
            ]
        })
        .collect()
}

/// Runs a `pairing` command.
pub async fn run(cmd: PairingCommand, op: &Operator, out: Output) -> Result<ExitCode, CliError> {
    match cmd {
        PairingCommand::List { channel: raw } => {
            let ch = channel(&raw)?;
            let list = op
                .store
                .list_pending(&op.scope, &ch)
                .await
                .map_err(domain)?;
            let view = PendingList {
                channel: ch.to_string(),
                requests: list.iter().map(PendingView::from).collect(),
            };
            out.show(&view, |o| {
                o.table(
                    &["ID", "EXTERNAL ID", "META", "ASKED", "EXPIRES"],
                    &rows(&list),
                    &format!("no pending pairing requests on `{ch}`"),
                )
            })?;
        }
        PairingCommand::Approve {
            channel: raw,
            code,
            user,
        } => {
            let ch = channel(&raw)?;
            let user = op.user(&user_id(&user)?).await?;
            if user.status == UserStatus::Suspended {
                return Err(CliError::new(format!(
                    "user `{}` is suspended: resume them first",
                    user.id
                )));
            }
            let secrets = op.secrets.clone()?;
            let key = server::pairing_key(&*op.store, &secrets).await?;
            let binding =
                service::approve_pairing(&*op.store, &op.scope, &key, &ch, &code, &user.id)
                    .await
                    .map_err(|e| match e {
                        Error::NotFound => CliError::new(format!(
                            "that code is not valid on `{ch}` or has expired (if the server runs with OWNERSHIP_PAIRING_KEY or OWNERSHIP_MASTER_KEY, give this command the same)"
                        )),
                        Error::Invalid { reason, .. } => {
                            CliError::new(format!("invalid code: {reason}"))
                        }
                        e => domain(e),
                    })?;
            out.show(&IdentityView::from(&binding), |o| {
                o.line(&format!(
                    "bound {}/{} to user `{}`",
                    binding.key.channel, binding.key.external_id, binding.owner_id
                ))
            })?;
        }
        PairingCommand::Unlink {
            channel: raw,
            external_id,
            user,
        } => {
            let ch = channel(&raw)?;
            let external = ExternalId::parse(&external_id).map_err(|e| match e {
                Error::Invalid { reason, .. } => {
                    CliError::new(format!("invalid external id: {reason}"))
                }
                e => domain(e),
            })?;
            let user = op.user(&user_id(&user)?).await?;
            let key = ChannelKey::new(ch, external);
            op.store
                .unlink_identity(&op.for_owner(&user)?, &key)
                .await
                .map_err(|e| match e {
                    Error::NotFound => CliError::new(format!(
                        "user `{}` has no linked chat account {}/{}",
                        user.id, key.channel, key.external_id
                    )),
                    e => domain(e),
                })?;
            let view = Unlinked {
                channel: key.channel.to_string(),
                external_id: key.external_id.to_string(),
                user_id: user.id.to_string(),
                unlinked: true,
            };
            out.show(&view, |o| {
                o.line(&format!(
                    "unlinked {}/{} from user `{}`; a running server refuses it within 1 s",
                    key.channel, key.external_id, user.id
                ))
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
