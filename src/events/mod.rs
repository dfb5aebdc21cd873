//! Events: the outbox written with the change that causes it, the bus that wakes subscribers
//! (LISTEN/NOTIFY across PostgreSQL instances), the TransactionMonitor socket, and retention.

pub mod bus;
pub mod frames;
pub mod socket;
pub mod store;

use std::time::Duration;

pub use bus::EventBus;

use crate::store::Store;

/// Removes events older than `retention`, every `interval`, until shutdown.
pub fn spawn_retention(store: Store, bus: EventBus, retention: Duration, interval: Duration) {
    tokio::spawn(async move {
        let mut shutdown = bus.shutdown();
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let Ok(cutoff) = jiff::Timestamp::now().checked_sub(jiff::SignedDuration::try_from(retention).unwrap_or(jiff::SignedDuration::MAX)) else {
                        continue;
                    };
                    match store::prune(&store, cutoff).await {
                        Ok(0) => {}
                        Ok(removed) => tracing::info!(removed, "removed events past their retention"),
                        Err(err) => tracing::warn!(error = %err, "event retention failed; will retry"),
                    }
                }
                _ = bus::stopping(&mut shutdown) => return,
            }
        }
    });
}
