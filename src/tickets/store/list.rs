//! Listing a provider's tickets: which of them (the filters), how many (the count, kept for a
//! listing without a filter, see [`super::counts`]), and how each page is read.

use jiff::Timestamp;

use crate::domain::TimeZoneName;
use crate::domain::time::{from_micros, to_micros};
use crate::http::AppError;
use crate::store::{Backend, Param, Store};

use super::counts::count;
use crate::{bind_all, read};

/// A stored ticket with what is needed to render it: the lot's zone code and time zone.
#[derive(Debug, Clone)]
pub struct StoredTicket {
    pub ticket_id: String,
    pub parking_lot_id: i64,
    pub zone_code: i64,
    pub time_zone: TimeZoneName,
    pub license_raw: String,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
    pub cost: Option<(i64, i64, String)>,
    pub canceled_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct TicketRow {
    ticket_id: String,
    parking_lot_id: i64,
    zone_code: i64,
    time_zone: String,
    license_raw: String,
    start_at: i64,
    end_at: Option<i64>,
    cost_amount: Option<i64>,
    cost_vat_rate: Option<i64>,
    cost_currency: Option<String>,
    status: String,
    canceled_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl TicketRow {
    fn into_ticket(self) -> Result<StoredTicket, AppError> {
        let time_zone = TimeZoneName::parse(&self.time_zone)
            .map_err(|e| AppError::internal(anyhow::anyhow!("lot {}: {e}", self.parking_lot_id)))?;
        let cost = match (self.cost_amount, self.cost_vat_rate, self.cost_currency) {
            (Some(a), Some(v), Some(c)) => Some((a, v, c)),
            _ => None,
        };
        let canceled_at = match self.status.as_str() {
            "canceled" => Some(from_micros(self.canceled_at.unwrap_or(self.updated_at))),
            _ => None,
        };
        Ok(StoredTicket {
            ticket_id: self.ticket_id,
            parking_lot_id: self.parking_lot_id,
            zone_code: self.zone_code,
            time_zone,
            license_raw: self.license_raw,
            start: from_micros(self.start_at),
            end: self.end_at.map(from_micros),
            cost,
            canceled_at,
            created_at: from_micros(self.created_at),
            updated_at: from_micros(self.updated_at),
        })
    }
}

/// Which of a provider's tickets to list.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub license_norm: Option<String>,
    pub parking_lot_id: Option<i64>,
    pub updated_since: Option<Timestamp>,
}

/// How a page of a provider's tickets is read. Neither database can tell from its statistics
/// (SQLite has none unless someone runs ANALYZE) where in the table a provider's tickets lie;
/// the count, read first, says how many there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageRead {
    /// The table in id order up to `through_id`, keeping the matches: no sort, and it stops
    /// once the page is full. Cheap when matches are dense. If the page is not complete by
    /// then, the matches were not spread as assumed and the page is read by index after all.
    InIdOrder { through_id: i64 },
    /// Every match through the filters' index, then sorted by id. Cheap when they are few.
    ByIndex,
}

/// Rows a read in id order may pass over for each match it keeps, on SQLite (and on
/// PostgreSQL, [`ROWS_PER_MATCH_POSTGRES`]). On a million tickets (release builds on 2 cores,
/// BENCHMARKS.md) SQLite read a row in id order in 0.05-0.07 µs, and found and sorted matches
/// by index in 0.45 µs a match where they lay together and 1.5-2 µs where spread; PostgreSQL
/// walked its primary key and the rows in 0.46 µs a row, and found and sorted by index in
/// about 1 µs a match. Within these the read in id order costs about what the index way does
/// at its cheapest, so one that comes back short (the matches all further on) costs the page
/// at most about twice what the index way alone would have.
const ROWS_PER_MATCH_SQLITE: i128 = 5;
/// See [`ROWS_PER_MATCH_SQLITE`].
const ROWS_PER_MATCH_POSTGRES: i128 = 2;

/// What a page reads of each ticket ([`TicketRow`]), with its lot as `l`.
const PAGE_COLUMNS: &str = "t.ticket_id, t.parking_lot_id, l.zone_code, l.time_zone, \
                            t.license_raw, t.start_at, t.end_at, t.cost_amount, \
                            t.cost_vat_rate, t.cost_currency, t.status, t.canceled_at, \
                            t.created_at, t.updated_at";

/// Which matches a page reads, counted from the start or, for a page nearer the end of the
/// matches than the start, from the end in reverse (then turned around): a page is never
/// further than half the matches from where its read begins, so the last page costs what the
/// first does. A read from the end leaves out what was created after the count, so the
/// matches it counts back from are those counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    offset: i64,
    limit: i64,
    from_end: bool,
}

impl Window {
    /// The page of `limit` matches after `offset`, of `total` (`offset < total`).
    fn of(total: i64, offset: i64, limit: i64) -> Self {
        let to_end = total.saturating_sub(offset);
        let from_end = to_end.saturating_sub(limit).max(0);
        if from_end < offset {
            Self {
                offset: from_end,
                limit: limit.min(to_end),
                from_end: true,
            }
        } else {
            Self {
                offset,
                limit,
                from_end: false,
            }
        }
    }
}

/// The read for the page that ends `offset + limit` matches in, of `matches` whose ids run
/// from `first_id` (the first match's where it is known, or an id below it, at worst the
/// table's first) to `last_id`. The matches are taken to be spread evenly, so a read
/// in id order passes `rows / matches` rows for each one it keeps; it is tried if that stays
/// within `rows_per_match` (above), and never reads further than that, so tickets that all
/// come late (a provider that started last) cost at most that much before the index.
fn page_read(
    rows_per_match: i128,
    matches: i64,
    first_id: i64,
    last_id: i64,
    offset: i64,
    limit: i64,
) -> PageRead {
    if matches <= 0 {
        return PageRead::ByIndex;
    }
    let rows = (i128::from(last_id) - i128::from(first_id) + 1).max(i128::from(matches));
    let kept = i128::from(offset.saturating_add(limit).min(matches));
    let budget = rows_per_match * i128::from(matches);
    if kept * rows / i128::from(matches) > budget {
        return PageRead::ByIndex;
    }
    let through = i128::from(first_id) + budget.min(rows) - 1;
    PageRead::InIdOrder {
        through_id: i64::try_from(through).unwrap_or(i64::MAX),
    }
}

/// The conditions of `provider_id` and the filters given (`$1`, `$2` … in order) and what
/// they bind: a filter not given is left out, since `$n IS NULL OR …` keeps a planner from
/// any index of its column. With a plate, the provider is written `+t.provider_id`: SQLite,
/// without statistics, would otherwise read the provider's every ticket rather than the
/// plate's few.
fn ticket_conditions(provider_id: i64, filter: &TicketFilter) -> (String, Vec<Param<'_>>) {
    let mut params = vec![Param::Int(provider_id)];
    let mut terms = vec![if filter.license_norm.is_some() {
        "+t.provider_id = $1".to_owned()
    } else {
        "t.provider_id = $1".to_owned()
    }];
    let given = [
        (
            "t.license_norm = ",
            filter.license_norm.as_deref().map(Param::Text),
        ),
        ("t.parking_lot_id = ", filter.parking_lot_id.map(Param::Int)),
        (
            "t.updated_at >= ",
            filter.updated_since.map(|t| Param::Int(to_micros(t))),
        ),
    ];
    for (term, param) in given {
        let Some(param) = param else { continue };
        params.push(param);
        terms.push(format!("{term}${}", params.len()));
    }
    (terms.join(" AND "), params)
}

/// One page of the provider's tickets in creation order (new tickets only ever come last, so
/// paging while tickets arrive never skips or repeats one), and the total count.
///
/// The count is read first: a page past it is empty without reading, and it chooses how the
/// page is read ([`page_read`]), on both backends: SQLite keeps no statistics unless someone
/// runs ANALYZE, and PostgreSQL's, like ANALYZE's on SQLite, take a provider's tickets to be
/// spread evenly, so both walked the whole table in id order for a provider whose tickets all
/// came last (50-190 ms for a page of 10,000 at the end of a million). On SQLite the index is
/// named: the (provider, ticketId) one, the (updated_at, provider_id) one for `updatedSince`
/// (migration sqlite/0009: a range of it, the provider read from the entries), and with a
/// plate its own index, which [`ticket_conditions`] leaves as the only choice. Without a
/// filter (or on PostgreSQL with only a lot's), the count is a kept one ([`count`]), and
/// with it the provider's first ticket's id, where a read in id order begins.
pub async fn list(
    store: &Store,
    provider_id: i64,
    filter: &TicketFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<StoredTicket>, i64), AppError> {
    let (where_, params) = ticket_conditions(provider_id, filter);
    let n = params.len();
    let sqlite = matches!(store.backend(), Backend::Sqlite(_));
    let by_index = match (sqlite, &filter.license_norm, &filter.updated_since) {
        (false, _, _) | (true, Some(_), _) => "",
        (true, None, Some(_)) => " INDEXED BY tickets_updated",
        // the UNIQUE (provider_id, ticket_id) of migration sqlite/0001
        (true, None, None) => " INDEXED BY sqlite_autoindex_tickets_1",
    };
    // The first match's id where its index holds it (SQLite's hold the row's id), so a read in
    // id order starts there; PostgreSQL would have to visit every match's row for it.
    let first = if sqlite {
        "MIN(t.id)"
    } else {
        "(SELECT MIN(id) FROM tickets)"
    };
    let count_sql = format!(
        "SELECT COUNT(*), {first}, (SELECT MAX(id) FROM tickets) \
         FROM tickets t{by_index} WHERE {where_}"
    );
    let (total, first_id, last_id) = count(store, provider_id, filter, &count_sql, &params).await?;
    if offset >= total {
        return Ok((Vec::new(), total));
    }
    let first_id = first_id.unwrap_or(0);
    let last_id = last_id.unwrap_or(0);
    let window = Window::of(total, offset, limit);
    let desc = if window.from_end { " DESC" } else { "" };
    let page_sql = |table: &str, bound: &str, order: &str| {
        format!(
            "SELECT {PAGE_COLUMNS} \
             FROM tickets t{table} JOIN parking_lots l ON l.id = t.parking_lot_id \
             WHERE {where_}{bound} ORDER BY {order}{desc} LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        )
    };
    let mut page = None;
    let rows_per_match = if sqlite {
        ROWS_PER_MATCH_SQLITE
    } else {
        ROWS_PER_MATCH_POSTGRES
    };
    // From the end, the read is that from the start mirrored: `through_id` counts down from
    // the last id as it would count up from the first.
    if let PageRead::InIdOrder { through_id } = page_read(
        rows_per_match,
        total,
        first_id,
        last_id,
        window.offset,
        window.limit,
    ) {
        let table = if sqlite { " NOT INDEXED" } else { "" };
        let (low, high) = if window.from_end {
            (
                first_id.saturating_add(last_id).saturating_sub(through_id),
                last_id,
            )
        } else {
            (first_id, through_id)
        };
        let bound = format!(" AND t.id >= ${} AND t.id <= ${}", n + 3, n + 4);
        let sql = page_sql(table, &bound, "t.id");
        let rows: Vec<TicketRow> = read!(store, |db| {
            bind_all!(sqlx::query_as(&sql), &params)
                .bind(window.limit)
                .bind(window.offset)
                .bind(low)
                .bind(high)
                .fetch_all(db)
                .await?
        });
        // complete: full, the last of the matches, or the whole table read
        let read = rows.len() as i64;
        let whole_table = if window.from_end {
            low <= first_id
        } else {
            high >= last_id
        };
        if read == window.limit || window.offset + read >= total || whole_table {
            page = Some(rows);
        }
    }
    let mut rows = match page {
        Some(rows) => rows,
        None => {
            // `t.id + 0` keeps PostgreSQL from walking the primary key in id order; the
            // tickets created since the count are left out, as it did not count them (from the
            // end, the offset counts back from the last it counted)
            let bound = format!(" AND t.id <= ${}", n + 3);
            let sql = if sqlite && filter.license_norm.is_none() && filter.parking_lot_id.is_none()
            {
                // The index named holds every condition and the row's id: the page's ids are
                // found and sorted in it alone, and only the page's rows are read.
                format!(
                    "SELECT {PAGE_COLUMNS} \
                     FROM tickets t JOIN parking_lots l ON l.id = t.parking_lot_id \
                     WHERE t.id IN (SELECT t.id FROM tickets t{by_index} WHERE {where_}{bound} \
                                    ORDER BY t.id{desc} LIMIT ${} OFFSET ${}) \
                     ORDER BY t.id{desc}",
                    n + 1,
                    n + 2
                )
            } else {
                page_sql(by_index, &bound, if sqlite { "t.id" } else { "t.id + 0" })
            };
            read!(store, |db| {
                bind_all!(sqlx::query_as(&sql), &params)
                    .bind(window.limit)
                    .bind(window.offset)
                    .bind(last_id)
                    .fetch_all(db)
                    .await?
            })
        }
    };
    if window.from_end {
        rows.reverse();
    }
    let tickets = rows
        .into_iter()
        .map(TicketRow::into_ticket)
        .collect::<Result<_, _>>()?;
    Ok((tickets, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_past_the_middle_is_read_from_the_end() {
        let start = |offset, limit| Window {
            offset,
            limit,
            from_end: false,
        };
        let end = |offset, limit| Window {
            offset,
            limit,
            from_end: true,
        };
        // 1,000 matches, pages of 50: the first half from the start, the rest from the end
        assert_eq!(Window::of(1_000, 0, 50), start(0, 50));
        assert_eq!(Window::of(1_000, 450, 50), start(450, 50));
        assert_eq!(Window::of(1_000, 500, 50), end(450, 50));
        assert_eq!(Window::of(1_000, 950, 50), end(0, 50));
        // a last page that is not full: only what is left, from the end
        assert_eq!(Window::of(1_010, 1_000, 50), end(0, 10));
        assert_eq!(Window::of(3, 2, 2), end(0, 1));
        // one page holds them all: from the start
        assert_eq!(Window::of(3, 0, 500), start(0, 500));
        assert_eq!(Window::of(1, 0, 1), start(0, 1));
        // offsets that do not fall on a page's edge read the same matches either way
        for (total, offset, limit) in [(10, 7, 4), (10, 3, 4), (11, 6, 3), (9_999, 5_000, 500)] {
            let w = Window::of(total, offset, limit);
            let taken = limit.min(total - offset);
            let (first, last) = if w.from_end {
                (total - w.offset - w.limit, total - w.offset - 1)
            } else {
                (w.offset, w.offset + w.limit.min(total - w.offset) - 1)
            };
            assert_eq!(
                (first, last),
                (offset, offset + taken - 1),
                "{total} {offset} {limit}"
            );
        }
        // the extremes do not overflow
        assert_eq!(Window::of(i64::MAX, i64::MAX - 1, 500), end(0, 1));
        assert_eq!(Window::of(i64::MAX, 0, 500), start(0, 500));
    }

    #[test]
    fn dense_matches_are_read_in_id_order_and_few_by_index() {
        use PageRead::ByIndex;
        let in_order = |through_id| PageRead::InIdOrder { through_id };
        const SQLITE: i128 = ROWS_PER_MATCH_SQLITE;
        const POSTGRES: i128 = ROWS_PER_MATCH_POSTGRES;
        const M: i64 = 1_000_000;
        // a provider with most of a million tickets: every page, even the last, in id order,
        // and the read may go through the whole table
        assert_eq!(page_read(SQLITE, 990_000, 1, M, 0, 50), in_order(M));
        assert_eq!(page_read(SQLITE, 990_000, 1, M, 989_950, 50), in_order(M));
        // 1%: about 100 rows passed a match, so the pages that end within 5 x 10,000 rows are
        // read in id order, no further than that; those after by index
        assert_eq!(page_read(SQLITE, 10_000, 1, M, 0, 50), in_order(50_000));
        assert_eq!(page_read(SQLITE, 10_000, 1, M, 450, 50), in_order(50_000));
        assert_eq!(page_read(SQLITE, 10_000, 1, M, 500, 50), ByIndex);
        // ids need not start at 1 (tickets deleted at the start)
        assert_eq!(
            page_read(SQLITE, 10_000, 500_001, 1_500_000, 0, 50),
            in_order(550_000)
        );
        // 100 of a million: by index from the first page
        assert_eq!(page_read(SQLITE, 100, 1, M, 0, 50), ByIndex);
        // a page past the matches needs only the matches
        assert_eq!(page_read(SQLITE, 3, 1, 3, 0, 500), in_order(3));
        // tests/tickets_list.rs: 78 of 90 in id order, 2 by index, 10 in id order through 50 first
        assert_eq!(page_read(SQLITE, 78, 1, 90, 0, 7), in_order(90));
        assert_eq!(page_read(SQLITE, 2, 1, 90, 0, 7), ByIndex);
        assert_eq!(page_read(SQLITE, 10, 1, 90, 0, 5), in_order(50));
        assert_eq!(page_read(SQLITE, 10, 1, 90, 5, 5), ByIndex);
        // PostgreSQL's read in id order costs more a row: the 1% read so for its first four
        // pages only, through 20,000 rows, and a provider with most of the tickets as on SQLite
        assert_eq!(page_read(POSTGRES, 10_000, 1, M, 0, 50), in_order(20_000));
        assert_eq!(page_read(POSTGRES, 10_000, 1, M, 150, 50), in_order(20_000));
        assert_eq!(page_read(POSTGRES, 10_000, 1, M, 200, 50), ByIndex);
        assert_eq!(page_read(POSTGRES, 990_000, 1, M, 989_950, 50), in_order(M));
        // nothing matches, an empty table, or ids that say less than the count (never): no
        // division by zero, no overflow at the extremes
        assert_eq!(page_read(SQLITE, 0, 1, M, 0, 50), ByIndex);
        assert_eq!(page_read(SQLITE, 50, 0, 0, 0, 50), in_order(49));
        assert_eq!(
            page_read(SQLITE, i64::MAX, 1, i64::MAX, i64::MAX, 500),
            in_order(i64::MAX)
        );
        assert_eq!(
            page_read(SQLITE, 1, i64::MIN, i64::MAX, i64::MAX, 500),
            ByIndex
        );
    }

    #[test]
    fn only_the_filters_given_are_conditions() {
        let none = TicketFilter::default();
        let (terms, params) = ticket_conditions(7, &none);
        assert_eq!(terms, "t.provider_id = $1");
        assert_eq!(params, [Param::Int(7)]);
        let since = Timestamp::from_second(5).unwrap();
        let every = TicketFilter {
            license_norm: Some("ABC123".into()),
            parking_lot_id: Some(12),
            updated_since: Some(since),
        };
        let (terms, params) = ticket_conditions(7, &every);
        assert_eq!(
            terms,
            "+t.provider_id = $1 AND t.license_norm = $2 AND t.parking_lot_id = $3 \
             AND t.updated_at >= $4"
        );
        assert_eq!(
            params,
            [
                Param::Int(7),
                Param::Text("ABC123"),
                Param::Int(12),
                Param::Int(5_000_000)
            ]
        );
        let lot_and_since = TicketFilter {
            parking_lot_id: Some(12),
            updated_since: Some(since),
            ..TicketFilter::default()
        };
        assert_eq!(
            ticket_conditions(7, &lot_and_since),
            (
                "t.provider_id = $1 AND t.parking_lot_id = $2 AND t.updated_at >= $3".to_owned(),
                vec![Param::Int(7), Param::Int(12), Param::Int(5_000_000)]
            )
        );
    }
}
