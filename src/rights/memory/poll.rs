//! What the rights memory learns on PostgreSQL: the plates whose rights changed, which triggers
//! write to `right_changes` with the writing transaction's id (migrations/postgres/0006).
//!
//! Each poll is one statement: it takes a snapshot and reads the changes of the transactions
//! visible in it that were not visible in the previous poll's snapshot, so every committed
//! change is read exactly once, whatever order transactions commit in. A write this process
//! committed before a poll began is in what that poll read ([`Polls::polled`] is told the
//! count, [`crate::store::Store::writes_committed`]); another process's within
//! [`super::POLL_SERVES`], for a check polls when the latest poll is older than that.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::changes::{Changed, Gathering, NewTicket, PlateChanges};
use crate::http::AppError;

/// The snapshot now, and the changes (of a plate, or null: everything) made by the transactions
/// visible in it but not in the snapshot `$1`, at most `$2` of them, each with the ticket it
/// inserted (if it did) as it is in that snapshot; when there is none, one row with the
/// snapshot alone (`found` null).
const POLL_SQL: &str = "WITH changed AS ( \
         SELECT 1 AS found, plate, ticket FROM right_changes \
          WHERE xid >= pg_snapshot_xmin($1::pg_snapshot) \
            AND NOT pg_visible_in_snapshot(xid, $1::pg_snapshot) \
          LIMIT $2) \
     SELECT pg_current_snapshot()::text AS snapshot, c.found, c.plate, c.ticket, \
            t.license_norm AS now_of, t.status, t.ticket_id, pr.name AS provider, t.start_at, \
            t.end_at, t.parking_lot_id AS lot \
       FROM (SELECT 1) AS one \
       LEFT JOIN (changed c \
                  LEFT JOIN tickets t ON t.id = c.ticket \
                  LEFT JOIN principals pr ON pr.id = t.provider_id) ON TRUE";

/// A row of [`POLL_SQL`].
#[derive(sqlx::FromRow)]
struct PollRow {
    snapshot: String,
    found: Option<i32>,
    plate: Option<String>,
    #[sqlx(flatten)]
    ticket: NewTicket,
}

/// How long the changes are kept in `right_changes` for every instance to read.
pub(super) const CHANGES_KEPT_FOR: Duration = Duration::from_secs(10 * 60);
/// A poll longer ago than this may have missed changes deleted since: read everything again.
const TRUST_A_POLL_FOR: Duration = Duration::from_secs(5 * 60);
/// How often a snapshot is remembered as a mark to delete changes by.
const MARK_EVERY: Duration = Duration::from_secs(10);

/// What the polls have found (see the module's description).
#[derive(Default)]
pub(super) struct Polls(Mutex<State>);

#[derive(Default)]
struct State {
    /// The latest poll's snapshot, and when it was taken.
    snapshot: Option<(String, Instant)>,
    /// Polls that found something to apply: the memory is current when it has applied what
    /// the first `received` of them found.
    received: i64,
    plates: Gathering,
    everything: bool,
    /// This process's writes committed before the latest poll began.
    synced: u64,
    /// Snapshots' `xmin`s, oldest first, with when they were taken.
    marks: VecDeque<(Instant, String)>,
}

impl Polls {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many polls the memory must have applied to answer a check, if the latest poll is no
    /// older than `within` and began after this process's `writes`.
    pub(super) fn latest(&self, writes: u64, within: Duration) -> Option<i64> {
        let state = self.state();
        let (_, at) = state.snapshot.as_ref()?;
        (at.elapsed() < within && state.synced >= writes).then_some(state.received)
    }

    /// The snapshot to read changes since: `None` before the first poll and after a long pause.
    fn since(&self) -> Option<String> {
        let state = self.state();
        let (snapshot, at) = state.snapshot.as_ref()?;
        (at.elapsed() < TRUST_A_POLL_FOR).then(|| snapshot.clone())
    }

    /// Records a poll that began after this process's `writes`, took `snapshot` and found
    /// `changed` (`None`: everything); returns the polls to apply.
    fn polled(&self, writes: u64, snapshot: String, changed: Option<PlateChanges>) -> i64 {
        let mut state = self.state();
        let now = Instant::now();
        if state
            .marks
            .back()
            .is_none_or(|(at, _)| at.elapsed() >= MARK_EVERY)
        {
            if let Some((xmin, _)) = snapshot.split_once(':') {
                state.marks.push_back((now, xmin.to_owned()));
            }
        }
        state.snapshot = Some((snapshot, now));
        state.synced = state.synced.max(writes);
        match changed {
            Some(changes) if changes.is_empty() => {}
            Some(changes) => {
                state.received += 1;
                if !state.everything {
                    state.plates.merge(changes);
                }
            }
            None => {
                state.received += 1;
                state.everything = true;
                state.plates = Gathering::default();
            }
        }
        state.received
    }

    /// The `xmin` of the newest snapshot taken at least `kept` ago, if any: every change older
    /// than it has been read by every instance that polled since (dropped with older marks).
    pub(super) fn forget_before(&self, kept: Duration) -> Option<String> {
        let mut state = self.state();
        let mut found = None;
        while state
            .marks
            .front()
            .is_some_and(|(at, _)| at.elapsed() >= kept)
        {
            found = state.marks.pop_front().map(|(_, xmin)| xmin);
        }
        found
    }

    /// Takes what was found and not applied, with the count of polls it covers; everything when
    /// more than `most` plates (or when `loaded` is false).
    pub(super) fn take(&self, loaded: bool, most: usize) -> (i64, Changed) {
        let mut state = self.state();
        let plates = std::mem::take(&mut state.plates);
        let everything = std::mem::take(&mut state.everything);
        let changed = if everything || !loaded || plates.len() > most {
            Changed::Everything
        } else {
            Changed::Plates(plates.finish())
        };
        (state.received, changed)
    }

    /// Gives back what [`Polls::take`] took, when applying it failed.
    pub(super) fn put_back(&self, changed: Changed) {
        let mut state = self.state();
        match changed {
            Changed::Plates(changes) => state.plates.merge(changes),
            Changed::Everything => state.everything = true,
        }
    }
}

/// Reads the changes committed since the latest poll (see the module's description); `writes`:
/// this process's writes committed before it began. Returns the polls to apply. One at a time:
/// the caller holds the memory's poll lock.
pub(super) async fn poll(
    pool: &PgPool,
    polls: &Polls,
    writes: u64,
    most: usize,
) -> Result<i64, AppError> {
    let Some(since) = polls.since() else {
        let snapshot: String = sqlx::query_scalar("SELECT pg_current_snapshot()::text")
            .fetch_one(pool)
            .await?;
        return Ok(polls.polled(writes, snapshot, None));
    };
    let rows: Vec<PollRow> = sqlx::query_as(POLL_SQL)
        .bind(since)
        .bind(i64::try_from(most).unwrap_or(i64::MAX).saturating_add(1))
        .fetch_all(pool)
        .await?;
    let snapshot = rows
        .first()
        .map(|row| row.snapshot.clone())
        .ok_or_else(|| {
            AppError::internal(anyhow::anyhow!("a poll of the rights changed gave no row"))
        })?;
    let mut gathering = Gathering::default();
    let mut changes = 0;
    let mut everything = false;
    for row in rows.into_iter().filter(|row| row.found.is_some()) {
        changes += 1;
        everything |= !gathering.push(row.plate, row.ticket);
    }
    let changed = (changes <= most && !everything).then(|| gathering.finish());
    Ok(polls.polled(writes, snapshot, changed))
}

/// Deletes the changes every instance has read: those older than a snapshot taken
/// [`CHANGES_KEPT_FOR`] ago (an instance that has not polled for [`TRUST_A_POLL_FOR`] reads
/// everything again).
pub(super) async fn forget_old_changes(pool: &PgPool, polls: &Polls) -> Result<(), AppError> {
    if let Some(xmin) = polls.forget_before(CHANGES_KEPT_FOR) {
        sqlx::query("DELETE FROM right_changes WHERE xid < $1::text::xid8")
            .bind(xmin)
            .execute(pool)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plates(changed: Changed) -> Option<Vec<String>> {
        match changed {
            Changed::Plates(changes) => Some(changes.forget),
            Changed::Everything => None,
        }
    }

    fn found(list: &[&str]) -> Option<PlateChanges> {
        Some(PlateChanges::forget(list))
    }

    fn names(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|p| p.to_string()).collect())
    }

    const NOW: Duration = Duration::from_secs(1);

    #[test]
    fn nothing_is_current_before_a_poll_and_everything_is_read_after_the_first() {
        let polls = Polls::default();
        assert_eq!(polls.latest(0, NOW), None);
        assert_eq!(polls.since(), None);
        assert_eq!(polls.polled(0, "10:12:".into(), None), 1);
        assert_eq!(polls.latest(0, NOW), Some(1));
        assert_eq!(polls.since().as_deref(), Some("10:12:"));
        let (received, changed) = polls.take(true, 10);
        assert_eq!((received, plates(changed)), (1, None));
        assert_eq!(
            polls.polled(0, "12:12:".into(), found(&[])),
            1,
            "nothing new"
        );
        polls.polled(0, "12:13:".into(), found(&["ABC123", "XYZ9"]));
        polls.polled(0, "13:14:".into(), found(&["ABC123", "~0a1b"]));
        let (received, changed) = polls.take(true, 10);
        assert_eq!(received, 3);
        assert_eq!(plates(changed), names(&["ABC123", "XYZ9", "~0a1b"]));
        polls.polled(0, "14:15:".into(), None);
        polls.polled(0, "15:16:".into(), found(&["ABC123"]));
        assert_eq!(plates(polls.take(true, 10).1), None, "a change of all");
        assert_eq!(
            polls.latest(0, Duration::ZERO),
            None,
            "an old poll: poll again"
        );
    }

    #[test]
    fn too_many_plates_or_not_loaded_read_everything_and_a_failed_read_is_given_back() {
        let polls = Polls::default();
        polls.polled(0, "1:1:".into(), None);
        polls.take(true, 10);
        polls.polled(0, "1:2:".into(), found(&["A1", "B2"]));
        polls.polled(0, "2:3:".into(), found(&["C3"]));
        assert_eq!(plates(polls.take(true, 2).1), None);
        polls.polled(0, "3:4:".into(), found(&["A1"]));
        assert_eq!(plates(polls.take(false, 2).1), None);
        polls.polled(0, "4:5:".into(), found(&["A1"]));
        let (_, changed) = polls.take(true, 2);
        polls.put_back(changed);
        assert_eq!(plates(polls.take(true, 2).1), names(&["A1"]));
    }

    #[test]
    fn own_writes_wait_for_a_poll_that_began_after_them() {
        let polls = Polls::default();
        polls.polled(2, "1:1:".into(), None);
        assert_eq!(polls.latest(2, NOW), Some(1));
        assert_eq!(polls.latest(3, NOW), None, "a write after the poll began");
        polls.polled(3, "1:2:".into(), found(&[]));
        assert_eq!(polls.latest(3, NOW), Some(1));
        polls.polled(1, "2:2:".into(), found(&[]));
        assert_eq!(polls.latest(3, NOW), Some(1), "never goes back");
    }

    #[test]
    fn changes_are_deleted_by_a_snapshot_old_enough() {
        let polls = Polls::default();
        polls.polled(0, "100:105:101".into(), None);
        polls.polled(0, "106:106:".into(), found(&[]));
        assert_eq!(polls.forget_before(Duration::from_secs(60)), None);
        assert_eq!(
            polls.forget_before(Duration::ZERO).as_deref(),
            Some("100"),
            "one mark per MARK_EVERY"
        );
        assert_eq!(polls.forget_before(Duration::ZERO), None, "used once");
    }
}
