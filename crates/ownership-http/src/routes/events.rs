use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use ownership_core::TokenKind;
use ownership_core::authz::OwnerScope;
use ownership_core::ports::{AuditFilter, PageRequest};
use ownership_core::token::TokenDigest;

use crate::api_doc::*;
use crate::auth::{Authenticated, AuthenticatedSse, bearer, bearer_from};
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::{ApiJson, EventView, StreamTicketView};

/// The caller of the event stream: from the `Authorization` header, a `?ticket=` from
/// `POST /v1/me/events/ticket`, or `?access_token=` ([`AuthenticatedSse`]). A ticket
/// works once, within its minute, and opens its minter's own stream only; the stream
/// then lives as long as the token that minted it.
pub struct StreamCaller(ownership_core::authz::Principal, TokenDigest);

/// The ticket of the stream's query string.
#[derive(Debug, serde::Deserialize)]
struct TicketQuery {
    ticket: Option<String>,
}

impl FromRequestParts<AppState> for StreamCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ticket = axum::extract::Query::<TicketQuery>::try_from_uri(&parts.uri)
            .map_err(|_| ApiError::bad_request("the query string is malformed"))?
            .0
            .ticket;
        let Some(ticket) = ticket else {
            let AuthenticatedSse(p, digest) =
                AuthenticatedSse::from_request_parts(parts, state).await?;
            return Ok(Self(p, digest));
        };
        // A ticket sent with another user's token opens nothing (and is spent).
        let header_user = match bearer(parts) {
            Some(raw) => Some(
                state
                    .auth
                    .authenticate_raw(parts, Some(raw))
                    .await?
                    .identity()
                    .owner_id()
                    .clone(),
            ),
            None => None,
        };
        let row = ownership_core::tickets::redeem_ticket(&*state.store, &ticket).await?;
        if header_user.is_some_and(|user| user != row.owner) {
            return Err(ApiError::unauthenticated());
        }
        // The token the ticket stands for, as it is now: revoked, expired or suspended
        // since, and the ticket opens nothing.
        match state.store.authenticate(&row.token).await? {
            Some(p) if p.identity().owner_id() == &row.owner => {
                state
                    .auth
                    .limits()
                    .identity_request(p.identity().owner_id())
                    .map_err(ApiError::rate_limited)?;
                Ok(Self(p, row.token))
            }
            _ => Err(ApiError::unauthenticated()),
        }
    }
}

/// Mint a stream ticket.
///
/// A ticket for `GET /v1/me/events?ticket=…`, so a browser's `EventSource` (which cannot
/// send headers) need not put a token in the URL. It opens the caller's own stream once,
/// within 60 seconds (never past the calling token's expiry), and the stream then lives
/// as long as the calling token does. Only the ticket's digest is stored, in the store
/// every server process shares. Needs a `manage` or `api` token in the `Authorization`
/// header.
#[utoipa::path(post, path = "/v1/me/events/ticket", tag = "audit",
    responses(
        (status = 201, description = "The ticket (shown once).", body = StreamTicketView),
        AuthErrors, (status = 403, response = Forbidden)))]
pub async fn stream_ticket(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    headers: HeaderMap,
) -> Result<(StatusCode, ApiJson<StreamTicketView>), ApiError> {
    if !(p.has_kind(&TokenKind::Manage) || p.has_kind(&TokenKind::Api)) {
        return Err(ApiError::forbidden("token kind `manage` or `api` required"));
    }
    let raw = bearer_from(&headers).ok_or_else(ApiError::unauthenticated)?;
    let token = ownership_core::token::digest_of(raw);
    let ttl = state.config.stream_ticket_ttl;
    let ticket =
        ownership_core::tickets::mint_ticket(&*state.store, &p, token, ttl, &mut state.rng())
            .await?;
    let expires_in = (ticket.expires_at - state.clock().now()).whole_seconds();
    Ok((
        StatusCode::CREATED,
        ApiJson(StreamTicketView {
            ticket: ticket.value,
            expires_at: ownership_core::audit::rfc3339(ticket.expires_at),
            expires_in_seconds: expires_in.max(0),
        }),
    ))
}

struct Cursor {
    state: AppState,
    scope: OwnerScope,
    token: TokenDigest,
    after: i64,
    pending: std::collections::VecDeque<EventView>,
    first: bool,
    /// The final `shutdown` event has been sent: the stream ends.
    closed: bool,
    /// This stream's place among the open ones, given back when the stream is dropped.
    _slot: crate::limits::StreamSlot,
}

/// The last event of a stream the server ends because it is shutting down: the client
/// should reconnect (to this server once it is back, or to another), resuming from the
/// last id it saw.
fn shutdown_event() -> Event {
    Event::default()
        .event("shutdown")
        .retry(Duration::from_secs(1))
        .json_data(serde_json::json!({
            "reason": "server_shutdown",
            "message": "the server is restarting; reconnect with the last event id you received",
        }))
        .unwrap_or_else(|_| Event::default().event("shutdown"))
}

/// Stream the caller's audit events.
///
/// The caller's own audit events as Server-Sent Events, from now (or after the
/// `Last-Event-ID` the client resumes from). The one route that also takes
/// `?ticket=` (from `POST /v1/me/events/ticket`: the way for a browser's `EventSource`,
/// which cannot send headers) and `?access_token=`; a token in the URL must not hold the
/// `manage` kind (`403`: URLs reach proxy logs), so prefer a ticket, or give the stream an
/// `api` token there. The stream ends when the
/// token stops working, and when the server shuts down (after a final `shutdown` event).
/// Needs a `manage` or `api` token.
#[utoipa::path(get, path = "/v1/me/events", tag = "audit",
    params(
        ("ticket" = Option<String>, Query, nullable = false,
            description = "A stream ticket from `POST /v1/me/events/ticket`: works once, within 60 seconds, for the user who minted it (else `401`)."),
        ("access_token" = Option<String>, Query, nullable = false,
            description = "The bearer token, for clients that cannot set headers (`EventSource`). An `api` token: one holding `manage` is refused here (`403`)."),
        ("Last-Event-ID" = Option<i64>, Header, nullable = false, minimum = 0,
            description = "Resume after this event (`seq`); without it the stream starts now. Anything but a whole number of 0 or more is `400`.")),
    responses(
        (status = 200, description = "`text/event-stream`: one event per audit event, `id` its `seq`, `event` its action, `data` the event as JSON (see `EventView`).",
            content_type = "text/event-stream", body = crate::wire::StreamEvent),
        (status = 400, response = BadRequest), AuthErrors, (status = 403, response = Forbidden)))]
pub async fn my_events(
    State(state): State<AppState>,
    StreamCaller(p, digest): StreamCaller,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    if !(p.has_kind(&TokenKind::Manage) || p.has_kind(&TokenKind::Api)) {
        return Err(ApiError::forbidden("token kind `manage` or `api` required"));
    }
    let scope = OwnerScope::own(p.identity());
    // One user holds at most `limits.event_streams_per_user` streams, and the process at
    // most `limits.event_streams_total`.
    let slot = state
        .auth
        .limits()
        .open_stream(p.identity().owner_id())
        .ok_or_else(|| ApiError::rate_limited(Duration::from_secs(5)))?;
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|seq| *seq >= 0)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "Last-Event-ID must be the `id` of an event received before (a whole number of 0 or more)",
                    )
                })?,
        ),
    };
    let after = match resume {
        Some(seq) => seq,
        None => state
            .store
            .list_events(
                AuditFilter::Owner(&scope),
                &PageRequest {
                    after: None,
                    limit: 1,
                },
            )
            .await?
            .items
            .first()
            .map_or(0, |e| e.seq),
    };
    let cursor = Cursor {
        state,
        scope,
        token: digest,
        after,
        pending: Default::default(),
        first: true,
        closed: false,
        _slot: slot,
    };
    let stream = stream::unfold(cursor, |mut c| async move {
        loop {
            if c.closed {
                return None;
            }
            if c.state.drain.is_draining() {
                c.closed = true;
                c.state.drain.stream_closed();
                return Some((Ok(shutdown_event()), c));
            }
            if let Some(ev) = c.pending.pop_front() {
                let event = Event::default()
                    .id(ev.seq.to_string())
                    .event(ev.action.clone())
                    .json_data(&ev)
                    .unwrap_or_else(|_| Event::default().comment("unserializable event"));
                return Some((Ok(event), c));
            }
            if !c.first {
                // Woken early by a shutdown, which the top of the loop then announces.
                tokio::select! {
                    () = tokio::time::sleep(c.state.config.events_poll) => {}
                    () = c.state.drain.stopping() => {}
                }
            }
            c.first = false;
            // The stream lives only as long as its token does.
            match c.state.store.authenticate(&c.token).await {
                Ok(Some(p)) if p.identity().owner_id() == c.scope.owner() => {}
                _ => return None,
            }
            match c.state.store.events_after(&c.scope, c.after, 100).await {
                Ok(events) => {
                    if let Some(last) = events.last() {
                        c.after = last.seq;
                    }
                    c.pending.extend(events.iter().map(EventView::from));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event stream read failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
