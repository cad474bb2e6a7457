//! Cross-process cache invalidation: every mutating transaction publishes what it
//! invalidates with `pg_notify` (delivered on commit), and every server process listens and
//! applies it to its own cache.
//!
//! A notification sent while a listener is not connected is lost, so whenever the
//! listening connection drops, the whole cache is flushed — once when the loss is seen and
//! once more after `LISTEN` is back (anything cached in between may already be stale). The
//! cache TTL bounds staleness even if a notification is lost another way.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ownership_core::ports::Store;
use sqlx::postgres::PgListener;

use super::INVALIDATION_CHANNEL;
use crate::cache::{Cached, Invalidation};

/// The first wait before reconnecting after the listening connection dropped.
pub const RECONNECT_MIN: Duration = Duration::from_millis(100);
/// The longest wait between reconnection attempts.
pub const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Listens on [`INVALIDATION_CHANNEL`] at `url` and applies each invalidation received to
/// `cache` (with [`Cached::apply`], which does not publish again), until `shutdown`
/// resolves.
///
/// `healthy` is `true` while the listening connection is up and `false` while it is
/// (re)connecting; readiness checks report it. On every loss of the connection the whole
/// cache is flushed and the listener reconnects with exponential backoff
/// ([`RECONNECT_MIN`] to [`RECONNECT_MAX`]), flushing again once it listens.
pub async fn listen_invalidations<S: Store + 'static>(
    url: String,
    cache: Cached<S>,
    healthy: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let run = async {
        crate::metrics::listener_started();
        let mut backoff = RECONNECT_MIN;
        let mut connected_before = false;
        loop {
            match connect(&url).await {
                Ok(mut listener) => {
                    // Whatever was published while nobody listened is lost.
                    cache.apply(&Invalidation::All);
                    healthy.store(true, Ordering::SeqCst);
                    crate::metrics::listener_up(true);
                    if connected_before {
                        crate::metrics::listener_reconnected();
                    }
                    connected_before = true;
                    backoff = RECONNECT_MIN;
                    tracing::info!(
                        channel = INVALIDATION_CHANNEL,
                        "listening for cache invalidations"
                    );
                    receive(&mut listener, &cache).await;
                    healthy.store(false, Ordering::SeqCst);
                    crate::metrics::listener_up(false);
                    cache.apply(&Invalidation::All);
                }
                Err(e) => {
                    healthy.store(false, Ordering::SeqCst);
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot listen for cache invalidations");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2).min(RECONNECT_MAX);
        }
    };
    tokio::select! {
        () = run => {}
        () = shutdown => {}
    }
    healthy.store(false, Ordering::SeqCst);
    crate::metrics::listener_up(false);
}

async fn connect(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    // Reconnection is ours: we must know when it happens, to flush the cache.
    listener.eager_reconnect(false);
    listener.listen(INVALIDATION_CHANNEL).await?;
    Ok(listener)
}

/// Applies notifications until the connection is lost.
async fn receive<S: Store + 'static>(listener: &mut PgListener, cache: &Cached<S>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => match Invalidation::decode(n.payload()) {
                Some(inv) => {
                    crate::metrics::invalidation_received(inv.kind());
                    cache.apply(&inv);
                }
                None => {
                    crate::metrics::invalidation_received("unreadable");
                    tracing::warn!(
                        payload = n.payload(),
                        "unreadable cache invalidation; flushing the cache"
                    );
                    cache.apply(&Invalidation::All);
                }
            },
            Ok(None) => {
                tracing::warn!(
                    "the cache-invalidation connection was lost; flushing the cache and reconnecting"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the cache-invalidation connection failed; flushing the cache and reconnecting");
                return;
            }
        }
    }
}
