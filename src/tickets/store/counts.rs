//! How many tickets a provider has that a listing's filters keep. Without a filter, SQLite
//! keeps an earlier count in memory and brings it up to date; without a filter or with only a
//! lot's, PostgreSQL reads the counts the tickets' triggers keep (migration postgres/0010),
//! which [`spawn_folding`] keeps short to read. Any other filter is counted.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::watch;

use crate::events::bus::stopping;
use crate::http::AppError;
use crate::store::{Backend, Param, Store};
use crate::{bind_all, read};

use super::list::TicketFilter;

/// How long a provider's ticket count (SQLite, no filter) is brought up to date before it is
/// counted whole again. A count stays right (see [`sqlite_count`]); this only bounds how
/// long a change made by hand to the database file goes unseen.
pub const COUNT_FRESH_FOR: Duration = Duration::from_secs(10 * 60);

/// A provider's tickets counted: `tickets` of them have an id up to `through_id`, the first of
/// them `first_id`, by a count that began with all of them at `whole_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub through_id: i64,
    pub tickets: i64,
    pub first_id: Option<i64>,
    pub whole_at: Instant,
}

/// How a provider's tickets are counted on SQLite when no filter is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recount {
    /// All of its entries in the (provider, ticketId) index.
    Whole,
    /// The rows after an earlier count, in id order, added to it.
    Since(Counted),
}

/// Whether the earlier count `kept` is brought up to `last_id`, the table's last id now, by
/// reading the rows after it. On a million tickets a row read in id order cost SQLite about
/// 0.06 µs and an index entry counted about 0.04 µs (BENCHMARKS.md), so it is, while those
/// rows are no more than the provider had, and for [`COUNT_FRESH_FOR`] after a whole count.
fn recount(kept: Option<Counted>, last_id: Option<i64>, now: Instant) -> Recount {
    match (kept, last_id) {
        (Some(kept), Some(last_id))
            if now.saturating_duration_since(kept.whole_at) < COUNT_FRESH_FOR
                && kept.through_id <= last_id
                && last_id - kept.through_id <= kept.tickets =>
        {
            Recount::Since(kept)
        }
        _ => Recount::Whole,
    }
}

/// How many tickets the provider has, with the first's id and the table's last id, on SQLite
/// when no filter is given: its earlier count brought up to date ([`recount`]), or
/// `whole_sql`, which counts them all; either is kept for the next. Counting a provider with
/// a million tickets whole took 25-45 ms, every page. An earlier count stays right: SQLite
/// commits one writer at a time and its ids only grow, so every ticket up to the last id a
/// read sees was there for that read, and tickets are never deleted and never change
/// provider (an update keeps its row); for the same reasons the first ticket's id stays the
/// first (a delete by hand leaves it lower than the first left, still a bound below every
/// ticket). The count of a filter is not kept: an update can change a ticket's lot, plate and
/// time.
async fn sqlite_count(
    store: &Store,
    provider_id: i64,
    whole_sql: &str,
) -> Result<(i64, Option<i64>, Option<i64>), AppError> {
    let counts = &store.caches().ticket_counts;
    if let Some(kept) = counts.get(&provider_id) {
        let last_id: Option<i64> = read!(store, |db| {
            sqlx::query_scalar("SELECT MAX(id) FROM tickets")
                .fetch_one(db)
                .await?
        });
        if let (Recount::Since(kept), Some(through_id)) =
            (recount(Some(kept), last_id, Instant::now()), last_id)
        {
            let (added, added_first): (i64, Option<i64>) = read!(store, |db| {
                sqlx::query_as(
                    "SELECT COUNT(*), MIN(id) FROM tickets NOT INDEXED \
                     WHERE id > $1 AND id <= $2 AND provider_id = $3",
                )
                .bind(kept.through_id)
                .bind(through_id)
                .bind(provider_id)
                .fetch_one(db)
                .await?
            });
            let now = Counted {
                through_id,
                tickets: kept.tickets + added,
                first_id: kept.first_id.or(added_first),
                whole_at: kept.whole_at,
            };
            counts.put(provider_id, now);
            return Ok((now.tickets, now.first_id, last_id));
        }
    }
    let whole_at = Instant::now();
    let (tickets, first_id, last_id): (i64, Option<i64>, Option<i64>) = read!(store, |db| {
        sqlx::query_as(whole_sql)
            .bind(provider_id)
            .fetch_one(db)
            .await?
    });
    counts.put(
        provider_id,
        Counted {
            through_id: last_id.unwrap_or(0),
            tickets,
            first_id,
            whole_at,
        },
    );
    Ok((tickets, first_id, last_id))
}

/// How many tickets of `provider_id` pass `filter`, an id at or below the first of them, and
/// the table's last id: kept counts where there are, otherwise `count_sql` (which reads all
/// three, binding `params`); SQLite's kept count is counted whole with it now and then.
pub(super) async fn count(
    store: &Store,
    provider_id: i64,
    filter: &TicketFilter,
    count_sql: &str,
    params: &[Param<'_>],
) -> Result<(i64, Option<i64>, Option<i64>), AppError> {
    let lot_at_most = filter.license_norm.is_none() && filter.updated_since.is_none();
    match store.backend() {
        Backend::Sqlite(_) if lot_at_most && filter.parking_lot_id.is_none() => {
            sqlite_count(store, provider_id, count_sql).await
        }
        Backend::Postgres(pool) if lot_at_most => {
            postgres_count(pool, provider_id, filter.parking_lot_id).await
        }
        _ => Ok(read!(store, |db| {
            bind_all!(sqlx::query_as(count_sql), params)
                .fetch_one(db)
                .await?
        })),
    }
}

/// The provider's count on PostgreSQL, in every lot or in one, and its first ticket's id:
/// its rows in `ticket_counts` and its changes not yet folded into them, in one statement and
/// so one snapshot, which sees each change either still waiting or already folded. Both are
/// written by the tickets' triggers in the transaction that writes the tickets, so the count
/// is that of the tickets the same snapshot sees. The first id is the least written there:
/// a ticket deleted or moved away leaves it lower than the first left, still a bound below
/// every ticket counted.
async fn postgres_count(
    pool: &PgPool,
    provider_id: i64,
    lot: Option<i64>,
) -> Result<(i64, Option<i64>, Option<i64>), AppError> {
    let in_lot = if lot.is_some() {
        " AND parking_lot_id = $2"
    } else {
        ""
    };
    let sql = format!(
        "WITH kept AS ( \
             SELECT tickets, first_id FROM ticket_counts WHERE provider_id = $1{in_lot} \
             UNION ALL \
             SELECT tickets, first_id FROM ticket_count_changes WHERE provider_id = $1{in_lot}) \
         SELECT COALESCE(SUM(tickets), 0)::BIGINT, MIN(first_id), \
                (SELECT MAX(id) FROM tickets) \
           FROM kept"
    );
    let query = sqlx::query_as(&sql).bind(provider_id);
    let query = match lot {
        Some(lot) => query.bind(lot),
        None => query,
    };
    Ok(query.fetch_one(pool).await?)
}

/// How often an instance folds the count changes into the counts on PostgreSQL: each batch
/// of tickets leaves a row for each provider and lot in it, so a provider's changes are the
/// batches of about this long (a few hundred a second while tickets pour in).
pub const FOLD_EVERY: Duration = Duration::from_secs(1);

/// Folds the waiting count changes into `ticket_counts`, in one transaction; another
/// instance folding at the same moment is left to it (an advisory lock, tried). The changes
/// folded are those this transaction deletes, so none is added twice, and the counts are
/// written in key order. Answers how many changes it folded.
pub async fn fold_counts(pool: &PgPool) -> Result<u64, AppError> {
    /// The advisory lock's key: "tcnt" in ASCII.
    const FOLDING: i64 = 0x7463_6e74;
    let mut tx = pool.begin().await?;
    let mine: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(FOLDING)
        .fetch_one(&mut *tx)
        .await?;
    if !mine {
        return Ok(0);
    }
    let folded: i64 = sqlx::query_scalar(
        "WITH folded AS (DELETE FROM ticket_count_changes \
                          RETURNING provider_id, parking_lot_id, tickets, first_id), \
              counted AS ( \
                  INSERT INTO ticket_counts (provider_id, parking_lot_id, tickets, first_id) \
                  SELECT provider_id, parking_lot_id, SUM(tickets)::BIGINT, MIN(first_id) \
                    FROM folded \
                   GROUP BY provider_id, parking_lot_id ORDER BY provider_id, parking_lot_id \
                  ON CONFLICT (provider_id, parking_lot_id) \
                  DO UPDATE SET tickets = ticket_counts.tickets + excluded.tickets, \
                                first_id = LEAST(ticket_counts.first_id, excluded.first_id)) \
         SELECT COUNT(*) FROM folded",
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(u64::try_from(folded).unwrap_or(0))
}

/// On PostgreSQL, folds the count changes every [`FOLD_EVERY`] until shutdown.
pub fn spawn_folding(store: &Store, mut shutdown: watch::Receiver<bool>) {
    let Backend::Postgres(pool) = store.backend() else {
        return;
    };
    let pool = pool.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FOLD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(err) = fold_counts(&pool).await {
                        tracing::warn!(error = %err, "folding the ticket counts failed; will retry");
                    }
                }
                _ = stopping(&mut shutdown) => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_count_is_brought_up_to_date_while_the_rows_after_it_are_few() {
        let now = Instant::now();
        let kept = Counted {
            through_id: 1_000,
            tickets: 200,
            first_id: Some(3),
            whole_at: now,
        };
        assert_eq!(recount(None, Some(5), now), Recount::Whole, "nothing kept");
        assert_eq!(
            recount(Some(kept), None, now),
            Recount::Whole,
            "an empty table"
        );
        assert_eq!(recount(Some(kept), Some(1_000), now), Recount::Since(kept));
        assert_eq!(recount(Some(kept), Some(1_200), now), Recount::Since(kept));
        // more rows after it than the provider had: its index entries are fewer to count
        assert_eq!(recount(Some(kept), Some(1_201), now), Recount::Whole);
        // a table that lost rows since (not parkhub's doing): count again
        assert_eq!(recount(Some(kept), Some(999), now), Recount::Whole);
        // and now and then, however often it is brought up to date
        let later = kept.whole_at + COUNT_FRESH_FOR;
        let just_before = later - Duration::from_secs(1);
        assert_eq!(
            recount(Some(kept), Some(1_000), just_before),
            Recount::Since(kept)
        );
        assert_eq!(recount(Some(kept), Some(1_000), later), Recount::Whole);
    }
}
