//! Events: the outbox written with the change that causes it, the bus that wakes subscribers
//! (LISTEN/NOTIFY across PostgreSQL instances), the TransactionMonitor socket, and retention.

pub mod bus;
pub mod connect;
pub mod frames;
pub mod socket;
pub mod store;

use std::time::Duration;

pub use bus::EventBus;

use crate::store::Store;

/// Removes events older than `retention`, every `interval`, until shutdown.
pub fn spawn_retention(store: Store, bus: EventBus, retention: Duration, interval: Duration) {
    bus::spawn_expiry(
        &bus,
        retention,
        interval,
        "removed events past their retention",
        move |cutoff| {
            let store = store.clone();
            async move { store::prune(&store, cutoff).await }
        },
    );
}
