//! Every current right, by plate, in memory: the answer to a check without a lookup in the
//! database (SQLite), kept current from `right_changes`, the plates whose rights changed in
//! commit order, written by triggers (migrations/sqlite/0006).
//!
//! A check uses the memory only when it holds everything up to the latest change committed. That
//! number is read again (`max(seq)`, where the lookup it replaces reads six tables) whenever this
//! process has written since it was last read, so what this process told a client is committed is
//! always in the answer; otherwise it serves for [`PROBE_SERVES`], the longest another process's
//! change (on the same file) can go unseen. When the memory cannot answer (still loading, behind,
//! or asked about an instant older than it keeps) the check reads the database as before and
//! wakes the task that catches the memory up.

mod feed;
mod plates;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Mutex, Notify};

use self::feed::{all_rights, changed_plates, forget_old_changes, latest_change, plate_rights};
use self::plates::Plates;
use super::gather::RightRow;
use crate::domain::time::to_micros;
use crate::http::AppError;
use crate::store::{Backend, SqliteDb, Store};

/// How often rights that ended longer ago than the memory keeps are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(15 * 60);
/// How often the memory looks for changes nobody woke it for (another process's writes).
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// More changes than this behind, the memory is loaded whole again rather than plate by plate.
const MOST_PLATES_AT_ONCE: i64 = 10_000;
/// Fewer changes than this behind, a check catches the memory up itself rather than read the
/// database (unless a catch-up is under way).
const INLINE_MOST: i64 = 256;
/// How often the changes no instance needs are deleted.
const FORGET_CHANGES_EVERY: Duration = Duration::from_secs(1);

/// How long the latest change read for one check serves the next ones, while this process
/// writes nothing: the longest another process's change can go unseen.
const PROBE_SERVES: Duration = Duration::from_millis(10);

/// Why the memory cannot answer a check.
#[derive(Debug, PartialEq, Eq)]
enum Behind {
    /// A few changes: worth catching up at once.
    Few,
    /// Not loaded, or too far behind: the task catches up.
    Many,
    /// The instant is older than the memory keeps.
    TooOld,
}

/// The latest change as last read, with what this process had written by then.
struct Probe {
    /// The writer's loans ended (see [`crate::store::lender::Lender::loans_ended`]) before it
    /// was read.
    writes: u64,
    latest: i64,
    at: Instant,
}

/// The rights memory of one process.
#[derive(Default)]
pub struct RightsMemory {
    /// The latest change read by a check, if any.
    probe: std::sync::Mutex<Option<Probe>>,
    plates: RwLock<Plates>,
    /// One catch-up at a time, so an older read never overwrites a newer one.
    catching_up: Mutex<()>,
    wake: Notify,
    /// How far back it keeps rights that ended, in µs (see `ServeConfig::rights_memory_keep`).
    keep: AtomicI64,
    /// Checks answered from memory, and those that read the database (for `/metrics`).
    pub from_memory: Counter,
    pub from_database: Counter,
    /// Plates it holds rights for, as of its last catch-up (for `/metrics`).
    pub plates_held: Gauge,
}

impl RightsMemory {
    /// The latest change committed, as a check needs it: read again (by `read`) if this
    /// process has written since it was last read (`writes`: the writer's loans ended so far)
    /// or that was more than [`PROBE_SERVES`] ago (another process may have written).
    fn latest(
        &self,
        writes: u64,
        read: impl FnOnce() -> Result<i64, AppError>,
    ) -> Result<i64, AppError> {
        if let Ok(probe) = self.probe.lock() {
            if let Some(p) = probe.as_ref() {
                if p.writes == writes && p.at.elapsed() < PROBE_SERVES {
                    return Ok(p.latest);
                }
            }
        }
        let latest = read()?;
        if let Ok(mut probe) = self.probe.lock() {
            if probe.as_ref().is_none_or(|p| p.latest <= latest) {
                *probe = Some(Probe {
                    writes,
                    latest,
                    at: Instant::now(),
                });
            }
        }
        Ok(latest)
    }

    /// The rows of `plate` at `lot` that the check's statement would give for `from` and
    /// `until` (the start of the grace period), if the memory holds every change committed
    /// (catching up first when only a few plates changed and no one else is catching up) and
    /// every right that ended after `until`; `None`: ask the database.
    pub(super) async fn rows(
        &self,
        store: &Store,
        db: &SqliteDb,
        plate: &str,
        lot: i64,
        (from, until): (i64, i64),
    ) -> Result<Option<Vec<RightRow>>, AppError> {
        let latest = self.latest(db.writer.loans_ended(), || {
            db.inline.read(|conn| {
                conn.prepare_cached(feed::LATEST_CHANGE_SQL)?
                    .query_row([], |row| row.get(0))
            })
        })?;
        let mut rows = self.current_rows(plate, lot, from, until, latest);
        if let Err(Behind::Few) = rows {
            if let Ok(_one) = self.catching_up.try_lock() {
                self.catch_up_alone(store).await?;
                rows = self.current_rows(plate, lot, from, until, latest);
            }
        }
        match rows {
            Ok(rows) => {
                self.from_memory.inc();
                Ok(Some(rows))
            }
            Err(behind) => {
                if behind != Behind::TooOld {
                    self.wake.notify_one();
                }
                self.from_database.inc();
                Ok(None)
            }
        }
    }

    fn current_rows(
        &self,
        plate: &str,
        lot: i64,
        from: i64,
        until: i64,
        latest: i64,
    ) -> Result<Vec<RightRow>, Behind> {
        let plates = self.plates.read().map_err(|_| Behind::Many)?;
        if !plates.loaded || latest - plates.through > INLINE_MOST {
            return Err(Behind::Many);
        }
        if plates.through < latest {
            return Err(Behind::Few);
        }
        if until < plates.horizon {
            return Err(Behind::TooOld);
        }
        Ok(plates.rows_at(plate, lot, from, until))
    }

    /// Reads what changed since the memory was last current (or everything, the first time or
    /// when much changed) and applies it.
    async fn catch_up(&self, store: &Store) -> Result<(), AppError> {
        let _one = self.catching_up.lock().await;
        self.catch_up_alone(store).await
    }

    /// [`Self::catch_up`], for a caller holding `catching_up`.
    async fn catch_up_alone(&self, store: &Store) -> Result<(), AppError> {
        let (loaded, through, horizon) = match self.plates.read() {
            Ok(p) => (p.loaded, p.through, p.horizon),
            Err(_) => (false, 0, 0),
        };
        let latest = latest_change(store).await?;
        if loaded && latest <= through {
            return Ok(());
        }
        let changed = if loaded && latest - through <= MOST_PLATES_AT_ONCE {
            changed_plates(store, through, latest).await?
        } else {
            None
        };
        match changed {
            Some(plates) => {
                let fresh = plate_rights(store, plates, horizon).await?;
                let mut memory = self.write()?;
                for (plate, rights) in fresh {
                    memory.put(plate, rights);
                }
                memory.through = latest;
            }
            None => {
                *self.write()? = all_rights(store, latest, self.horizon()).await?;
            }
        }
        self.plates_held.set(self.plates() as i64);
        Ok(())
    }

    fn write(&self) -> Result<std::sync::RwLockWriteGuard<'_, Plates>, AppError> {
        self.plates
            .write()
            .map_err(|_| AppError::internal(anyhow::anyhow!("the rights memory was poisoned")))
    }

    /// Drops the rights that ended longer ago than it keeps.
    fn prune(&self) -> Result<(), AppError> {
        let horizon = self.horizon();
        self.write()?.prune(horizon);
        self.plates_held.set(self.plates() as i64);
        Ok(())
    }

    /// The instant before which it need not keep rights that ended (unix µs).
    fn horizon(&self) -> i64 {
        to_micros(Timestamp::now()).saturating_sub(self.keep.load(Ordering::Relaxed))
    }

    /// How many plates it holds a right for.
    fn plates(&self) -> usize {
        self.plates.read().map(|p| p.len()).unwrap_or(0)
    }

    /// Keeps the memory current until `shutdown`: at once, whenever a check finds it behind, and
    /// every [`LOOK_EVERY`]; keeps rights that ended up to `keep` ago; drops older ones and the changes no instance needs.
    /// SQLite only: on PostgreSQL checks read the database.
    pub fn spawn(
        self: Arc<Self>,
        store: Store,
        keep: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        if !matches!(store.backend(), Backend::Sqlite(_)) {
            return;
        }
        let keep = i64::try_from(keep.as_micros()).unwrap_or(i64::MAX);
        self.keep.store(keep, Ordering::Relaxed);
        tokio::spawn(async move {
            let mut pruned = tokio::time::Instant::now();
            let mut forgot = tokio::time::Instant::now();
            loop {
                if let Err(err) = self.catch_up(&store).await {
                    tracing::warn!(error = %err, "could not bring the rights memory up to date; checks read the database");
                }
                if pruned.elapsed() >= PRUNE_EVERY {
                    pruned = tokio::time::Instant::now();
                    if let Err(err) = self.prune() {
                        tracing::warn!(error = %err, "could not prune the rights memory");
                    }
                }
                if forgot.elapsed() >= FORGET_CHANGES_EVERY {
                    forgot = tokio::time::Instant::now();
                    if let Err(err) = forget_old_changes(&store).await {
                        tracing::warn!(error = %err, "could not delete old right changes");
                    }
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(LOOK_EVERY) => {}
                    _ = crate::events::bus::stopping(&mut shutdown) => return,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::plates::tests::ticket;
    use super::*;

    fn memory(rows: Vec<RightRow>, through: i64, horizon: i64) -> RightsMemory {
        let memory = RightsMemory::default();
        *memory.plates.write().unwrap() = Plates::from_rows(rows, through, horizon);
        memory
    }

    #[test]
    fn it_answers_only_when_current_and_keeping_the_instant() {
        let m = memory(vec![ticket("AAA111", 12, 10, Some(20))], 5, 8);
        assert_eq!(
            m.current_rows("AAA111", 12, 10, 10, 5).map(|r| r.len()),
            Ok(1)
        );
        assert_eq!(
            m.current_rows("AAA111", 12, 10, 10, 4).map(|r| r.len()),
            Ok(1)
        );
        assert_eq!(
            m.current_rows("AAA111", 12, 10, 10, 6).err(),
            Some(Behind::Few)
        );
        assert_eq!(
            m.current_rows("AAA111", 12, 10, 10, 5 + INLINE_MOST + 1)
                .err(),
            Some(Behind::Many)
        );
        assert_eq!(
            m.current_rows("AAA111", 12, 10, 7, 5).err(),
            Some(Behind::TooOld)
        );
        let empty = RightsMemory::default();
        assert_eq!(
            empty.current_rows("AAA111", 12, 10, 10, 0).err(),
            Some(Behind::Many)
        );
    }

    #[test]
    fn the_latest_change_is_read_again_after_this_process_writes_or_a_while() {
        let memory = RightsMemory::default();
        let reads = std::cell::Cell::new(0);
        let read = |value: i64| {
            let reads = &reads;
            move || {
                reads.set(reads.get() + 1);
                Ok(value)
            }
        };
        assert_eq!(memory.latest(1, read(5)).unwrap(), 5);
        assert_eq!(
            memory.latest(1, read(6)).unwrap(),
            5,
            "served from the last read"
        );
        assert_eq!(reads.get(), 1);
        assert_eq!(memory.latest(2, read(7)).unwrap(), 7, "this process wrote");
        std::thread::sleep(PROBE_SERVES);
        assert_eq!(memory.latest(2, read(8)).unwrap(), 8, "another may have");
        assert_eq!(reads.get(), 3);
    }
}
