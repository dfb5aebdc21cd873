//! The check log's plate index: which rows a write puts into it now and which it leaves to a
//! quiet moment (SQLite), and the statement that indexes the rows waiting.

use crate::http::AppError;
use crate::store::group::Job;
use crate::store::{Backend, Store, from_rusqlite};

use super::linger;

/// Checks arriving slower than this are quiet: a gathering that brings fewer than this many
/// per second of its [`linger`] goes into the plate index at once, with some of those waiting.
const QUIET_PER_SECOND: u128 = 1_000;
/// Rows put into the plate index in one transaction when checks are quiet or stopped: large
/// enough that rows share index pages, small enough to hold other writers for a moment only.
pub(super) const INDEX_CHUNK: u64 = 10_000;
/// The most rows left out of the plate index: past this, a busy writer indexes as many as it
/// writes. Listing one plate's checks reads every row waiting (about 0.1 µs each).
const MOST_TO_INDEX: u64 = 1_000_000;

/// How the check log's writer keeps SQLite's plate index: a round of many checks is written
/// without it (its random page per row was most of the log's cost, and the writer's long
/// commits the tail of every answer's latency), a quiet round with it; the rows left out are
/// indexed when checks slow down or stop, oldest first, in transactions large enough that
/// rows share pages, or, past [`MOST_TO_INDEX`], as many as each busy round writes. On
/// PostgreSQL every row is written indexed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct PlateIndexing {
    /// Deferring at all (SQLite).
    defer: bool,
    /// Rows waiting for the plate index.
    pub(super) waiting: u64,
    /// A gathering of fewer checks is a quiet one.
    pub(super) quiet_rows: usize,
}

/// What one write does about the plate index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Plan {
    /// The new rows go into the index now.
    pub(super) index_new: bool,
    /// Rows waiting that go into the index in the same transaction, oldest first.
    pub(super) index_waiting: u64,
}

impl PlateIndexing {
    /// Counts the rows a previous run left waiting (SQLite); on a failure, assumes some are, so
    /// the first quiet moment finds out.
    pub(super) async fn start(store: &Store) -> Self {
        let quiet_rows = (QUIET_PER_SECOND * linger(store).as_millis() / 1000).max(1) as usize;
        let Backend::Sqlite(_) = store.backend() else {
            return Self {
                defer: false,
                waiting: 0,
                quiet_rows,
            };
        };
        let counted = store
            .sqlite_read_blocking(|conn| {
                conn.query_row(
                    "SELECT COUNT(*) FROM parking_right_checks WHERE NOT plate_indexed",
                    [],
                    |row| row.get::<_, i64>(0),
                )
            })
            .await;
        let waiting = match counted {
            Ok(n) => n.max(0) as u64,
            Err(err) => {
                tracing::warn!(error = %err, "could not count the checks waiting for the plate index");
                1
            }
        };
        Self {
            defer: true,
            waiting,
            quiet_rows,
        }
    }

    /// The plan for a write of `rows` new checks.
    pub(super) fn plan(&self, rows: usize) -> Plan {
        if !self.defer {
            return Plan {
                index_new: true,
                index_waiting: 0,
            };
        }
        if rows < self.quiet_rows {
            return Plan {
                index_new: true,
                index_waiting: self.waiting.min(INDEX_CHUNK),
            };
        }
        let after = self.waiting + rows as u64;
        Plan {
            index_new: false,
            index_waiting: after.saturating_sub(MOST_TO_INDEX),
        }
    }

    /// Accounts for a write of `rows` by `plan` that indexed `indexed` waiting rows.
    pub(super) fn written(&mut self, rows: usize, plan: Plan, indexed: u64) {
        if !plan.index_new {
            self.waiting += rows as u64;
        }
        self.indexed(plan.index_waiting, indexed);
    }

    /// Accounts for `indexed` rows indexed of `asked`: fewer means none are left.
    fn indexed(&mut self, asked: u64, indexed: u64) {
        self.waiting = if indexed < asked {
            0
        } else {
            self.waiting.saturating_sub(indexed)
        };
    }
}

/// Indexes up to `chunk` waiting rows (SQLite); false if that failed (logged; tried again at
/// the next quiet moment).
pub(super) async fn index_with_retries(
    store: &Store,
    indexing: &mut PlateIndexing,
    chunk: u64,
) -> bool {
    let Backend::Sqlite(sqlite) = store.backend() else {
        indexing.waiting = 0;
        return true;
    };
    match sqlite.group.submit(IndexWaiting(chunk)).await {
        Ok(indexed) => {
            indexing.indexed(chunk, indexed);
            true
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not index the check log's waiting rows; will retry");
            false
        }
    }
}

/// Puts the oldest `limit` rows waiting into the plate index; how many it did.
pub(super) fn index_waiting(conn: &rusqlite::Connection, limit: u64) -> Result<u64, AppError> {
    if limit == 0 {
        return Ok(0);
    }
    let indexed = conn
        .prepare_cached(
            "UPDATE parking_right_checks SET plate_indexed = TRUE WHERE id IN \
             (SELECT id FROM parking_right_checks WHERE NOT plate_indexed ORDER BY id LIMIT ?1)",
        )
        .and_then(|mut update| update.execute([limit as i64]))
        .map_err(from_rusqlite)?;
    Ok(indexed as u64)
}

/// A chunk of waiting rows to index, as a job of the group commit.
pub(super) struct IndexWaiting(pub(super) u64);

impl Job for IndexWaiting {
    type Output = u64;

    fn run(&self, conn: &rusqlite::Connection) -> Result<u64, AppError> {
        index_waiting(conn, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_rounds_leave_the_plate_index_to_later_quiet_ones_catch_up() {
        const QUIET_ROWS: usize = 10;
        let sqlite = |waiting| PlateIndexing {
            defer: true,
            waiting,
            quiet_rows: QUIET_ROWS,
        };
        let plan = |index_new, index_waiting| Plan {
            index_new,
            index_waiting,
        };
        // PostgreSQL: always indexed at once
        let postgres = PlateIndexing {
            defer: false,
            waiting: 0,
            quiet_rows: 100,
        };
        assert_eq!(postgres.plan(4096), plan(true, 0));
        // a quiet round: indexed at once, with a chunk of those waiting
        assert_eq!(sqlite(0).plan(QUIET_ROWS - 1), plan(true, 0));
        assert_eq!(sqlite(25).plan(1), plan(true, 25));
        assert_eq!(
            sqlite(MOST_TO_INDEX).plan(1),
            plan(true, INDEX_CHUNK),
            "a chunk at a time"
        );
        // a busy round: left to later, unless that leaves more than the most waiting
        assert_eq!(sqlite(0).plan(QUIET_ROWS), plan(false, 0));
        assert_eq!(sqlite(MOST_TO_INDEX - 4096).plan(4096), plan(false, 0));
        assert_eq!(sqlite(MOST_TO_INDEX - 10).plan(4096), plan(false, 4086));
        assert_eq!(sqlite(MOST_TO_INDEX).plan(4096), plan(false, 4096));

        let mut indexing = sqlite(10);
        indexing.written(4096, sqlite(10).plan(4096), 0);
        assert_eq!(indexing.waiting, 4106);
        indexing.written(5, indexing.plan(5), 4106);
        assert_eq!(indexing.waiting, 0);
        // indexing fewer than asked: none were left (a count that was off is corrected)
        let mut indexing = sqlite(500);
        indexing.indexed(500, 120);
        assert_eq!(indexing.waiting, 0);
    }
}
