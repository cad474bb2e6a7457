use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use ownership_core::TokenKind;
use ownership_core::authz::OwnerScope;
use ownership_core::ports::{AuditFilter, PageRequest};
use ownership_core::token::TokenDigest;

use crate::api_doc::*;
use crate::auth::AuthenticatedSse;
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::EventView;

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
/// `?access_token=`, since `EventSource` cannot send headers; a token in the URL must not
/// hold the `manage` kind (`403`: URLs reach proxy logs), so give the stream an `api`
/// token there. The stream ends when the
/// token stops working, and when the server shuts down (after a final `shutdown` event).
/// Needs a `manage` or `api` token.
#[utoipa::path(get, path = "/v1/me/events", tag = "audit",
    params(
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
    AuthenticatedSse(p, digest): AuthenticatedSse,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    if !(p.has_kind(&TokenKind::Manage) || p.has_kind(&TokenKind::Api)) {
        return Err(ApiError::forbidden("token kind `manage` or `api` required"));
    }
    let scope = OwnerScope::own(&p.identity);
    // One user holds at most `limits.event_streams_per_user` streams, and the process at
    // most `limits.event_streams_total`.
    let slot = state
        .auth
        .limits()
        .open_stream(&p.identity.owner_id)
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
                Ok(Some(p)) if p.identity.owner_id == *c.scope.owner() => {}
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
