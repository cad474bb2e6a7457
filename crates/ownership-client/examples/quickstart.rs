//! The Rust quickstart of the README, with `ownership-client`. Run it against a server with
//! `OWNERSHIP_URL` and `OWNERSHIP_TOKEN` (an Owner's token) set:
//!
//! ```sh
//! OWNERSHIP_URL=http://127.0.0.1:8080 OWNERSHIP_TOKEN=own_… \
//!   cargo run -p ownership-client --example quickstart
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what it did")]

use futures_util::TryStreamExt;
use ownership_client::{Client, Result};
use ownership_core::{ChannelName, ExternalId, TokenKind};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let base = std::env::var("OWNERSHIP_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let token = std::env::var("OWNERSHIP_TOKEN").unwrap_or_default();
    // README: begin
    let owner = Client::new(&base)?.with_token(token);

    // 1. Create a user; their first token is shown once.
    let alice = owner.create_user(&"alice".parse()?, None).await?;
    println!("created user {} ({})", alice.user_id, alice.role);

    // 2. Mint a token for a chat adapter on the `telegram` channel.
    let telegram: ChannelName = "telegram".parse()?;
    let kinds = [TokenKind::Channel(telegram.clone())];
    let minted = owner.service_token(&kinds, Some("telegram bot")).await?;
    let bot = owner.with_token(minted.token.expose());
    let kinds: Vec<_> = minted.meta.kinds.iter().map(ToString::to_string).collect();
    println!("minted a channel token ({})", kinds.join(", "));

    // 3. The bot asks for a pairing code for the sender `42` and shows it to them.
    let sender: ExternalId = "42".parse()?;
    let pairing = bot.request_code(&telegram, &sender, None).await?;
    println!("pairing code issued (new: {})", pairing.created);

    // 4. Alice redeems it with her own token: telegram/42 is now hers.
    let as_alice = owner.with_token(alice.token.expose());
    let bound = as_alice.redeem(&telegram, pairing.code.expose()).await?;
    println!(
        "redeemed: {}/{} -> {}",
        bound.channel, bound.external_id, bound.owner_id
    );

    // 5. The bot resolves who is writing.
    let who = bot.resolve(&telegram, &sender).await?;
    println!("resolved telegram/42: {} ({})", who.owner_id, who.role);

    // 6. Page through the audit log, 2 events a page, following `next` to the end.
    let (mut events, mut pages, mut after) = (0, 0, None);
    loop {
        let page = owner.all_audit(after.as_deref(), Some(2)).await?;
        events += page.events.len();
        pages += 1;
        after = page.next;
        if after.is_none() {
            break;
        }
    }
    println!("audit: {events} events in {pages} pages");

    // 7. Two more users, then every user, 2 a page (a `Stream` that follows `next`).
    for id in ["bob", "carol"] {
        owner.create_user(&id.parse()?, None).await?;
    }
    let users: Vec<String> = owner
        .users(2)
        .map_ok(|u| u.user_id.to_string())
        .try_collect()
        .await?;
    println!("users: {} (2 a page)", users.join(", "));
    // README: end
    Ok(())
}
