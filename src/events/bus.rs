//! Waking subscribers when events are committed: within one process through a watch channel,
//! across instances (PostgreSQL) through LISTEN/NOTIFY. One task per process also reads the
//! last event number once a second ([`spawn_poller`]), so an event this process was not told
//! of (a lost notification; on SQLite, another process on the same file) wakes the
//! subscribers within about that. The subscribers themselves ask the database only when
//! woken: 10,000 idle sockets cost one query a second, not 10,000.
//!
//! The events this process commits are also kept in memory for a while ([`EventBus::since`]),
//! so a live subscriber gets them without asking the database once per event; whatever the
//! bus cannot vouch for (another instance's events, one announced out of order, one already
//! dropped from memory) is read from the database.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::store::{Backend, Store};

pub const CHANNEL: &str = "parkhub_events";

/// An event committed by this process, as subscribers receive it.
#[derive(Debug)]
pub struct Committed {
    pub seq: i64,
    /// The provider it concerns; `None`: only the operator sees it.
    pub provider_id: Option<i64>,
    pub payload: String,
}

/// How many of the latest events committed here are kept in memory.
const RECENT: usize = 1024;

/// How many times [`EventBus::since_settled`] lets other tasks run before it gives up on a gap.
const GAP_ROUNDS: usize = 4;

#[derive(Clone)]
pub struct EventBus {
    latest: Arc<watch::Sender<i64>>,
    /// The latest events committed here, by number (usually appended in order; one committed
    /// concurrently may come in a moment late).
    recent: Arc<Mutex<VecDeque<Arc<Committed>>>>,
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
            recent: Arc::default(),
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

    /// Records an event this process committed and wakes this process's subscribers. (Other
    /// instances were notified by the commit itself, see [`crate::events::store::append_postgres`].)
    pub fn committed(&self, event: Committed) {
        let seq = event.seq;
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            let at = recent.partition_point(|e| e.seq < seq);
            recent.insert(at, Arc::new(event));
            if recent.len() > RECENT {
                recent.pop_front();
            }
        }
        self.published(seq);
    }

    /// Every event after `seen` up to the latest one announced, if this process committed
    /// them all and still holds them, with the number they reach; `None`: ask the database.
    pub fn since(&self, seen: i64) -> Option<(Vec<Arc<Committed>>, i64)> {
        let latest = *self.latest.borrow();
        if latest <= seen {
            return Some((Vec::new(), seen));
        }
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let first = recent.partition_point(|e| e.seq <= seen);
        let mut through = seen;
        let mut events = Vec::new();
        for event in recent.range(first..) {
            if event.seq != through + 1 {
                break;
            }
            through = event.seq;
            events.push(event.clone());
        }
        (through >= latest).then_some((events, through))
    }

    /// [`EventBus::since`], giving a gap a moment to close first. A batch announces its own
    /// events in order (see [`crate::store::group::Job::committed`]), but two batches that
    /// commit at the same moment (PostgreSQL's lanes) may announce theirs in either order: a
    /// subscriber woken by the later one would otherwise ask the database for events this
    /// process is about to hand it. The tasks woken with it run while it yields; a gap still
    /// open after that (another instance's events, say) is read from the database.
    pub async fn since_settled(&self, seen: i64) -> Option<(Vec<Arc<Committed>>, i64)> {
        for _ in 0..GAP_ROUNDS {
            if let Some(found) = self.since(seen) {
                return Some(found);
            }
            tokio::task::yield_now().await;
        }
        self.since(seen)
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

/// On PostgreSQL, listens for other instances' notifications until shutdown.
pub fn spawn_listener(store: &Store, bus: EventBus) {
    let Backend::Postgres(pool) = store.backend() else {
        return;
    };
    let pool = pool.clone();
    let origin = store.origin().to_owned();
    tokio::spawn(async move {
        let mut shutdown = bus.shutdown();
        loop {
            let listener = async {
                let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
                listener.listen(CHANNEL).await?;
                loop {
                    let notification = listener.recv().await?;
                    if let Some(seq) = foreign_event(notification.payload(), &origin) {
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

/// How often [`spawn_poller`] reads the last event number.
pub const POLL: Duration = Duration::from_secs(1);

/// Until shutdown, reads the last event number every [`POLL`] and announces it: whatever was
/// committed without this process hearing of it reaches the subscribers from the database.
pub fn spawn_poller(store: &Store, bus: EventBus) {
    let store = store.clone();
    tokio::spawn(async move {
        let mut shutdown = bus.shutdown();
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => match super::store::latest(&store).await {
                    Ok(last) => bus.published(last),
                    Err(err) => tracing::warn!(error = %err, "could not read the last event number; will retry"),
                },
                _ = stopping(&mut shutdown) => return,
            }
        }
    });
}

/// The number in another instance's notification (`origin:seq`; a bare number from an older
/// version). This instance's own are skipped: it announced those events itself when they
/// committed, and the notification can arrive first, when the bus does not hold the event yet.
fn foreign_event(payload: &str, origin: &str) -> Option<i64> {
    match payload.split_once(':') {
        Some((from, _)) if from == origin => None,
        Some((_, seq)) => seq.parse().ok(),
        None => payload.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus() -> EventBus {
        let (_, shutdown) = watch::channel(false);
        EventBus::new(shutdown).0
    }

    fn commit(bus: &EventBus, seq: i64, provider_id: Option<i64>) {
        bus.committed(Committed {
            seq,
            provider_id,
            payload: format!("event {seq}"),
        });
    }

    fn seqs(found: Option<(Vec<Arc<Committed>>, i64)>) -> Option<(Vec<i64>, i64)> {
        found.map(|(events, through)| (events.iter().map(|e| e.seq).collect(), through))
    }

    #[test]
    fn serves_what_this_process_committed_in_order() {
        let bus = bus();
        assert_eq!(seqs(bus.since(0)), Some((vec![], 0)));
        for seq in 1..=3 {
            commit(&bus, seq, Some(7));
        }
        assert_eq!(seqs(bus.since(0)), Some((vec![1, 2, 3], 3)));
        assert_eq!(seqs(bus.since(2)), Some((vec![3], 3)));
        assert_eq!(seqs(bus.since(3)), Some((vec![], 3)));
        let (events, _) = bus.since(2).unwrap();
        assert_eq!(events[0].payload, "event 3");
        assert_eq!(events[0].provider_id, Some(7));
    }

    #[test]
    fn a_gap_sends_the_subscriber_to_the_database_until_it_is_filled() {
        let bus = bus();
        commit(&bus, 1, None);
        commit(&bus, 3, None);
        assert_eq!(seqs(bus.since(0)), None, "2 is not known here yet");
        assert_eq!(seqs(bus.since(2)), Some((vec![3], 3)));
        commit(&bus, 2, None);
        assert_eq!(seqs(bus.since(0)), Some((vec![1, 2, 3], 3)));
    }

    #[tokio::test]
    async fn a_gap_closed_by_writers_answered_together_is_waited_for_briefly() {
        let bus = bus();
        commit(&bus, 1, None);
        commit(&bus, 3, None);
        // 2's batch committed with 3's and announces while the subscriber yields
        let writer = bus.clone();
        let late = tokio::spawn(async move { commit(&writer, 2, None) });
        assert_eq!(seqs(bus.since_settled(0).await), Some((vec![1, 2, 3], 3)));
        late.await.unwrap();
        // a gap nobody here fills goes to the database
        bus.published(5);
        assert_eq!(seqs(bus.since_settled(3).await), None);
    }

    #[test]
    fn another_instances_events_are_read_from_the_database() {
        let bus = bus();
        commit(&bus, 1, None);
        bus.published(2);
        assert_eq!(seqs(bus.since(0)), None);
        assert_eq!(seqs(bus.since(1)), None);
        assert_eq!(seqs(bus.since(2)), Some((vec![], 2)));
        commit(&bus, 3, None);
        assert_eq!(seqs(bus.since(2)), Some((vec![3], 3)));
    }

    #[test]
    fn notifications_of_this_instance_are_skipped() {
        assert_eq!(foreign_event("a1b2:17", "ffff"), Some(17));
        assert_eq!(foreign_event("a1b2:17", "a1b2"), None);
        assert_eq!(foreign_event("17", "a1b2"), Some(17));
        assert_eq!(foreign_event("a1b2:x", "ffff"), None);
    }

    #[test]
    fn only_the_latest_events_are_kept() {
        let bus = bus();
        let last = RECENT as i64 + 10;
        for seq in 1..=last {
            commit(&bus, seq, None);
        }
        assert_eq!(seqs(bus.since(0)), None, "the oldest were let go");
        assert_eq!(seqs(bus.since(9)), None);
        let (events, through) = seqs(bus.since(10)).unwrap();
        assert_eq!((events.len(), through), (RECENT, last));
    }
}
