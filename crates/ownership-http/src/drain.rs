//! Draining at shutdown. The server calls [`Drain::begin`] when it is asked to stop: open
//! event streams then send a final `shutdown` event and end, and the counts here say how
//! many requests are still being handled, so the server can log what its deadline cut off.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::watch;

/// The shutdown signal the routes see, and the counts the server logs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Drain(Arc<Inner>);

/// What every clone of a [`Drain`] shares (one allocation, so a clone per request is one
/// reference count).
#[derive(Debug)]
struct Inner {
    stop: watch::Sender<bool>,
    in_flight: AtomicUsize,
    streams_closed: AtomicUsize,
}

impl Default for Drain {
    fn default() -> Self {
        Self(Arc::new(Inner {
            stop: watch::Sender::new(false),
            in_flight: AtomicUsize::new(0),
            streams_closed: AtomicUsize::new(0),
        }))
    }
}

impl Drain {
    /// Starts draining: every waiter of [`Drain::stopping`] wakes. Idempotent.
    pub fn begin(&self) {
        self.0.stop.send_replace(true);
    }

    /// Whether draining has begun.
    pub fn is_draining(&self) -> bool {
        *self.0.stop.borrow()
    }

    /// Resolves once draining has begun.
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.stop.subscribe();
        async move {
            // The sender lives as long as any `Drain`, so an error cannot happen while a
            // stream still polls this; either way, stop waiting.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    /// Requests whose handler has not answered yet (a streaming body, once answered, is
    /// not counted).
    pub fn in_flight(&self) -> usize {
        self.0.in_flight.load(Ordering::Relaxed)
    }

    /// Event streams ended by draining (each after its final event).
    pub fn streams_closed(&self) -> usize {
        self.0.streams_closed.load(Ordering::Relaxed)
    }

    pub(crate) fn stream_closed(&self) {
        self.0.streams_closed.fetch_add(1, Ordering::Relaxed);
    }

    fn enter(&self) -> InFlight<'_> {
        self.0.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.0.in_flight)
    }
}

/// One request being handled; counted down when dropped (answered or aborted).
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Middleware counting the requests being handled in [`Drain::in_flight`].
pub(crate) async fn count_in_flight(drain: Drain, req: Request, next: Next) -> Response {
    let _counted = drain.enter();
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn begin_wakes_waiters_and_is_idempotent() {
        let drain = Drain::default();
        let waiting = tokio::spawn(drain.stopping());
        assert!(!drain.is_draining());
        drain.begin();
        drain.begin();
        assert!(drain.is_draining());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        // A waiter that comes late resolves at once.
        drain.stopping().await;
        let guard = drain.enter();
        assert_eq!(drain.in_flight(), 1);
        drop(guard);
        assert_eq!(drain.in_flight(), 0);
    }
}
