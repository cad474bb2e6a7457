//! `GET /v1/me/events`: the caller's own audit events as Server-Sent Events, and nobody
//! else's. Streams are read with a deadline; a test never waits unboundedly.

use std::time::Duration;

use ownership_tests::app::{Backend, TestApp, spawn_app_with};
use serde_json::{Value, json};
use tokio::time::{Instant, timeout_at};

use crate::support::*;

on_both_backends!(
    the_event_stream_delivers_the_callers_events_and_never_anothers,
    the_event_stream_refuses_bad_tokens_and_ends_with_its_token,
    open_streams_are_capped_per_user_and_in_all,
    a_recreated_user_sees_none_of_the_deleted_accounts_events,
    a_stream_ticket_opens_its_minters_stream_once,
);

/// How long a test waits for an event it expects.
const DEADLINE: Duration = Duration::from_secs(20);

async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |c| {
        c.service.events_poll = Duration::from_millis(50);
    })
    .await
}

/// An open event stream.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    /// Opens the stream with the token in the `Authorization` header (the query string,
    /// which refuses `manage` tokens, is tested in `protocol`).
    async fn open(app: &TestApp, token: &str) -> Self {
        let response = app
            .http
            .get(format!("{}/v1/me/events", app.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event's `data` as JSON, `None` if the stream ended. Panics at the deadline.
    async fn next(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let data: Vec<&str> = frame
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some(serde_json::from_str(&data.join("\n")).unwrap());
            }
            let chunk = timeout_at(deadline, self.response.chunk())
                .await
                .expect("no event before the deadline")
                .expect("stream read");
            match chunk {
                Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                None => return None,
            }
        }
    }

    /// Opens the stream resuming after event `after` (`Last-Event-ID`).
    async fn resume(app: &TestApp, token: &str, after: i64) -> Self {
        let response = app
            .http
            .get(format!("{}/v1/me/events", app.base))
            .bearer_auth(token)
            .header("Last-Event-ID", after.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// Reads events until one matches `wanted`; every event read is passed to `check`.
    async fn until(&mut self, wanted: impl Fn(&Value) -> bool, check: impl Fn(&Value)) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let event = self.next(deadline).await.expect("the stream ended early");
            check(&event);
            if wanted(&event) {
                return event;
            }
        }
    }
}

/// Matches the `token.issued` event of token `id`.
fn issued(id: String) -> impl Fn(&Value) -> bool {
    move |e| e["action"] == "token.issued" && e["target"] == id.as_str()
}

/// Mints an `api` token with `token`; returns its id (the event's target).
async fn mint_marker(app: &TestApp, token: &str) -> String {
    mint(app, token, &["api"]).await.0
}

async fn the_event_stream_delivers_the_callers_events_and_never_anothers(backend: Backend) {
    let app = app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let bob = app.create_user("bob", "member").await;
    let mut alices = Stream::open(&app, &alice).await;
    let mut owners = Stream::open(&app, &app.owner_token).await;

    // Bob's event is older than Alice's: had it leaked into her stream, it would arrive
    // before hers.
    mint_marker(&app, &bob).await;
    let marker = mint_marker(&app, &alice).await;
    let only = |owner: &'static str| {
        move |e: &Value| {
            assert_eq!(
                e["owner_id"], owner,
                "another owner's event in the stream: {e}"
            );
        }
    };
    let event = alices.until(issued(marker), only("alice")).await;
    assert!(event["seq"].is_i64() && event["at"].is_string(), "{event}");
    assert_eq!(
        event["actor"].as_str().map(|a| a.contains("alice")),
        Some(true),
        "{event}"
    );

    // An Owner's stream is theirs only, too: not even the users they manage.
    let r = app
        .call(
            "PUT",
            "/v1/admin/users/bob/status",
            Some(&app.owner_token),
            Some(json!({"status": "suspended"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let marker = mint_marker(&app, &app.owner_token).await;
    owners.until(issued(marker), only("owner")).await;

    // More events keep coming to Alice, still only hers.
    let marker = mint_marker(&app, &alice).await;
    alices.until(issued(marker), only("alice")).await;
}

async fn the_event_stream_refuses_bad_tokens_and_ends_with_its_token(backend: Backend) {
    let app = app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let verify = service_token(&app, &["verify"]).await;

    assert_unauthenticated(&app.call("GET", "/v1/me/events", None, None).await);
    assert_unauthenticated(
        &app.call("GET", "/v1/me/events?access_token=garbage", None, None)
            .await,
    );
    // A token for neither the account nor its programs has no stream.
    let r = app
        .call(
            "GET",
            &format!("/v1/me/events?access_token={verify}"),
            None,
            None,
        )
        .await;
    assert_error(&r, 403, "forbidden");

    // An `api` token may listen, by header too; revoking it ends its stream.
    let (api_id, api) = mint(&app, &alice, &["api"]).await;
    let response = app
        .http
        .get(format!("{}/v1/me/events", app.base))
        .bearer_auth(&api)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = Stream {
        response,
        buffer: String::new(),
    };
    let marker = mint_marker(&app, &alice).await;
    stream
        .until(issued(marker), |e| assert_eq!(e["owner_id"], "alice"))
        .await;
    let r = app
        .call(
            "DELETE",
            &format!("/v1/me/tokens/{api_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let deadline = Instant::now() + DEADLINE;
    loop {
        match stream.next(deadline).await {
            None => break,
            // The revocation itself may still be delivered before the stream ends.
            Some(e) => assert_eq!(e["owner_id"], "alice", "{e}"),
        }
    }
}

/// One user cannot hold every stream: past `limits.event_streams_per_user` open streams the
/// next is 429 until one closes, and `limits.event_streams_total` caps everyone's.
async fn open_streams_are_capped_per_user_and_in_all(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.service.limits.event_streams_per_user = 2;
        c.service.limits.event_streams_total = 3;
    })
    .await;
    let alice = app.create_user("alice", "member").await;
    let bob = app.create_user("bob", "member").await;
    let carol = app.create_user("carol", "member").await;
    let first = Stream::open(&app, &alice).await;
    let _second = Stream::open(&app, &alice).await;
    let refused = app.get("/v1/me/events", &alice).await;
    assert_error(&refused, 429, "rate_limited");
    // Another user still gets one: the cap is per user...
    let _bobs = Stream::open(&app, &bob).await;
    // ...and in all: three are open.
    assert_error(&app.get("/v1/me/events", &carol).await, 429, "rate_limited");
    // A closed stream gives its place back.
    drop(first);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let r = app
            .http
            .get(format!("{}/v1/me/events", app.base))
            .bearer_auth(&carol)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed stream's place never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Issue 18 item 5: delete `bob`, create `bob` again, and the new account reads none of
/// the old one's events, through the listing or the stream replayed from the start; the
/// Owner's listing still shows them. Each event carries its chain links.
async fn a_recreated_user_sees_none_of_the_deleted_accounts_events(backend: Backend) {
    let app = app(backend).await;
    let old_bob = app.create_user("bob", "member").await;
    let old_marker = mint_marker(&app, &old_bob).await;
    let old = app.get("/v1/me/audit", &old_bob).await;
    assert_eq!(old.status, 200);
    let old_events = old.body["events"].as_array().unwrap().clone();
    assert!(old_events.len() >= 2, "{}", old.text);
    for e in &old_events {
        for link in ["hash", "prev_hash"] {
            let hex = e[link].as_str().unwrap();
            assert!(
                hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
                "{link}: {e}"
            );
        }
    }
    let newest_old = old_events[0]["seq"].as_i64().unwrap();
    let r = app
        .call(
            "DELETE",
            "/v1/admin/users/bob",
            Some(&app.owner_token),
            None,
        )
        .await;
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    let new_bob = app.create_user("bob", "member").await;

    let mine = app.get("/v1/me/audit", &new_bob).await;
    assert_eq!(mine.status, 200);
    let mine = mine.body["events"].as_array().unwrap().clone();
    assert!(!mine.is_empty());
    assert!(
        mine.iter()
            .all(|e| e["seq"].as_i64().unwrap() > newest_old && e["target"] != old_marker.as_str()),
        "the new bob reads the old bob's events: {mine:?}"
    );
    // The stream, replayed from the very start, skips them too.
    let mut stream = Stream::resume(&app, &new_bob, 0).await;
    let marker = mint_marker(&app, &new_bob).await;
    stream
        .until(issued(marker), |e| {
            assert!(
                e["seq"].as_i64().unwrap() > newest_old,
                "the old bob's event in the new bob's stream: {e}"
            );
        })
        .await;
    // The Owner still reads everything.
    let all = app.get("/v1/admin/audit?limit=100", &app.owner_token).await;
    assert_eq!(all.status, 200);
    assert!(
        all.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["target"] == old_marker.as_str()),
        "{}",
        all.text
    );
}

/// How long the tickets of [`a_stream_ticket_opens_its_minters_stream_once`] live.
const TICKET_TTL: Duration = Duration::from_secs(5);

/// Mints a stream ticket with `token` in the header.
async fn ticket(app: &TestApp, token: &str) -> String {
    let r = app
        .call("POST", "/v1/me/events/ticket", Some(token), None)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let seconds = r.body["expires_in_seconds"].as_i64().unwrap();
    assert!((1..=5).contains(&seconds), "{}", r.text);
    let value = r.body["ticket"].as_str().unwrap().to_owned();
    assert!(value.starts_with("ticket_"), "{value}");
    value
}

/// A ticket from `POST /v1/me/events/ticket` opens its minter's stream once, without a
/// token in the URL: a second use, an expired ticket, garbage, and a ticket sent with
/// another user's token are refused (401); a `verify` token mints none (403), and a token
/// in the query string mints none either (the header only).
async fn a_stream_ticket_opens_its_minters_stream_once(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.service.events_poll = Duration::from_millis(50);
        c.service.stream_ticket_ttl = TICKET_TTL;
    })
    .await;
    let alice = app.create_user("alice", "member").await;
    let bob = app.create_user("bob", "member").await;

    let once = ticket(&app, &alice).await;
    let response = app
        .http
        .get(format!("{}/v1/me/events?ticket={once}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = Stream {
        response,
        buffer: String::new(),
    };
    mint_marker(&app, &bob).await;
    let marker = mint_marker(&app, &alice).await;
    stream
        .until(issued(marker), |e| {
            assert_eq!(e["owner_id"], "alice", "another owner's event: {e}");
        })
        .await;
    let again = app
        .call("GET", &format!("/v1/me/events?ticket={once}"), None, None)
        .await;
    assert_unauthenticated(&again);

    // Bob holding Alice's ticket, with his own token: refused, and the ticket is spent.
    let alices = ticket(&app, &alice).await;
    let r = app
        .call(
            "GET",
            &format!("/v1/me/events?ticket={alices}"),
            Some(&bob),
            None,
        )
        .await;
    assert_unauthenticated(&r);
    assert_unauthenticated(
        &app.call("GET", &format!("/v1/me/events?ticket={alices}"), None, None)
            .await,
    );

    let late = ticket(&app, &alice).await;
    tokio::time::sleep(TICKET_TTL + Duration::from_millis(500)).await;
    assert_unauthenticated(
        &app.call("GET", &format!("/v1/me/events?ticket={late}"), None, None)
            .await,
    );
    assert_unauthenticated(
        &app.call("GET", "/v1/me/events?ticket=ticket_garbage", None, None)
            .await,
    );

    let verify = service_token(&app, &["verify"]).await;
    let r = app
        .call("POST", "/v1/me/events/ticket", Some(&verify), None)
        .await;
    assert_error(&r, 403, "forbidden");
    let r = app
        .call(
            "POST",
            &format!("/v1/me/events/ticket?access_token={alice}"),
            None,
            None,
        )
        .await;
    assert_unauthenticated(&r);
}
