//! `ownership users add|list|show|role|suspend|resume|remove|link-oidc|unlink-oidc`.
//!
//! The rules of docs/security.md#authorization hold here as everywhere (the store checks them in the transaction
//! that applies the change): the last active Owner can be neither removed, suspended nor
//! demoted. The operator acts with an Owner's powers and is audited as `operator:<name>`.

use std::process::ExitCode;

use clap::Subcommand;
use ownership_core::oidc::{OidcLink, OidcSubject};
use ownership_core::ports::{PageRequest, User};
use ownership_core::{Error, OwnerId, UserStatus, service};
use ownership_http::wire::{IdentityView, UserView, UserWithToken};
use ownership_store::OsRandom;
use serde::Serialize;

use super::output::{Output, when};
use super::{CliError, Operator, RoleArg, domain, user_id};

/// User management.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user and print their first token (kinds `manage`,`api`): shown once.
    Add {
        /// The new user's id (1–128 bytes, no whitespace).
        id: String,
        /// Their role.
        #[arg(long, value_enum, ignore_case = true, default_value = "member")]
        role: RoleArg,
    },
    /// List every user.
    List,
    /// Show a user, their live tokens and linked chat accounts.
    Show {
        /// The user's id.
        id: String,
    },
    /// Change a user's role.
    Role {
        /// The user's id.
        id: String,
        /// The new role.
        #[arg(value_enum, ignore_case = true)]
        role: RoleArg,
    },
    /// Suspend a user: every credential of theirs is refused until they are resumed.
    Suspend {
        /// The user's id.
        id: String,
    },
    /// Resume a suspended user.
    Resume {
        /// The user's id.
        id: String,
    },
    /// Remove a user: revokes their tokens, unlinks their chat accounts, destroys their
    /// secrets and webhook, in one transaction. Cannot be undone.
    Remove {
        /// The user's id.
        id: String,
    },
    /// Link an identity-provider account (OpenID Connect issuer and subject) to a user:
    /// it then signs in to the console as that user.
    LinkOidc {
        /// The user's id.
        id: String,
        /// The provider's issuer URL, exactly as its ID tokens say (`iss`).
        #[arg(long)]
        issuer: String,
        /// The account's subject at that provider (`sub`).
        #[arg(long)]
        subject: String,
    },
    /// Unlink an identity-provider account from a user; their console sessions started
    /// with a provider end.
    UnlinkOidc {
        /// The user's id.
        id: String,
        /// The provider's issuer URL.
        #[arg(long)]
        issuer: String,
        /// The account's subject at that provider.
        #[arg(long)]
        subject: String,
    },
    /// Provision users and tokens from a static table (a JSON array of `{"token",
    /// "user_id", "role"?, "kinds"?, "label"?}`): validated whole, then applied in one
    /// transaction; idempotent. Prints the plan (created, updated, revoked).
    Import {
        /// The table's file.
        file: std::path::PathBuf,
        /// Print the plan without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
}

fn not_found(id: &OwnerId) -> impl FnOnce(Error) -> CliError + '_ {
    move |e| match e {
        Error::NotFound => CliError::new(format!("user `{id}` not found")),
        e => domain(e),
    }
}

fn user_rows(users: &[User]) -> Vec<Vec<String>> {
    users
        .iter()
        .map(|u| {
            vec![
                u.id.to_string(),
                u.role.to_string(),
                u.status.to_string(),
                when(u.created_at),
            ]
        })
        .collect()
}

const USER_HEADERS: [&str; 4] = ["USER", "ROLE", "STATUS", "CREATED"];

#[derive(Serialize)]
struct UserList {
    users: Vec<UserView>,
}

#[derive(Serialize)]
struct UserDetail {
    #[serde(flatten)]
    user: UserView,
    live_tokens: usize,
    tokens: usize,
    identities: Vec<IdentityView>,
}

#[derive(Serialize)]
struct OidcLinkView {
    user_id: String,
    issuer: String,
    subject: String,
    linked: bool,
}

impl OidcLinkView {
    fn of(link: &OidcLink, linked: bool) -> Self {
        Self {
            user_id: link.owner.to_string(),
            issuer: link.subject.issuer().to_owned(),
            subject: link.subject.subject().to_owned(),
            linked,
        }
    }
}

#[derive(Serialize)]
struct Removed {
    user_id: String,
    removed: bool,
}

/// Runs a `users` command.
pub async fn run(cmd: UsersCommand, op: &Operator, out: Output) -> Result<ExitCode, CliError> {
    match cmd {
        UsersCommand::Add { id, role } => {
            let id = user_id(&id)?;
            let (user, secret) =
                service::create_user(&*op.store, &op.scope, &id, role.into(), &mut OsRandom)
                    .await
                    .map_err(|e| match e {
                        // The port's one conflict on creation: the id is taken.
                        Error::Conflict(_) => CliError::new(format!("user `{id}` already exists")),
                        e => domain(e),
                    })?;
            let view = UserWithToken {
                user_id: user.id.to_string(),
                role: user.role.to_string(),
                status: user.status.to_string(),
                token: secret.expose().to_owned(),
            };
            out.show(&view, |o| {
                o.note(&format!(
                    "created user `{}` ({}); their token (kinds manage,api), shown once:",
                    user.id, user.role
                ))?;
                o.line(secret.expose())?;
                o.note("It is stored only as a digest and cannot be shown again.")
            })?;
        }
        UsersCommand::List => {
            let mut users = Vec::new();
            let mut page = PageRequest {
                after: None,
                limit: 500,
            };
            loop {
                let p = op
                    .store
                    .list_users(&op.scope, &page)
                    .await
                    .map_err(domain)?;
                users.extend(p.items);
                match p.next {
                    Some(next) => page.after = Some(next),
                    None => break,
                }
            }
            let list = UserList {
                users: users.iter().map(UserView::from).collect(),
            };
            out.show(&list, |o| {
                o.table(&USER_HEADERS, &user_rows(&users), "no users")
            })?;
        }
        UsersCommand::Show { id } => {
            let id = user_id(&id)?;
            let user = op.user(&id).await?;
            let scope = op.for_owner(&user)?;
            let tokens = op.store.list_tokens(&scope).await.map_err(domain)?;
            let now = op.clock.now();
            let live = tokens.iter().filter(|t| t.is_live(now)).count();
            let identities = op.store.list_identities(&scope).await.map_err(domain)?;
            let detail = UserDetail {
                user: UserView::from(&user),
                live_tokens: live,
                tokens: tokens.len(),
                identities: identities.iter().map(IdentityView::from).collect(),
            };
            out.show(&detail, |o| {
                let linked = identities
                    .iter()
                    .map(|b| format!("{}/{}", b.key.channel, b.key.external_id))
                    .collect::<Vec<_>>();
                o.fields(&[
                    ("user", user.id.to_string()),
                    ("role", user.role.to_string()),
                    ("status", user.status.to_string()),
                    ("created", when(user.created_at)),
                    ("tokens", format!("{live} live, {} in all", tokens.len())),
                    (
                        "identities",
                        if linked.is_empty() {
                            "-".to_owned()
                        } else {
                            linked.join(", ")
                        },
                    ),
                ])
            })?;
        }
        UsersCommand::Role { id, role } => {
            let id = user_id(&id)?;
            let user = op
                .store
                .set_role(&op.scope, &id, role.into())
                .await
                .map_err(not_found(&id))?;
            out.show(&UserView::from(&user), |o| {
                o.line(&format!("user `{}` is now {}", user.id, user.role))
            })?;
        }
        UsersCommand::Suspend { id } => status(op, out, &id, UserStatus::Suspended).await?,
        UsersCommand::Resume { id } => status(op, out, &id, UserStatus::Active).await?,
        UsersCommand::Remove { id } => {
            let id = user_id(&id)?;
            op.store
                .delete_user(&op.scope, &id)
                .await
                .map_err(not_found(&id))?;
            let removed = Removed {
                user_id: id.to_string(),
                removed: true,
            };
            out.show(&removed, |o| {
                o.line(&format!(
                    "removed user `{id}`: tokens revoked, chat accounts unlinked, secrets destroyed; a running server refuses their credentials within 1 s"
                ))
            })?;
        }
        UsersCommand::LinkOidc {
            id,
            issuer,
            subject,
        } => {
            let id = user_id(&id)?;
            let subject = OidcSubject::parse(&issuer, &subject).map_err(domain)?;
            let link = op
                .store
                .link_oidc(&op.scope, &id, &subject)
                .await
                .map_err(not_found(&id))?;
            let view = OidcLinkView::of(&link, true);
            out.show(&view, |o| {
                o.line(&format!(
                    "linked `{}` at {} to user `{}`: it signs in to the console as them",
                    link.subject.subject(),
                    link.subject.issuer(),
                    link.owner
                ))
            })?;
        }
        UsersCommand::UnlinkOidc {
            id,
            issuer,
            subject,
        } => {
            let id = user_id(&id)?;
            let subject = OidcSubject::parse(&issuer, &subject).map_err(domain)?;
            op.store
                .unlink_oidc(&op.scope, &id, &subject)
                .await
                .map_err(|e| match e {
                    Error::NotFound => CliError::new(format!(
                        "no such identity-provider account is linked to user `{id}`"
                    )),
                    e => domain(e),
                })?;
            let view = OidcLinkView {
                user_id: id.to_string(),
                issuer: subject.issuer().to_owned(),
                subject: subject.subject().to_owned(),
                linked: false,
            };
            out.show(&view, |o| {
                o.line(&format!(
                    "unlinked `{}` at {} from user `{id}`; their provider sessions ended",
                    subject.subject(),
                    subject.issuer()
                ))
            })?;
        }
        UsersCommand::Import { file, dry_run } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| CliError::new(format!("cannot read `{}`: {e}", file.display())))?;
            let plan = service::provision(&*op.store, &op.scope, &text, dry_run)
                .await
                .map_err(domain)?;
            out.show(&plan, |o| {
                let mut rows: Vec<Vec<String>> = Vec::new();
                for u in &plan.users_created {
                    rows.push(vec![
                        "create user".into(),
                        u.user_id.to_string(),
                        u.role.to_string(),
                    ]);
                }
                for r in &plan.roles_changed {
                    rows.push(vec![
                        "change role".into(),
                        r.user_id.to_string(),
                        format!("{} -> {}", r.from, r.to),
                    ]);
                }
                for t in &plan.tokens_added {
                    rows.push(vec![
                        "add token".into(),
                        t.user_id.to_string(),
                        format!("{} ({})", t.token_id, t.kinds.to_csv()),
                    ]);
                }
                for t in &plan.tokens_updated {
                    rows.push(vec![
                        "update token".into(),
                        t.user_id.to_string(),
                        format!("{} ({})", t.token_id, t.kinds.to_csv()),
                    ]);
                }
                for t in &plan.tokens_revoked {
                    rows.push(vec![
                        "revoke token".into(),
                        t.user_id.to_string(),
                        t.token_id.to_string(),
                    ]);
                }
                for t in &plan.tokens_kept_revoked {
                    rows.push(vec![
                        "keep revoked".into(),
                        t.user_id.to_string(),
                        format!(
                            "entry {}: {} was revoked; provision a new value",
                            t.entry, t.token_id
                        ),
                    ]);
                }
                let verdict = if dry_run {
                    "dry run: nothing written"
                } else {
                    "applied"
                };
                o.table(
                    &["CHANGE", "USER", "DETAIL"],
                    &rows,
                    "no changes: the store already matches the table",
                )?;
                o.note(verdict)
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(op: &Operator, out: Output, id: &str, to: UserStatus) -> Result<(), CliError> {
    let id = user_id(id)?;
    let user = op
        .store
        .set_status(&op.scope, &id, to)
        .await
        .map_err(not_found(&id))?;
    out.show(&UserView::from(&user), |o| {
        o.line(&format!(
            "user `{}` is {}",
            user.id,
            match user.status {
                UserStatus::Active => "active",
                UserStatus::Suspended => "suspended: every credential of theirs is refused (by a running server within 1 s)",
            }
        ))
    })
}
