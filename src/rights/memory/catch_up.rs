//! How the rights memory keeps current: the task that catches it up (at once when a check
//! finds it behind, every [`LOOK_EVERY`] otherwise), what a catch-up reads and applies, and the
//! plates whose rights changed read again before checks have to.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::changes::Changed;
use super::feed::{all_rights, changed_plates, forget_old_changes, latest_change, plate_rights};
use super::poll;
use super::{
    FORGET_CHANGES_EVERY, LOOK_EVERY, MOST_PLATES_AT_ONCE, MOST_UNKNOWN, POLL_AHEAD_EVERY,
    PRUNE_EVERY, QUIET_REFILL_ABOVE, REFILL_ABOVE, REFILL_AT_ONCE, Reading, RightsMemory,
};
use crate::http::AppError;
use crate::store::{Backend, Store};

impl RightsMemory {
    /// Reads again the plates whose rights changed, [`REFILL_AT_ONCE`] at a time, until no more
    /// than `down_to` are left unknown.
    async fn refill(&self, store: &Store, down_to: usize) -> Result<(), AppError> {
        loop {
            let (unknown, horizon) = match self.plates.read() {
                Ok(p) if p.unknown_len() > down_to => (p.some_unknown(REFILL_AT_ONCE), p.horizon),
                _ => return Ok(()),
            };
            let plates = unknown.iter().map(|(plate, _)| plate.clone()).collect();
            let fresh = plate_rights(store, plates, horizon).await?;
            let mut memory = self.write()?;
            for ((plate, rights), (_, mark)) in fresh.into_iter().zip(unknown) {
                memory.put_if_unchanged(&plate, mark, rights);
            }
            self.counted(&memory);
        }
    }

    /// Reads what changed since the memory was last current (or everything, the first time or
    /// when much changed) and applies it.
    pub(super) async fn catch_up(&self, store: &Store) -> Result<(), AppError> {
        let _one = self.catching_up.lock().await;
        self.catch_up_alone(store, Reading::Anything).await
    }

    /// [`Self::catch_up`], for a caller holding `catching_up`.
    pub(super) async fn catch_up_alone(
        &self,
        store: &Store,
        reads: Reading,
    ) -> Result<(), AppError> {
        let (loaded, through) = match self.plates.read() {
            Ok(p) => (p.loaded, p.through),
            Err(_) => (false, 0),
        };
        let (latest, changed) = match store.backend() {
            Backend::Sqlite(_) => {
                let latest = latest_change(store).await?;
                if loaded && latest <= through {
                    return Ok(());
                }
                let changed = if loaded && latest - through <= MOST_PLATES_AT_ONCE {
                    changed_plates(store, through, latest).await?
                } else {
                    None
                };
                (latest, changed.map_or(Changed::Everything, Changed::Plates))
            }
            Backend::Postgres(_) => {
                let (latest, changed) = self.polls.take(loaded, MOST_PLATES_AT_ONCE as usize);
                if loaded && latest <= through {
                    return Ok(());
                }
                (latest, changed)
            }
        };
        let changed = match changed {
            Changed::Plates(changes)
                if self.unknown_len() + changes.forget.len() > MOST_UNKNOWN =>
            {
                Changed::Everything
            }
            changed => changed,
        };
        if reads == Reading::PlatesOnly && matches!(changed, Changed::Everything) {
            // Seconds of reading: the task's, while checks read the database.
            self.put_back(store, changed);
            self.wake.notify_one();
            return Ok(());
        }
        let read = self.apply(store, latest, changed).await;
        if let Err((changed, err)) = read {
            self.put_back(store, changed);
            return Err(err);
        }
        self.count();
        Ok(())
    }

    /// Gives back what a catch-up took and did not read (PostgreSQL: what the polls found; on SQLite
    /// the changes are read again from the table).
    fn put_back(&self, store: &Store, changed: Changed) {
        if let Backend::Postgres(_) = store.backend() {
            self.polls.put_back(changed);
        }
    }

    /// Forgets the rights of the plates that `changed` and adds the new tickets of those that
    /// only got new tickets (or reads everyone's again), and holds them as of change `latest`;
    /// on failure gives back what it was to apply.
    async fn apply(
        &self,
        store: &Store,
        latest: i64,
        changed: Changed,
    ) -> Result<(), (Changed, AppError)> {
        match changed {
            // Forgotten until read again: by the check that asks, or by the task once many
            // are (see `refill`), so a write costs the memory no read.
            Changed::Plates(changes) => {
                let mut memory = self.write().map_err(|err| (Changed::Everything, err))?;
                for plate in changes.forget {
                    memory.forget(plate);
                }
                for (plate, rights) in changes.added {
                    memory.add(plate, rights);
                }
                memory.through = latest;
            }
            Changed::Everything => {
                let all = all_rights(store, latest, self.horizon())
                    .await
                    .map_err(|err| (Changed::Everything, err))?;
                let mut memory = self.write().map_err(|err| (Changed::Everything, err))?;
                memory.replace_with(all);
                self.loads.inc();
            }
        }
        Ok(())
    }

    /// Keeps the memory current until `shutdown`: at once, whenever a check finds it behind,
    /// and every [`LOOK_EVERY`] (PostgreSQL: [`POLL_AHEAD_EVERY`] while checks arrive); keeps
    /// rights that ended up to `keep` ago; drops older ones and the changes no instance needs.
    pub fn spawn(
        self: Arc<Self>,
        store: Store,
        keep: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let keep = i64::try_from(keep.as_micros()).unwrap_or(i64::MAX);
        self.keep.store(keep, Ordering::Relaxed);
        tokio::spawn(async move {
            let mut pruned = tokio::time::Instant::now();
            let mut forgot = tokio::time::Instant::now();
            let mut checks = 0;
            loop {
                if let Backend::Postgres(pool) = store.backend() {
                    let _one = self.polling.lock().await;
                    let writes = store.writes_committed();
                    let polled =
                        poll::poll(pool, &self.polls, writes, MOST_PLATES_AT_ONCE as usize);
                    if let Err(err) = polled.await {
                        tracing::warn!(error = %err, "could not read the rights changed; checks read the database");
                    }
                }
                let through = self.through();
                if let Err(err) = self.catch_up(&store).await {
                    tracing::warn!(error = %err, "could not bring the rights memory up to date; checks read the database");
                }
                let quiet = self.through() == through;
                let prune = pruned.elapsed() >= PRUNE_EVERY;
                let down_to = if prune || (quiet && self.unknown_len() > QUIET_REFILL_ABOVE) {
                    0
                } else {
                    REFILL_ABOVE
                };
                if let Err(err) = self.refill(&store, down_to).await {
                    tracing::warn!(error = %err, "could not read changed plates again; checks read them");
                }
                if prune {
                    pruned = tokio::time::Instant::now();
                    if let Err(err) = self.prune() {
                        tracing::warn!(error = %err, "could not prune the rights memory");
                    }
                }
                if forgot.elapsed() >= FORGET_CHANGES_EVERY {
                    forgot = tokio::time::Instant::now();
                    let forgot = match store.backend() {
                        Backend::Sqlite(_) => forget_old_changes(&store).await,
                        Backend::Postgres(pool) => {
                            poll::forget_old_changes(pool, &self.polls).await
                        }
                    };
                    if let Err(err) = forgot {
                        tracing::warn!(error = %err, "could not delete old right changes");
                    }
                }
                let checked = self.from_memory.get() + self.from_database.get();
                let next = match store.backend() {
                    Backend::Postgres(_) if checked != checks => POLL_AHEAD_EVERY,
                    _ => LOOK_EVERY,
                };
                checks = checked;
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(next) => {}
                    _ = crate::events::bus::stopping(&mut shutdown) => return,
                }
            }
        });
    }
}
