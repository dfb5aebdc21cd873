//! Waking subscribers when events are committed: within one process through a watch channel,
//! across instances (PostgreSQL) through LISTEN/NOTIFY. Subscribers also poll once a second, so
//! a lost notification delays an event by at most that.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::store::{Backend, Store};

pub const CHANNEL: &str = "parkhub_events";

#[derive(Clone)]
pub struct EventBus {
    latest: Arc<watch::Sender<i64>>,
    shutdown: watch::Receiver<bool>,
    /// Every open socket holds a clone; when all are gone, the sockets are done.
    sockets: tokio::sync::mpsc::Sender<()>,
}

/// Held by an open socket for its lifetime.
pub struct SocketGuard(#[allow(dead_code)] tokio::sync::mpsc::Sender<()>);

impl EventBus {
    /// The bus, and what resolves (returns `None`) once the bus and every socket are gone.
    pub fn new(shutdown: watch::Receiver<bool>) -> (Self, tokio::sync::mpsc::Receiver<()>) {
        let (sockets, done) = tokio::sync::mpsc::channel(1);
        let bus = Self {
            latest: Arc::new(watch::channel(0).0),
            shutdown,
            sockets,
        };
        (bus, done)
    }

    pub fn socket_guard(&self) -> SocketGuard {
        SocketGuard(self.sockets.clone())
    }

    /// Records that events up to `seq` are committed and wakes this process's subscribers.
    pub fn published(&self, seq: i64) {
        self.latest.send_if_modified(|latest| {
            if seq > *latest {
                *latest = seq;
                true
            } else {
                false
            }
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.latest.subscribe()
    }

    /// Becomes true when the service is shutting down.
    pub fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }
}

/// Resolves once `shutdown` says the service is stopping.
pub async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which happens only when the service stops too.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Every `interval` until shutdown, runs `job` on whatever is older than `age` (the job gets
/// that cutoff and answers how many records it changed), and logs what it did as `what`.
pub fn spawn_expiry<F, Fut>(
    bus: &EventBus,
    age: Duration,
    interval: Duration,
    what: &'static str,
    job: F,
) where
    F: Fn(jiff::Timestamp) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<u64, crate::http::AppError>> + Send,
{
    let mut shutdown = bus.shutdown();
    let age = jiff::SignedDuration::try_from(age).unwrap_or(jiff::SignedDuration::MAX);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let Ok(cutoff) = jiff::Timestamp::now().checked_sub(age) else { continue };
                    match job(cutoff).await {
                        Ok(0) => {}
                        Ok(records) => tracing::info!(records, "{what}"),
                        Err(err) => tracing::warn!(error = %err, "{what} failed; will retry"),
                    }
                }
                _ = stopping(&mut shutdown) => return,
            }
        }
    });
}

/// After a commit that wrote events up to `seq`: wake local subscribers. (Other instances
/// were notified by the commit itself, see [`crate::events::store::Outbox`].)
pub fn announce(bus: &EventBus, seq: i64) {
    bus.published(seq);
}

/// On PostgreSQL, listens for other instances' notifications until shutdown.
pub fn spawn_listener(store: &Store, bus: EventBus) {
    let Backend::Postgres(pool) = store.backend() else {
        return;
    };
    let pool = pool.clone();
    tokio::spawn(async move {
        let mut shutdown = bus.shutdown();
        loop {
            let listener = async {
                let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
                listener.listen(CHANNEL).await?;
                loop {
                    let notification = listener.recv().await?;
                    if let Ok(seq) = notification.payload().parse::<i64>() {
                        bus.published(seq);
                    }
                }
                #[allow(unreachable_code)]
                Ok::<(), sqlx::Error>(())
            };
            tokio::select! {
                result = listener => {
                    if let Err(err) = result {
                        tracing::warn!(error = %err, "event listener lost its connection; reconnecting");
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                _ = stopping(&mut shutdown) => return,
            }
        }
    });
}
