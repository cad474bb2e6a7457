//! HTTP-level races (issue 9): 64 concurrent clients against the real server
//! (`ownership_cli::server`, what `ownership serve` runs), on a libSQL file and on
//! PostgreSQL. Each race must end in a state some *sequential* history of the same
//! requests could produce, with no 5xx at any time, every 4xx in the error shape of
//! docs/api.md, and the audit chain intact afterwards (checked by opening the store and
//! running its `verify_chain`, what `ownership audit verify` runs).
//!
//! - `one_code_many_redeemers`: one pairing code, 64 users redeeming it at once.
//! - `rotate_and_revoke_at_once`: one token, 64 rotate/revoke calls by its owner.
//! - `delete_user_while_in_use`: 63 clients using a user's token while an admin deletes
//!   the user.
//! - `admin_acts_while_demoted`: an Admin's 63 user-management calls racing the Owner's
//!   demotion of that Admin.
//! - `two_owners_demote_each_other`: two Owners demoting each other at once, eight rounds.
//! - `eight_owners_demote_each_other`: eight Owners demoting each other at once (56 calls).
//! - `wrong_codes_from_one_member`: 1,000 wrong pairing codes from one member at once; at
//!   most the per-user budget of them is evaluated, every other one is refused (429).
//!
//! "Sequentially explainable" is checked the same way everywhere: the audit log is the
//! serialization order the store chose, so it is replayed ([`replay`]) against the rules
//! of docs/security.md#authorization (who may manage whom, the last Owner), and each 2xx a client got must be an
//! event of that log, placed where the client's view allows.
//!
//! The per-identity rate limit and the per-address failed-authentication limit are
//! raised for these tests: 63 clients hammering one identity, and refused tokens after a
//! delete, would otherwise be answered 429, which is the limiter's job (tested
//! elsewhere), not the race under test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ownership_core::audit::ChainVerdict;
use ownership_core::ports::AuditLog;
use ownership_store::SystemClock;
use ownership_store::libsql::LibsqlStore;
use ownership_store::postgres::PgStore;
use ownership_tests::app::{Backend, Reply, TestApp, spawn_app_with};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::task::JoinHandle;

/// Concurrent clients per race.
const CLIENTS: usize = 64;

/// Whole-scenario bound: a hang fails the test instead of stalling the run. Generous:
/// the machine may be loaded.
const SCENARIO_LIMIT: Duration = Duration::from_secs(600);

/// Declares each named `async fn scenario(backend: Backend)` as two tests,
/// `scenario::libsql` and `scenario::postgres`.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn libsql() {
                super::bounded(super::$scenario(ownership_tests::app::Backend::Libsql)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::bounded(super::$scenario(ownership_tests::app::Backend::Postgres)).await;
            }
        }
    )*};
}

on_both_backends!(
    wrong_codes_from_one_member,
    one_code_many_redeemers,
    rotate_and_revoke_at_once,
    delete_user_while_in_use,
    admin_acts_while_demoted,
    two_owners_demote_each_other,
    eight_owners_demote_each_other,
);

// ---------------------------------------------------------------------------------------
// Support
// ---------------------------------------------------------------------------------------

async fn bounded(scenario: impl Future<Output = ()>) {
    tokio::time::timeout(SCENARIO_LIMIT, scenario)
        .await
        .expect("the scenario finished within its bound");
}

/// The real server on `backend`, with the per-identity and failed-authentication limits
/// out of the way (see the module documentation).
async fn start(backend: Backend) -> Arc<TestApp> {
    Arc::new(
        spawn_app_with(backend, |c| {
            c.service.limits.identity_per_second = 1_000_000;
            c.service.limits.identity_burst = 1_000_000;
            c.service.limits.failed_auth_per_address = 1_000_000;
        })
        .await,
    )
}

/// Stops the server once every task has let go of it.
async fn finish(app: Arc<TestApp>) {
    Arc::try_unwrap(app)
        .expect("no task still holds the app")
        .stop()
        .await;
}

/// Every answer: never a 5xx; a 4xx carries `{"error":{"code","message"}}` with a
/// snake_case code, and a 401 its `WWW-Authenticate: Bearer` challenge.
fn clean(r: &Reply, what: &str) {
    assert!(
        (200..500).contains(&r.status),
        "{what}: status {} (no 5xx, ever): {}",
        r.status,
        r.text
    );
    if r.status >= 400 {
        let code = r.body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {} without the error shape: {}", r.status, r.text));
        assert!(
            !code.is_empty()
                && code
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{what}: error code `{code}` is not snake_case"
        );
        assert!(
            r.body["error"]["message"].as_str().is_some(),
            "{what}: error without a message: {}",
            r.text
        );
        if r.status == 401 {
            let challenge = r
                .headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer"),
                "{what}: 401 without its Bearer challenge"
            );
        }
    }
}

/// One request, checked by [`clean`].
/// A `channel:telegram` service token minted by `owner`.
async fn telegram_bot(app: &TestApp, owner: &str) -> String {
    let bot = call(
        app,
        "POST",
        "/v1/admin/service-tokens",
        owner,
        Some(json!({"kinds": ["channel:telegram"], "label": "bot"})),
    )
    .await;
    assert_eq!(bot.status, 201, "service token: {}", bot.text);
    bot.body["token"].as_str().unwrap().to_owned()
}

async fn call(app: &TestApp, method: &str, path: &str, token: &str, body: Option<Value>) -> Reply {
    let r = app.call(method, path, Some(token), body).await;
    clean(&r, &format!("{method} {path}"));
    r
}

/// The error code of a 4xx.
fn code(r: &Reply) -> &str {
    r.body["error"]["code"].as_str().unwrap_or_default()
}

/// Joins spawned tasks in order; a panicking task fails the test with its message.
async fn join_all<T>(tasks: Vec<JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("task ran to completion"));
    }
    out
}

/// Polls `condition` until it holds (short pauses between looks; a condition, never a
/// fixed delay, decides when to go on).
async fn until(condition: impl Fn() -> bool) {
    while !condition() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Percent-encodes a cursor for a query string.
fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One audit event as `GET /v1/admin/audit` lists it.
#[derive(Debug, Clone)]
struct Event {
    seq: i64,
    actor: String,
    owner: Option<String>,
    action: String,
    target: String,
    details: Value,
}

/// The whole audit log, oldest first, read by the first Owner.
async fn audit(app: &TestApp) -> Vec<Event> {
    audit_as(app, &app.owner_token).await
}

/// The whole audit log, oldest first, read page by page through the admin route with
/// `token` (an Admin's or Owner's).
async fn audit_as(app: &TestApp, token: &str) -> Vec<Event> {
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/admin/audit?limit=500&after={}", encode(a)),
            None => "/v1/admin/audit?limit=500".to_owned(),
        };
        let r = call(app, "GET", &path, token, None).await;
        assert_eq!(r.status, 200, "audit: {}", r.text);
        let page = r.body["events"].as_array().expect("events").clone();
        let got = page.len();
        for e in page {
            events.push(Event {
                seq: e["seq"].as_i64().expect("seq"),
                actor: e["actor"].as_str().expect("actor").to_owned(),
                owner: e["owner_id"].as_str().map(str::to_owned),
                action: e["action"].as_str().expect("action").to_owned(),
                target: e["target"].as_str().expect("target").to_owned(),
                details: e["details"].clone(),
            });
        }
        match r.body["next"].as_str() {
            Some(next) if got > 0 => after = Some(next.to_owned()),
            _ => break,
        }
    }
    events.sort_by_key(|e| e.seq);
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<i64> = (1..).take(events.len()).collect();
    assert_eq!(
        seqs, expected,
        "the audit listing is the whole chain, each event once, no gaps"
    );
    events
}

/// The store's own chain verification (what `ownership audit verify` runs), on a second
/// handle to the server's database; the chain must be intact and hold exactly the events
/// the API listed.
async fn chain_intact(app: &TestApp, backend: Backend, listed: usize) {
    let verdict = match backend {
        Backend::Libsql => {
            LibsqlStore::open_file(Path::new(&app.database_url), Arc::new(SystemClock))
                .await
                .expect("open the libSQL file")
                .verify_chain()
                .await
                .expect("verify the chain")
        }
        Backend::Postgres => PgStore::connect(&app.database_url, Arc::new(SystemClock))
            .await
            .expect("connect to PostgreSQL")
            .verify_chain()
            .await
            .expect("verify the chain"),
    };
    assert_eq!(
        verdict,
        ChainVerdict::Intact {
            events: u64::try_from(listed).unwrap()
        },
        "the audit chain is intact after the race"
    );
}

/// A user's role and whether they are active, as the audit log tells it.
#[derive(Debug, Clone)]
struct Known {
    role: String,
    active: bool,
}

fn is_admin(role: &str) -> bool {
    role == "admin" || role == "owner"
}

/// Replays the user-management events in chain order against docs/security.md#authorization and panics at the
/// first one no sequential history could have allowed: an actor who was not (or no longer)
/// an active Admin or Owner, an Admin touching an Admin/Owner or creating/promoting one,
/// anyone changing or deleting themselves, a role change whose `from` is not the role the
/// log says the user had, or a state with no active Owner.
fn replay(events: &[Event]) -> HashMap<String, Known> {
    let mut users: HashMap<String, Known> = HashMap::new();
    let active_owners = |users: &HashMap<String, Known>| {
        users
            .values()
            .filter(|k| k.role == "owner" && k.active)
            .count()
    };
    for e in events {
        let acting = e.actor.strip_prefix("user:");
        // May the actor, at this point of the history, manage a target of role
        // `target_role` and give it `new_role`?
        let allowed = |users: &HashMap<String, Known>, target_role: &str, new_role: &str| {
            let Some(actor) = acting else {
                return; // operator, bootstrap: outside the HTTP rules
            };
            let Some(k) = users.get(actor) else {
                panic!(
                    "event {} ({} {}): actor `{actor}` did not exist then",
                    e.seq, e.action, e.target
                )
            };
            assert!(
                k.active && is_admin(&k.role),
                "event {} ({} {} by {actor}): the actor was `{}` ({}) at that point of the history, not an active Admin or Owner",
                e.seq,
                e.action,
                e.target,
                k.role,
                if k.active { "active" } else { "suspended" }
            );
            if is_admin(target_role) || is_admin(new_role) {
                assert_eq!(
                    k.role, "owner",
                    "event {} ({} {} by {actor}): only an Owner manages or makes Admins and Owners",
                    e.seq, e.action, e.target
                );
            }
            if matches!(
                e.action.as_str(),
                "user.role_changed" | "user.suspended" | "user.resumed" | "user.deleted"
            ) {
                assert_ne!(
                    actor, e.target,
                    "event {}: nobody manages themselves",
                    e.seq
                );
            }
        };
        match e.action.as_str() {
            "owner.bootstrapped" => {
                users.insert(
                    e.target.clone(),
                    Known {
                        role: "owner".into(),
                        active: true,
                    },
                );
            }
            "user.created" => {
                let role = e.details["role"].as_str().expect("created role").to_owned();
                assert!(
                    !users.contains_key(&e.target),
                    "event {}: created twice",
                    e.seq
                );
                allowed(&users, "member", &role);
                users.insert(e.target.clone(), Known { role, active: true });
            }
            "user.role_changed" => {
                let from = e.details["from"].as_str().expect("from");
                let to = e.details["to"].as_str().expect("to").to_owned();
                let before = users
                    .get(&e.target)
                    .unwrap_or_else(|| panic!("event {}: role of an unknown user", e.seq))
                    .clone();
                assert_eq!(
                    before.role, from,
                    "event {}: `from` is the role the user had",
                    e.seq
                );
                allowed(&users, &before.role, &to);
                users.get_mut(&e.target).unwrap().role = to;
            }
            "user.suspended" | "user.resumed" => {
                let before = users
                    .get(&e.target)
                    .unwrap_or_else(|| panic!("event {}: status of an unknown user", e.seq))
                    .clone();
                allowed(&users, &before.role, "member");
                users.get_mut(&e.target).unwrap().active = e.action == "user.resumed";
            }
            "user.deleted" => {
                let before = users
                    .get(&e.target)
                    .unwrap_or_else(|| panic!("event {}: deletion of an unknown user", e.seq))
                    .clone();
                allowed(&users, &before.role, "member");
                users.remove(&e.target);
            }
            _ => {}
        }
        if e.action.starts_with("user.") || e.action == "owner.bootstrapped" {
            assert!(
                active_owners(&users) >= 1,
                "event {} ({} {}): no active Owner left",
                e.seq,
                e.action,
                e.target
            );
        }
    }
    users
}

/// Every user as `GET /v1/admin/users` lists them to the first Owner: id → (role, status).
async fn users(app: &TestApp) -> HashMap<String, (String, String)> {
    users_as(app, &app.owner_token).await
}

/// Every user as `GET /v1/admin/users` lists them to `token`: id → (role, status).
async fn users_as(app: &TestApp, token: &str) -> HashMap<String, (String, String)> {
    let mut out = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/admin/users?limit=500&after={}", encode(a)),
            None => "/v1/admin/users?limit=500".to_owned(),
        };
        let r = call(app, "GET", &path, token, None).await;
        assert_eq!(r.status, 200, "users: {}", r.text);
        let page = r.body["users"].as_array().expect("users").clone();
        let got = page.len();
        for u in page {
            out.insert(
                u["user_id"].as_str().unwrap().to_owned(),
                (
                    u["role"].as_str().unwrap().to_owned(),
                    u["status"].as_str().unwrap().to_owned(),
                ),
            );
        }
        match r.body["next"].as_str() {
            Some(next) if got > 0 => after = Some(next.to_owned()),
            _ => break,
        }
    }
    out
}

/// Creates a user through `token` (an Admin's or Owner's) and returns their token.
async fn create_user_as(app: &TestApp, token: &str, id: &str, role: &str) -> String {
    let r = call(
        app,
        "POST",
        "/v1/admin/users",
        token,
        Some(json!({"user_id": id, "role": role})),
    )
    .await;
    assert_eq!(r.status, 201, "create user {id}: {}", r.text);
    r.body["token"].as_str().expect("token").to_owned()
}

/// The live state the API shows must be the state the replayed log ends in.
fn same_users(listed: &HashMap<String, (String, String)>, replayed: &HashMap<String, Known>) {
    let listed_ids: HashSet<&String> = listed.keys().collect();
    let replayed_ids: HashSet<&String> = replayed.keys().collect();
    assert_eq!(
        listed_ids, replayed_ids,
        "the users are those the audit log accounts for"
    );
    for (id, (role, status)) in listed {
        let k = &replayed[id];
        assert_eq!(role, &k.role, "{id}: role as the audit log tells it");
        assert_eq!(
            status,
            if k.active { "active" } else { "suspended" },
            "{id}: status as the audit log tells it"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 1. One pairing code, 64 redeemers
// ---------------------------------------------------------------------------------------

/// One code, redeemed by 64 different users at once (three rounds, three chat accounts,
/// the code typed as shown, in lower case and without its dash): exactly one redemption
/// succeeds, the 63 others get the same 404 `invalid_code`, the chat account resolves to
/// the winner and no one else lists it, and the log holds exactly one link event for it,
/// by the winner.
/// Wrong codes sent at once by one member in [`wrong_codes_from_one_member`].
const WRONG_CODES: usize = 1_000;

/// 1,000 concurrent wrong codes from one member: the store counts each evaluated code in
/// the transaction that evaluates it, so at most the per-user budget (5) are evaluated
/// (answered 404 `invalid_code`), and every other one is refused before its code is looked
/// at (429 `rate_limited` with `Retry-After`). A check made before the transaction and a
/// count made after it let every request that checked before the first count through.
async fn wrong_codes_from_one_member(backend: Backend) {
    let app = start(backend).await;
    let owner = app.owner_token.clone();
    let bot = telegram_bot(&app, &owner).await;
    let asked = call(
        &app,
        "POST",
        "/v1/channels/telegram/pairing-requests",
        &bot,
        Some(json!({"external_id": "tg-1"})),
    )
    .await;
    assert_eq!(asked.status, 201, "pairing request: {}", asked.text);
    let shown = asked.body["code"].as_str().unwrap().to_owned();
    let member = app.create_user("guesser", "member").await;
    // Open the connections first, so the codes reach the server together rather than
    // one accepted connection at a time.
    let warm: Vec<_> = (0..WRONG_CODES)
        .map(|_| {
            let app = Arc::clone(&app);
            tokio::spawn(async move { app.call("GET", "/healthz", None, None).await.status })
        })
        .collect();
    assert!(join_all(warm).await.iter().all(|s| *s == 200));

    let barrier = Arc::new(Barrier::new(WRONG_CODES));
    let tasks = (0..WRONG_CODES)
        .map(|i| {
            let (app, barrier, member) = (Arc::clone(&app), Arc::clone(&barrier), member.clone());
            // Well-formed codes (8 symbols of the alphabet, `i` in base 32), none the
            // one shown.
            const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
            let mut guess: String = (0..8)
                .map(|k| char::from(ALPHABET[(i >> (5 * (7 - k))) & 31]))
                .collect();
            if guess == shown.replace('-', "") {
                guess = "99999999".into();
            }
            tokio::spawn(async move {
                barrier.wait().await;
                call(
                    &app,
                    "POST",
                    "/v1/pairing/telegram/redeem",
                    &member,
                    Some(json!({"code": guess})),
                )
                .await
            })
        })
        .collect();
    let replies = join_all(tasks).await;
    let evaluated = replies
        .iter()
        .filter(|r| r.status == 404 && code(r) == "invalid_code")
        .count();
    let refused = replies
        .iter()
        .filter(|r| {
            r.status == 429 && code(r) == "rate_limited" && r.headers.contains_key("retry-after")
        })
        .count();
    eprintln!("{WRONG_CODES} wrong codes at once: {evaluated} evaluated, {refused} refused");
    assert!(
        (1..=5).contains(&evaluated),
        "at most the budget (5) of the wrong codes may be evaluated, {evaluated} were"
    );
    assert_eq!(
        evaluated + refused,
        WRONG_CODES,
        "every other one is refused"
    );
    // The budget is the member's, not the channel's: the right code still redeems for
    // someone else.
    let other = app.create_user("other", "member").await;
    let r = call(
        &app,
        "POST",
        "/v1/pairing/telegram/redeem",
        &other,
        Some(json!({"code": shown})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let listed = audit(&app).await.len();
    chain_intact(&app, backend, listed).await;
    finish(app).await;
}

async fn one_code_many_redeemers(backend: Backend) {
    let app = start(backend).await;
    let owner = app.owner_token.clone();
    let bot = telegram_bot(&app, &owner).await;

    let mut redeemers = Vec::new();
    for i in 0..CLIENTS {
        let id = format!("redeemer-{i:02}");
        let token = app.create_user(&id, "member").await;
        redeemers.push((id, token));
    }

    // Three rounds: each user spends at most one failed redemption per round, under the
    // per-user budget (5 per 15 min) and the channel's (100 per 10 min).
    for round in 0..3 {
        let external = format!("tg-{round}");
        let asked = call(
            &app,
            "POST",
            "/v1/channels/telegram/pairing-requests",
            &bot,
            Some(json!({"external_id": external, "meta": {"name": "racer"}})),
        )
        .await;
        assert_eq!(asked.status, 201, "pairing request: {}", asked.text);
        assert_eq!(asked.body["created"], true);
        let shown = asked.body["code"].as_str().unwrap().to_owned();

        let barrier = Arc::new(Barrier::new(CLIENTS));
        let tasks = redeemers
            .iter()
            .enumerate()
            .map(|(i, (id, token))| {
                let (app, barrier, id, token) = (
                    Arc::clone(&app),
                    Arc::clone(&barrier),
                    id.clone(),
                    token.clone(),
                );
                // The same code, as typed by different people (normalized on input).
                let typed = match i % 3 {
                    0 => shown.clone(),
                    1 => shown.to_lowercase(),
                    _ => shown.replace('-', ""),
                };
                tokio::spawn(async move {
                    barrier.wait().await;
                    let r = call(
                        &app,
                        "POST",
                        "/v1/pairing/telegram/redeem",
                        &token,
                        Some(json!({"code": typed})),
                    )
                    .await;
                    (id, r)
                })
            })
            .collect();
        let results = join_all(tasks).await;

        let winners: Vec<&(String, Reply)> =
            results.iter().filter(|(_, r)| r.status == 200).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one redemption succeeds: {:?}",
            results
                .iter()
                .map(|(id, r)| (id, r.status))
                .collect::<Vec<_>>()
        );
        let (winner, won) = winners[0];
        assert_eq!(won.body["channel"], "telegram");
        assert_eq!(won.body["external_id"], external.as_str());
        assert_eq!(
            won.body["owner_id"],
            winner.as_str(),
            "bound to the one who redeemed it"
        );
        for (id, r) in results.iter().filter(|(id, _)| id != winner) {
            assert_eq!(
                (r.status, code(r)),
                (404, "invalid_code"),
                "round {round}: {id} lost the race and gets the same clean refusal as any used code: {}",
                r.text
            );
        }

        // The chat account resolves to the winner, for the channel's adapter.
        let resolved = call(
            &app,
            "GET",
            &format!("/v1/channels/telegram/identities/{external}"),
            &bot,
            None,
        )
        .await;
        assert_eq!(resolved.status, 200, "resolve: {}", resolved.text);
        assert_eq!(resolved.body["owner_id"], winner.as_str());
        assert_eq!(resolved.body["role"], "member");
        // Only the winner lists it among their chat accounts.
        for (id, token) in &redeemers {
            let listed = call(&app, "GET", "/v1/me/identities", token, None).await;
            assert_eq!(listed.status, 200);
            let has = listed.body["identities"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["channel"] == "telegram" && i["external_id"] == external.as_str());
            assert_eq!(
                has,
                id == winner,
                "{id} lists tg-{round} only if they won it"
            );
        }
        // Nothing is left pending for that sender.
        let pending = call(&app, "GET", "/v1/admin/pairing/telegram", &owner, None).await;
        assert_eq!(pending.status, 200);
        assert!(
            !pending.body["requests"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["external_id"] == external.as_str()),
            "the redeemed request is consumed: {}",
            pending.text
        );

        // Exactly one link event for that chat account, by and for the winner.
        let events = audit(&app).await;
        let target = format!("telegram/{external}");
        let links: Vec<&Event> = events
            .iter()
            .filter(|e| e.action == "pairing.approved" && e.target == target)
            .collect();
        assert_eq!(links.len(), 1, "round {round}: one link event: {links:?}");
        assert_eq!(links[0].actor, format!("user:{winner}"));
        assert_eq!(links[0].owner.as_deref(), Some(winner.as_str()));
        assert_eq!(
            events
                .iter()
                .filter(|e| e.action == "pairing.requested" && e.target == target)
                .count(),
            1,
            "round {round}: one pairing request"
        );
    }

    let events = audit(&app).await;
    let replayed = replay(&events);
    same_users(&users(&app).await, &replayed);
    chain_intact(&app, backend, events.len()).await;
    finish(app).await;
}

// ---------------------------------------------------------------------------------------
// 2. One token rotated and revoked at once
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenOp {
    /// `POST …/rotate`, with or without a grace period.
    Rotate { grace: bool },
    /// `DELETE …` (with `?kind=api`, which the token holds, or without).
    Revoke { checked: bool },
    /// `DELETE …?kind=manage`: the token does not hold `manage`, so always 409.
    RevokeWrongKind,
}

#[derive(Debug)]
struct TokenOutcome {
    op: TokenOp,
    /// A revocation had already returned 204 when this call was sent.
    after_revoke: bool,
    reply: Reply,
    /// For a successful revocation: `GET /v1/me` with the revoked token, sent after the
    /// revocation returned.
    probe: Option<Reply>,
}

/// One `api` token of the Owner, and 64 calls by the Owner on its id at once: rotations
/// (half with a one-hour grace) and revocations (some kind-checked, some naming the wrong
/// kind); four rounds of one revocation against 63 rotations with grace, then four rounds
/// of that mix. Sequentially, either one rotation ran before the first revocation
/// (later rotations find a replaced or revoked token) or a revocation ran first (every
/// rotation fails); so:
///
/// - at most one rotation succeeds; every other rotation is 404; no rotation sent after a
///   revocation returned succeeds;
/// - every revocation is 204 (idempotent), every wrong-kind revocation 409;
/// - once a revocation returned, the old token never authenticates again;
/// - a successful rotation's successor has the old token's kinds and stays valid (a
///   revocation names the old id, never its successor); it is the only live token of
///   that label: no two live successors;
/// - the log holds exactly as many `token.rotated` events as successful rotations, and a
///   `token.revoked` event exactly when the revocation found the token still live: always
///   when no rotation succeeded, after a rotation with grace, never after one without.
async fn rotate_and_revoke_at_once(backend: Backend) {
    let app = start(backend).await;
    let owner = app.owner_token.clone();
    for round in 0..8 {
        let label = format!("target-{round}");
        let minted = call(
            &app,
            "POST",
            "/v1/me/tokens",
            &owner,
            Some(json!({"kinds": ["api"], "label": label})),
        )
        .await;
        assert_eq!(minted.status, 201, "mint: {}", minted.text);
        let id = minted.body["id"].as_str().unwrap().to_owned();
        let old = minted.body["token"].as_str().unwrap().to_owned();
        // Warm the cache: what is tested below is invalidation, not a cold miss.
        assert_eq!(call(&app, "GET", "/v1/me", &old, None).await.status, 200);

        let revoked = Arc::new(AtomicBool::new(false));
        let barrier = Arc::new(Barrier::new(CLIENTS));
        let tasks = (0..CLIENTS)
            .map(|i| {
                let op = match i % 8 {
                    // Rounds 0–3: one revocation against 63 rotations with grace, the
                    // case where a rotation applied after the revocation would bring the
                    // revoked token back for the grace period.
                    _ if round < 4 && i == 0 => TokenOp::Revoke { checked: false },
                    _ if round < 4 => TokenOp::Rotate { grace: true },
                    0 | 2 => TokenOp::Rotate { grace: true },
                    4 | 6 => TokenOp::Rotate { grace: false },
                    1 | 5 => TokenOp::Revoke { checked: false },
                    3 => TokenOp::Revoke { checked: true },
                    _ => TokenOp::RevokeWrongKind,
                };
                let (app, barrier, revoked) =
                    (Arc::clone(&app), Arc::clone(&barrier), Arc::clone(&revoked));
                let (owner, id, old) = (owner.clone(), id.clone(), old.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let after_revoke = revoked.load(Ordering::SeqCst);
                    let reply = match op {
                        TokenOp::Rotate { grace } => {
                            let body = grace.then(|| json!({"grace_seconds": 3600}));
                            call(
                                &app,
                                "POST",
                                &format!("/v1/me/tokens/{id}/rotate"),
                                &owner,
                                body,
                            )
                            .await
                        }
                        TokenOp::Revoke { checked } => {
                            let query = if checked { "?kind=api" } else { "" };
                            call(
                                &app,
                                "DELETE",
                                &format!("/v1/me/tokens/{id}{query}"),
                                &owner,
                                None,
                            )
                            .await
                        }
                        TokenOp::RevokeWrongKind => {
                            call(
                                &app,
                                "DELETE",
                                &format!("/v1/me/tokens/{id}?kind=manage"),
                                &owner,
                                None,
                            )
                            .await
                        }
                    };
                    let probe = if matches!(op, TokenOp::Revoke { .. }) && reply.status == 204 {
                        revoked.store(true, Ordering::SeqCst);
                        Some(call(&app, "GET", "/v1/me", &old, None).await)
                    } else {
                        None
                    };
                    TokenOutcome {
                        op,
                        after_revoke,
                        reply,
                        probe,
                    }
                })
            })
            .collect();
        let outcomes = join_all(tasks).await;

        let rotations: Vec<&TokenOutcome> = outcomes
            .iter()
            .filter(|o| matches!(o.op, TokenOp::Rotate { .. }) && o.reply.status == 201)
            .collect();
        assert!(
            rotations.len() <= 1,
            "round {round}: at most one rotation succeeds, got {}",
            rotations.len()
        );
        for o in &outcomes {
            match o.op {
                TokenOp::Rotate { .. } if o.reply.status != 201 => assert_eq!(
                    (o.reply.status, code(&o.reply)),
                    (404, "not_found"),
                    "round {round}: a losing rotation finds no live token: {}",
                    o.reply.text
                ),
                TokenOp::Rotate { .. } => assert!(
                    !o.after_revoke,
                    "round {round}: a rotation sent after a revocation returned succeeded"
                ),
                TokenOp::Revoke { .. } => {
                    assert_eq!(
                        o.reply.status, 204,
                        "round {round}: revocation: {}",
                        o.reply.text
                    );
                    let probe = o.probe.as_ref().unwrap();
                    assert_eq!(
                        probe.status, 401,
                        "round {round}: the token authenticated after its revocation returned"
                    );
                }
                TokenOp::RevokeWrongKind => assert_eq!(
                    (o.reply.status, code(&o.reply)),
                    (409, "conflict"),
                    "round {round}: revoking with the wrong kind: {}",
                    o.reply.text
                ),
            }
        }

        // After the dust settles: the old token is refused ...
        assert_eq!(
            call(&app, "GET", "/v1/me", &old, None).await.status,
            401,
            "round {round}: the old token authenticates after every revocation returned"
        );
        // ... a successor, if any, works with the same kinds and is the only live token
        // of that label.
        let successor = rotations.first().map(|o| {
            let body = &o.reply.body;
            (
                body["id"].as_str().unwrap().to_owned(),
                body["token"].as_str().unwrap().to_owned(),
                o.op,
            )
        });
        if let Some((new_id, new_token, _)) = &successor {
            assert_ne!(new_id, &id);
            let me = call(&app, "GET", "/v1/me", new_token, None).await;
            assert_eq!(me.status, 200, "the successor is valid: {}", me.text);
            assert_eq!(me.body["user_id"], "owner");
            assert_eq!(me.body["token"]["id"], new_id.as_str());
            assert_eq!(
                me.body["token"]["kinds"],
                json!(["api"]),
                "same kinds as the old token"
            );
        }
        let listed = call(&app, "GET", "/v1/me/tokens", &owner, None).await;
        assert_eq!(listed.status, 200);
        let now = time::OffsetDateTime::now_utc();
        let live: Vec<String> = listed.body["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["label"] == label.as_str())
            .filter(|t| {
                t["revoked_at"].as_str().is_none_or(|at| {
                    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                        .unwrap()
                        > now
                })
            })
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            live,
            successor
                .iter()
                .map(|(i, _, _)| i.clone())
                .collect::<Vec<_>>(),
            "round {round}: the live tokens of the label are exactly the successor, if any"
        );

        // The log tells the same sequential story.
        let events = audit(&app).await;
        let rotated: Vec<&Event> = events
            .iter()
            .filter(|e| e.action == "token.rotated" && e.target == id)
            .collect();
        let revoked_events: Vec<&Event> = events
            .iter()
            .filter(|e| e.action == "token.revoked" && e.target == id)
            .collect();
        assert_eq!(
            rotated.len(),
            rotations.len(),
            "round {round}: one event per rotation"
        );
        // The order first: a rotation applied after a revocation resurrects a revoked
        // token's line (a sequential history refuses it), and a token is revoked once.
        if let (Some(rot), Some(rev)) = (rotated.first(), revoked_events.first()) {
            assert!(
                rot.seq < rev.seq,
                "round {round}: the rotation (event {}) was applied after the token's revocation \
                 (event {}): {:?}",
                rot.seq,
                rev.seq,
                events.iter().filter(|e| e.target == id).collect::<Vec<_>>()
            );
        }
        assert!(
            revoked_events.len() <= 1,
            "round {round}: one token revoked {} times (a revocation of an already revoked \
             token is a no-op): {:?}",
            revoked_events.len(),
            events.iter().filter(|e| e.target == id).collect::<Vec<_>>()
        );
        match &successor {
            None => assert_eq!(
                revoked_events.len(),
                1,
                "round {round}: no rotation, so the first revocation revoked it, once"
            ),
            Some((new_id, _, op)) => {
                assert_eq!(rotated[0].details["new_token_id"], new_id.as_str());
                let expected = usize::from(*op == TokenOp::Rotate { grace: true });
                assert_eq!(
                    revoked_events.len(),
                    expected,
                    "round {round}: after a rotation {} grace, a revocation {} the old token",
                    if expected == 1 { "with" } else { "without" },
                    if expected == 1 {
                        "ends"
                    } else {
                        "finds nothing left to end of"
                    }
                );
                if let Some(rev) = revoked_events.first() {
                    assert!(
                        rotated[0].seq < rev.seq,
                        "the rotation came before the revocation"
                    );
                }
                assert!(
                    !events.iter().any(|e| e.target == *new_id),
                    "round {round}: nothing touched the successor"
                );
            }
        }
    }

    let events = audit(&app).await;
    let replayed = replay(&events);
    same_users(&users(&app).await, &replayed);
    chain_intact(&app, backend, events.len()).await;
    finish(app).await;
}

// ---------------------------------------------------------------------------------------
// 3. A user deleted while their token is in use
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct UseOutcome {
    /// `GET /v1/me` (false) or `POST /v1/me/tokens` (true).
    mint: bool,
    /// The deletion had returned when this call was sent.
    after_delete: bool,
    reply: Reply,
}

/// 63 clients alternate `GET /v1/me` and minting a token with a user's token while the
/// Owner deletes the user (once at least 126 calls succeeded). After the deletion returned,
/// no call with that token succeeds (each client sends two more, all 401); calls that
/// succeeded before are fine; in-flight calls end in 401, or for a mint 404 (the user is
/// gone by the time the mint's transaction runs), never 5xx. In the log, nothing by that
/// user comes after the deletion, every token the user got a 201 for was issued before it,
/// and the deletion counted exactly those tokens plus the first one. None of the minted
/// tokens works afterwards.
async fn delete_user_while_in_use(backend: Backend) {
    let app = start(backend).await;
    let owner = app.owner_token.clone();
    let victim = app.create_user("victim", "member").await;
    assert_eq!(call(&app, "GET", "/v1/me", &victim, None).await.status, 200);

    let deleted = Arc::new(AtomicBool::new(false));
    let succeeded = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let users_tasks: Vec<JoinHandle<Vec<UseOutcome>>> = (0..CLIENTS - 1)
        .map(|i| {
            let (app, barrier, deleted, succeeded) = (
                Arc::clone(&app),
                Arc::clone(&barrier),
                Arc::clone(&deleted),
                Arc::clone(&succeeded),
            );
            let victim = victim.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let mut out = Vec::new();
                let mut after = 0;
                for n in 0usize.. {
                    let after_delete = deleted.load(Ordering::SeqCst);
                    let mint = (n + i) % 2 == 1;
                    let reply = if mint {
                        call(
                            &app,
                            "POST",
                            "/v1/me/tokens",
                            &victim,
                            Some(json!({"kinds": ["api"], "label": format!("c{i}-{n}")})),
                        )
                        .await
                    } else {
                        call(&app, "GET", "/v1/me", &victim, None).await
                    };
                    if (200..300).contains(&reply.status) {
                        succeeded.fetch_add(1, Ordering::SeqCst);
                    }
                    out.push(UseOutcome {
                        mint,
                        after_delete,
                        reply,
                    });
                    if after_delete {
                        after += 1;
                        if after == 2 {
                            break;
                        }
                    }
                }
                out
            })
        })
        .collect();
    let deleter = {
        let (app, barrier, deleted, succeeded) = (
            Arc::clone(&app),
            Arc::clone(&barrier),
            Arc::clone(&deleted),
            Arc::clone(&succeeded),
        );
        let owner = owner.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            until(|| succeeded.load(Ordering::SeqCst) >= 2 * (CLIENTS - 1)).await;
            let r = call(&app, "DELETE", "/v1/admin/users/victim", &owner, None).await;
            deleted.store(true, Ordering::SeqCst);
            r
        })
    };
    let outcomes: Vec<UseOutcome> = join_all(users_tasks).await.into_iter().flatten().collect();
    let deletion = deleter.await.unwrap();
    assert_eq!(deletion.status, 204, "delete: {}", deletion.text);

    let mut minted: HashMap<String, String> = HashMap::new();
    for o in &outcomes {
        let what = if o.mint { "mint" } else { "GET /v1/me" };
        if o.after_delete {
            assert_eq!(
                o.reply.status, 401,
                "{what} sent after the deletion returned: {}",
                o.reply.text
            );
            continue;
        }
        match (o.mint, o.reply.status) {
            (false, 200) => assert_eq!(o.reply.body["user_id"], "victim"),
            (true, 201) => {
                minted.insert(
                    o.reply.body["id"].as_str().unwrap().to_owned(),
                    o.reply.body["token"].as_str().unwrap().to_owned(),
                );
            }
            (_, 401) => {}
            (true, 404) => assert_eq!(code(&o.reply), "not_found"),
            (_, s) => panic!(
                "{what} in flight around the deletion: unexpected {s}: {}",
                o.reply.text
            ),
        }
    }
    assert!(
        !minted.is_empty(),
        "some mints succeeded before the deletion"
    );

    // Gone, with every token the user ever had.
    let gone = call(&app, "GET", "/v1/admin/users/victim", &owner, None).await;
    assert_eq!(gone.status, 404);
    assert_eq!(call(&app, "GET", "/v1/me", &victim, None).await.status, 401);
    for token in minted.values() {
        assert_eq!(
            call(&app, "GET", "/v1/me", token, None).await.status,
            401,
            "a token minted before the deletion authenticates after it"
        );
    }

    let events = audit(&app).await;
    let deletions: Vec<&Event> = events
        .iter()
        .filter(|e| e.action == "user.deleted" && e.target == "victim")
        .collect();
    assert_eq!(deletions.len(), 1);
    let deleted_at = deletions[0].seq;
    let by_victim: Vec<&Event> = events.iter().filter(|e| e.actor == "user:victim").collect();
    for e in &by_victim {
        assert!(
            e.seq < deleted_at,
            "event {} ({} {}) by the user comes after their deletion (event {deleted_at})",
            e.seq,
            e.action,
            e.target
        );
    }
    let issued: HashSet<&str> = by_victim
        .iter()
        .filter(|e| e.action == "token.issued")
        .map(|e| e.target.as_str())
        .collect();
    assert_eq!(
        issued,
        minted.keys().map(String::as_str).collect::<HashSet<_>>(),
        "exactly the mints answered 201 are in the log"
    );
    assert_eq!(
        deletions[0].details["tokens_revoked"],
        json!(minted.len() + 1),
        "the deletion took the first token and every minted one"
    );

    let replayed = replay(&events);
    same_users(&users(&app).await, &replayed);
    chain_intact(&app, backend, events.len()).await;
    finish(app).await;
}

// ---------------------------------------------------------------------------------------
// 4. Role changes racing admin actions
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum AdminOp {
    Create(String),
    Delete(String),
    Suspend(String),
    /// Set a Member's role to `member` (allowed to an Admin, audited).
    KeepMember(String),
    /// Promote a Member to Admin: only an Owner may.
    Promote(String),
    /// Create an Admin: only an Owner may.
    CreateAdmin(String),
}

impl AdminOp {
    /// The event a success appends: (action, target).
    fn event(&self) -> (&'static str, &str) {
        match self {
            Self::Create(u) | Self::CreateAdmin(u) => ("user.created", u),
            Self::Delete(u) => ("user.deleted", u),
            Self::Suspend(u) => ("user.suspended", u),
            Self::KeepMember(u) | Self::Promote(u) => ("user.role_changed", u),
        }
    }

    /// A status an Admin gets when allowed.
    fn success(&self) -> Option<u16> {
        match self {
            Self::Create(_) => Some(201),
            Self::Delete(_) => Some(204),
            Self::Suspend(_) | Self::KeepMember(_) => Some(200),
            Self::Promote(_) | Self::CreateAdmin(_) => None,
        }
    }

    async fn send(&self, app: &TestApp, token: &str) -> Reply {
        match self {
            Self::Create(u) => {
                call(
                    app,
                    "POST",
                    "/v1/admin/users",
                    token,
                    Some(json!({"user_id": u, "role": "member"})),
                )
                .await
            }
            Self::CreateAdmin(u) => {
                call(
                    app,
                    "POST",
                    "/v1/admin/users",
                    token,
                    Some(json!({"user_id": u, "role": "admin"})),
                )
                .await
            }
            Self::Delete(u) => {
                call(app, "DELETE", &format!("/v1/admin/users/{u}"), token, None).await
            }
            Self::Suspend(u) => {
                call(
                    app,
                    "PUT",
                    &format!("/v1/admin/users/{u}/status"),
                    token,
                    Some(json!({"status": "suspended"})),
                )
                .await
            }
            Self::KeepMember(u) => {
                call(
                    app,
                    "PUT",
                    &format!("/v1/admin/users/{u}/role"),
                    token,
                    Some(json!({"role": "member"})),
                )
                .await
            }
            Self::Promote(u) => {
                call(
                    app,
                    "PUT",
                    &format!("/v1/admin/users/{u}/role"),
                    token,
                    Some(json!({"role": "admin"})),
                )
                .await
            }
        }
    }
}

/// The Owner demotes an Admin while that Admin sends 63 user-management calls at once
/// (creations, deletions, suspensions, role changes, and escalations an Admin may never
/// make). The Owner's demotion goes out once half of the Admin's calls are on their way.
///
/// Sequentially the demotion splits the Admin's calls in two: every call the Admin got a
/// 2xx for is in the log *before* the demotion event, nothing by the Admin comes after it,
/// calls sent after the demotion returned are 403, escalations are always 403 and leave
/// nothing behind, the replayed log obeys docs/security.md#authorization and ends in the state the API lists,
/// with the Owner the only Admin-or-Owner.
async fn admin_acts_while_demoted(backend: Backend) {
    let app = start(backend).await;
    let owner = app.owner_token.clone();
    let admin = app.create_user("adm", "admin").await;
    let mut ops = Vec::new();
    for i in 0..16 {
        ops.push(AdminOp::Create(format!("new-{i:02}")));
        let del = format!("del-{i:02}");
        app.create_user(&del, "member").await;
        ops.push(AdminOp::Delete(del));
        let sus = format!("sus-{i:02}");
        app.create_user(&sus, "member").await;
        ops.push(AdminOp::Suspend(sus));
    }
    for i in 0..8 {
        let rol = format!("rol-{i:02}");
        app.create_user(&rol, "member").await;
        ops.push(AdminOp::KeepMember(rol));
    }
    for i in 0..4 {
        let pro = format!("pro-{i:02}");
        app.create_user(&pro, "member").await;
        ops.push(AdminOp::Promote(pro));
    }
    for i in 0..3 {
        ops.push(AdminOp::CreateAdmin(format!("esc-{i:02}")));
    }
    assert_eq!(ops.len(), CLIENTS - 1);
    // Warm the Admin's principal into the cache.
    assert_eq!(
        call(&app, "GET", "/v1/me", &admin, None).await.body["role"],
        "admin"
    );

    let demoted = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let tasks: Vec<JoinHandle<(AdminOp, bool, Reply)>> = ops
        .iter()
        .cloned()
        .map(|op| {
            let (app, barrier, demoted, started) = (
                Arc::clone(&app),
                Arc::clone(&barrier),
                Arc::clone(&demoted),
                Arc::clone(&started),
            );
            let admin = admin.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let after = demoted.load(Ordering::SeqCst);
                started.fetch_add(1, Ordering::SeqCst);
                let r = op.send(&app, &admin).await;
                (op, after, r)
            })
        })
        .collect();
    // The demotion goes out when half of the Admin's calls are on their way, so it is
    // applied among them, not after all of them.
    let demoter = {
        let (app, barrier, demoted, started) = (
            Arc::clone(&app),
            Arc::clone(&barrier),
            Arc::clone(&demoted),
            Arc::clone(&started),
        );
        let owner = owner.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            until(|| started.load(Ordering::SeqCst) >= (CLIENTS - 1) / 2).await;
            let r = call(
                &app,
                "PUT",
                "/v1/admin/users/adm/role",
                &owner,
                Some(json!({"role": "member"})),
            )
            .await;
            demoted.store(true, Ordering::SeqCst);
            r
        })
    };
    let outcomes = join_all(tasks).await;
    let demotion = demoter.await.unwrap();
    assert_eq!(demotion.status, 200, "demotion: {}", demotion.text);
    assert_eq!(demotion.body["role"], "member");

    // Once demoted, the former Admin manages nobody.
    for op in [
        AdminOp::Create("late-00".into()),
        AdminOp::Delete("rol-07".into()),
        AdminOp::KeepMember("rol-06".into()),
    ] {
        let r = op.send(&app, &admin).await;
        assert_eq!(
            r.status, 403,
            "{op:?} after the demotion returned: {}",
            r.text
        );
    }

    let events = audit(&app).await;
    let demotions: Vec<&Event> = events
        .iter()
        .filter(|e| e.action == "user.role_changed" && e.target == "adm")
        .collect();
    assert_eq!(demotions.len(), 1);
    assert_eq!(demotions[0].actor, "user:owner");
    assert_eq!(demotions[0].details["to"], "member");
    let demoted_at = demotions[0].seq;

    let mut late = Vec::new();
    for (op, after, r) in &outcomes {
        let (action, target) = op.event();
        let mine: Vec<&Event> = events
            .iter()
            .filter(|e| e.actor == "user:adm" && e.action == action && e.target == target)
            .collect();
        match op.success() {
            Some(ok) if r.status == ok => {
                assert!(
                    !after,
                    "{op:?} was sent after the demotion returned and succeeded"
                );
                assert_eq!(mine.len(), 1, "{op:?} answered {ok} is in the log once");
                if mine[0].seq > demoted_at {
                    late.push(format!(
                        "{op:?} (event {} > demotion {demoted_at})",
                        mine[0].seq
                    ));
                }
            }
            _ => {
                assert_eq!(
                    (r.status, code(r)),
                    (403, "forbidden"),
                    "{op:?} (sent {} the demotion returned): {}",
                    if *after { "after" } else { "before" },
                    r.text
                );
                assert!(mine.is_empty(), "{op:?} was refused but left {mine:?}");
            }
        }
    }
    assert!(
        late.is_empty(),
        "the Admin got a 2xx for calls applied after their demotion (a sequential history \
         would have refused them): {late:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e.actor == "user:adm" && e.seq > demoted_at),
        "nothing by the Admin after their demotion"
    );

    let replayed = replay(&events);
    let listed = users(&app).await;
    same_users(&listed, &replayed);
    let powerful: Vec<&String> = listed
        .iter()
        .filter(|(_, (role, _))| is_admin(role))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(powerful, vec!["owner"], "nobody was escalated");
    assert_eq!(listed["owner"].1, "active");
    chain_intact(&app, backend, events.len()).await;
    finish(app).await;
}

/// Eight Owners each demote the seven others at once (56 calls). Sequentially, an Owner
/// demoted earlier is a Member for every later call: so at least one Owner remains, calls
/// sent after the caller's own demotion returned are 403, and the replayed log never shows
/// a demotion by someone who was no longer an Owner.
async fn eight_owners_demote_each_other(backend: Backend) {
    let app = start(backend).await;
    let first = app.owner_token.clone();
    let mut owners = vec![("owner".to_owned(), first.clone())];
    for i in 1..8 {
        let id = format!("own-{i}");
        let token = app.create_user(&id, "owner").await;
        owners.push((id, token));
    }
    for (_, token) in &owners {
        assert_eq!(
            call(&app, "GET", "/v1/me", token, None).await.body["role"],
            "owner"
        );
    }
    let demoted: Arc<HashMap<String, AtomicBool>> = Arc::new(
        owners
            .iter()
            .map(|(id, _)| (id.clone(), AtomicBool::new(false)))
            .collect(),
    );
    let pairs: Vec<(usize, usize)> = (0..owners.len())
        .flat_map(|a| {
            (0..owners.len())
                .filter(move |b| *b != a)
                .map(move |b| (a, b))
        })
        .collect();
    let barrier = Arc::new(Barrier::new(pairs.len()));
    let tasks: Vec<JoinHandle<(String, String, bool, Reply)>> = pairs
        .iter()
        .map(|&(a, b)| {
            let (app, barrier, demoted) =
                (Arc::clone(&app), Arc::clone(&barrier), Arc::clone(&demoted));
            let (actor, token) = owners[a].clone();
            let target = owners[b].0.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let after = demoted[&actor].load(Ordering::SeqCst);
                let r = call(
                    &app,
                    "PUT",
                    &format!("/v1/admin/users/{target}/role"),
                    &token,
                    Some(json!({"role": "member"})),
                )
                .await;
                if r.status == 200 {
                    demoted[&target].store(true, Ordering::SeqCst);
                }
                (actor, target, after, r)
            })
        })
        .collect();
    let outcomes = join_all(tasks).await;
    // Someone still an Owner reads the log and the users.
    let mut reader = None;
    for (id, token) in &owners {
        let me = call(&app, "GET", "/v1/me", token, None).await;
        assert_eq!(me.status, 200);
        if me.body["role"] == "owner" {
            reader = Some((id.clone(), token.clone()));
        }
    }
    let (_, reader) = reader.expect("at least one Owner remains");
    for (actor, target, after, r) in &outcomes {
        match r.status {
            200 => assert!(
                !after,
                "{actor} demoted {target} after their own demotion returned"
            ),
            403 => assert_eq!(code(r), "forbidden"),
            409 => assert_eq!(code(r), "conflict", "{actor} → {target}: {}", r.text),
            s => panic!("{actor} demoting {target}: unexpected {s}: {}", r.text),
        }
    }
    let events = audit_as(&app, &reader).await;
    let replayed = replay(&events);
    let listed = users_as(&app, &reader).await;
    same_users(&listed, &replayed);
    let remaining: Vec<&String> = listed
        .iter()
        .filter(|(_, (role, status))| role == "owner" && status == "active")
        .map(|(id, _)| id)
        .collect();
    assert!(!remaining.is_empty(), "at least one Owner remains");
    for (actor, target, _, r) in &outcomes {
        if r.status == 200 {
            assert!(
                events.iter().any(|e| e.action == "user.role_changed"
                    && e.actor == format!("user:{actor}")
                    && e.target == *target),
                "{actor} → {target} answered 200 is in the log"
            );
        }
    }

    chain_intact(&app, backend, events.len()).await;
    finish(app).await;
}

/// Eight rounds of two Owners demoting each other at once: the one Owner and a newly made
/// second Owner. Exactly one succeeds, the other is refused (403 as a Member, or 409 as
/// the last Owner), and exactly one Owner remains: the winner.
async fn two_owners_demote_each_other(backend: Backend) {
    let app = start(backend).await;
    let mut survivor = ("owner".to_owned(), app.owner_token.clone());
    for round in 0..8 {
        let other_id = format!("duo-{round}");
        let other = (
            other_id.clone(),
            create_user_as(&app, &survivor.1, &other_id, "owner").await,
        );
        let barrier = Arc::new(Barrier::new(2));
        let tasks: Vec<JoinHandle<Reply>> = [(&survivor, &other), (&other, &survivor)]
            .into_iter()
            .map(|((_, token), (target, _))| {
                let (app, barrier, token, target) = (
                    Arc::clone(&app),
                    Arc::clone(&barrier),
                    token.clone(),
                    target.clone(),
                );
                tokio::spawn(async move {
                    barrier.wait().await;
                    call(
                        &app,
                        "PUT",
                        &format!("/v1/admin/users/{target}/role"),
                        &token,
                        Some(json!({"role": "member"})),
                    )
                    .await
                })
            })
            .collect();
        let replies = join_all(tasks).await;
        let wins: Vec<usize> = (0..2).filter(|i| replies[*i].status == 200).collect();
        assert_eq!(
            wins.len(),
            1,
            "round {round}: exactly one of two Owners demoting each other succeeds: {:?}",
            replies
                .iter()
                .map(|r| (r.status, code(r)))
                .collect::<Vec<_>>()
        );
        let loser = &replies[1 - wins[0]];
        assert!(
            matches!(
                (loser.status, code(loser)),
                (403, "forbidden") | (409, "conflict")
            ),
            "round {round}: the other is refused as a Member or as the last Owner: {}",
            loser.text
        );
        let winner = if wins[0] == 0 {
            survivor.clone()
        } else {
            other.clone()
        };
        let me = call(&app, "GET", "/v1/me", &winner.1, None).await;
        assert_eq!(
            me.body["role"], "owner",
            "round {round}: the winner is still an Owner"
        );
        survivor = winner;
    }
    let events = audit_as(&app, &survivor.1).await;
    let replayed = replay(&events);
    same_users(&users_as(&app, &survivor.1).await, &replayed);
    let owners_left: Vec<&String> = replayed
        .iter()
        .filter(|(_, k)| k.role == "owner" && k.active)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        owners_left,
        vec![&survivor.0],
        "exactly the last winner is an Owner"
    );
    chain_intact(&app, backend, events.len()).await;
    finish(app).await;
}
