//! The operator's listing of the check log: a page of checks, newest first, by plate, lot and
//! period, each filter read from an index in its order.

use jiff::Timestamp;
use serde::Serialize;

use crate::domain::time::{from_micros, to_micros};
use crate::http::AppError;
use crate::store::{Param, Store};
use crate::{bind_all, read};

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckView {
    pub id: i64,
    /// Who asked: the principal's id and name.
    pub principal_id: i64,
    pub principal_name: String,
    /// Normal form; `~` and a keyed hash once past the retention.
    pub license_number: String,
    pub parking_lot_id: Option<i64>,
    pub zone_code: Option<i64>,
    /// The instant asked about, RFC 3339 UTC.
    pub at: String,
    pub allowed: bool,
    pub grace: bool,
    /// The kinds of right that applied.
    pub kinds: Vec<String>,
    pub checked_at: String,
}

#[derive(sqlx::FromRow)]
struct CheckRow {
    id: i64,
    principal_id: i64,
    principal_name: Option<String>,
    license_norm: String,
    parking_lot_id: Option<i64>,
    zone_code: Option<i64>,
    at: i64,
    allowed: bool,
    grace: bool,
    kinds: String,
    checked_at: i64,
}

#[derive(Debug, Default)]
pub struct CheckFilter {
    pub plate: Option<String>,
    pub parking_lot_id: Option<i64>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

impl CheckFilter {
    /// The conditions of the filters given (`$1`, `$2` … in order) as (column, the rest),
    /// and what they bind: a filter not given is left out of the SQL rather than written as
    /// `$n IS NULL OR …`, which no planner answers from an index (SQLite scanned the whole log
    /// for any filter).
    fn conditions(&self) -> (Vec<(&'static str, String)>, Vec<Param<'_>>) {
        let given = [
            (
                "c.license_norm",
                " = ",
                self.plate.as_deref().map(Param::Text),
            ),
            (
                "c.parking_lot_id",
                " = ",
                self.parking_lot_id.map(Param::Int),
            ),
            (
                "c.checked_at",
                " >= ",
                self.from.map(|t| Param::Int(to_micros(t))),
            ),
            (
                "c.checked_at",
                " < ",
                self.to.map(|t| Param::Int(to_micros(t))),
            ),
        ];
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        for (column, operator, param) in given {
            let Some(param) = param else { continue };
            params.push(param);
            conditions.push((column, format!("{operator}${}", params.len())));
        }
        (conditions, params)
    }

    /// The page's statement (newest first; `LIMIT` and `OFFSET` the last two parameters),
    /// the count's, and the filters' parameters.
    ///
    /// By plate, the checks are those in the plate index, read in its order, and those still
    /// waiting for it (see [`super::PlateIndexing`]), found through their own small index and sorted:
    /// two parts of one answer. There, the other filters' columns are written `+column`, which
    /// keeps SQLite from reading a lot's or a period's every check instead (it has no
    /// statistics to tell a plate is the narrower).
    fn statements(&self) -> (String, String, Vec<Param<'_>>) {
        let (conditions, params) = self.conditions();
        // `first`, then every condition, `+` before the columns not in `indexed`
        let matching = |first: &str, indexed: &[&str]| {
            let terms: Vec<String> = std::iter::once(first.to_owned())
                .filter(|term| !term.is_empty())
                .chain(conditions.iter().map(|(column, rest)| {
                    let plus = if indexed.contains(column) { "" } else { "+" };
                    format!("{plus}{column}{rest}")
                }))
                .collect();
            if terms.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", terms.join(" AND "))
            }
        };
        let (with, from, filter, count) = if self.plate.is_some() {
            let indexed = matching("c.plate_indexed", &["c.license_norm", "c.checked_at"]);
            let waiting = matching("NOT c.plate_indexed", &["c.license_norm"]);
            (
                format!(
                    "WITH waiting AS MATERIALIZED \
                     (SELECT {LISTED} FROM parking_right_checks c{waiting}) "
                ),
                format!(
                    "(SELECT {LISTED} FROM parking_right_checks c{indexed} \
                      UNION ALL SELECT * FROM waiting) c"
                ),
                String::new(),
                format!(
                    "SELECT (SELECT COUNT(*) FROM parking_right_checks c{indexed}) \
                          + (SELECT COUNT(*) FROM parking_right_checks c{waiting})"
                ),
            )
        } else {
            let all = matching("", &["c.parking_lot_id", "c.checked_at"]);
            (
                String::new(),
                "parking_right_checks c".to_owned(),
                all.clone(),
                format!("SELECT COUNT(*) FROM parking_right_checks c{all}"),
            )
        };
        let limit = params.len() + 1;
        let page = format!(
            "{with}SELECT {LISTED}, p.name AS principal_name \
             FROM {from} LEFT JOIN principals p ON p.id = c.principal_id{filter} \
             ORDER BY c.checked_at DESC, c.id DESC LIMIT ${limit} OFFSET ${}",
            limit + 1
        );
        (page, count, params)
    }
}

/// The columns a listing reads from the log.
const LISTED: &str = "c.id, c.principal_id, c.license_norm, c.parking_lot_id, c.zone_code, \
                      c.at, c.allowed, c.grace, c.kinds, c.checked_at";

/// A page of checks, newest first, and how many match. Each filter has an index that also
/// gives the order ((plate | lot, checked_at), checked_at), so a page and its count read only
/// the checks that match.
pub async fn list(
    store: &Store,
    filter: &CheckFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<CheckView>, i64), AppError> {
    let (page_sql, count_sql, params) = filter.statements();
    let (rows, total): (Vec<CheckRow>, i64) = read!(store, |db| {
        let rows = bind_all!(sqlx::query_as(&page_sql), &params)
            .bind(limit)
            .bind(offset)
            .fetch_all(db)
            .await?;
        let total = bind_all!(sqlx::query_scalar(&count_sql), &params)
            .fetch_one(db)
            .await?;
        (rows, total)
    });
    let views = rows
        .into_iter()
        .map(|r| CheckView {
            id: r.id,
            principal_id: r.principal_id,
            principal_name: r.principal_name.unwrap_or_default(),
            license_number: r.license_norm,
            parking_lot_id: r.parking_lot_id,
            zone_code: r.zone_code,
            at: from_micros(r.at).to_string(),
            allowed: r.allowed,
            grace: r.grace,
            kinds: r
                .kinds
                .split(',')
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect(),
            checked_at: from_micros(r.checked_at).to_string(),
        })
        .collect();
    Ok((views, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    /// Every combination of the four filters.
    fn filters() -> Vec<CheckFilter> {
        (0..16u8)
            .map(|bits| CheckFilter {
                plate: (bits & 1 != 0).then(|| "ABC123".to_owned()),
                parking_lot_id: (bits & 2 != 0).then_some(12),
                from: (bits & 4 != 0).then_some(Timestamp::UNIX_EPOCH),
                to: (bits & 8 != 0).then(Timestamp::now),
            })
            .collect()
    }

    #[test]
    fn only_the_filters_given_are_in_the_sql_numbered_in_order() {
        let filter = CheckFilter {
            plate: None,
            parking_lot_id: Some(12),
            from: None,
            to: Some(Timestamp::UNIX_EPOCH),
        };
        let (page, count, params) = filter.statements();
        assert!(
            page.contains(" WHERE c.parking_lot_id = $1 AND c.checked_at < $2 ORDER BY"),
            "{page}"
        );
        assert!(page.ends_with("LIMIT $3 OFFSET $4"), "{page}");
        assert!(
            count.ends_with(" WHERE c.parking_lot_id = $1 AND c.checked_at < $2"),
            "{count}"
        );
        assert!(matches!(params[..], [Param::Int(12), Param::Int(0)]));
        let none = CheckFilter::default();
        let (page, count, params) = none.statements();
        assert!(!page.contains("WHERE") && !count.contains("WHERE"));
        assert!(page.ends_with("LIMIT $1 OFFSET $2"), "{page}");
        assert!(params.is_empty());
    }

    #[test]
    fn by_plate_the_indexed_rows_and_those_waiting_make_one_answer() {
        let filter = CheckFilter {
            plate: Some("ABC123".to_owned()),
            parking_lot_id: None,
            from: Some(Timestamp::UNIX_EPOCH),
            to: None,
        };
        let (page, count, params) = filter.statements();
        for part in [
            "WHERE c.plate_indexed AND c.license_norm = $1 AND c.checked_at >= $2",
            "WHERE NOT c.plate_indexed AND c.license_norm = $1 AND +c.checked_at >= $2",
        ] {
            assert!(page.contains(part), "{page}");
            assert!(count.contains(part), "{count}");
        }
        assert!(page.contains("UNION ALL SELECT * FROM waiting"), "{page}");
        assert!(page.ends_with("LIMIT $3 OFFSET $4"), "{page}");
        assert!(matches!(params[..], [Param::Text("ABC123"), Param::Int(0)]));
    }

    /// SQLite's plan for `sql` with `params` (and two more for `LIMIT`/`OFFSET` if asked for).
    async fn plan(store: &Store, sql: String, params: Vec<Option<i64>>) -> Vec<String> {
        store
            .sqlite_read_blocking(move |conn| {
                let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let params = rusqlite::params_from_iter(params);
                statement
                    .query_map(params, |row| row.get::<_, String>(3))?
                    .collect()
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn every_filter_reads_an_index_in_the_order_listed() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("log.db").display());
        let store = Store::open(&url, &StoreOptions::default()).await.unwrap();
        for filter in filters() {
            let (page, count, params) = filter.statements();
            let values = |extra: usize| vec![Some(1); params.len() + extra];
            let page_plan = plan(&store, page, values(2)).await;
            let count_plan = plan(&store, count, values(0)).await;
            if filter.plate.is_some() {
                // the indexed part in the plate index's order, merged with the waiting part
                // (the only one sorted), found through its own index: no other scan
                for (what, steps) in [("page", &page_plan), ("count", &count_plan)] {
                    assert!(
                        steps
                            .iter()
                            .any(|s| s.contains("INDEX parking_right_checks_plate"))
                            && steps
                                .iter()
                                .any(|s| s.contains("INDEX parking_right_checks_to_index"))
                            && steps.iter().all(|s| {
                                !s.starts_with("SEARCH c")
                                    || s.contains("INDEX parking_right_checks_plate")
                            })
                            && steps.iter().all(|s| {
                                !s.starts_with("SCAN")
                                    || s.contains("parking_right_checks_to_index")
                                    || ["SCAN waiting", "SCAN c", "SCAN CONSTANT ROW"]
                                        .contains(&s.as_str())
                            }),
                        "{filter:?}: the {what} reads both indexes only: {steps:?}"
                    );
                }
                assert!(
                    page_plan.iter().any(|s| s == "MERGE (UNION ALL)"),
                    "{filter:?}: {page_plan:?}"
                );
                continue;
            }
            assert!(
                page_plan.iter().any(|step| step.contains("INDEX"))
                    && !page_plan.iter().any(|step| step.contains("TEMP B-TREE")),
                "{filter:?}: the page is read from an index in its order: {page_plan:?}"
            );
            let given = !params.is_empty();
            assert!(
                count_plan.iter().any(|step| step.starts_with("SEARCH")) == given,
                "{filter:?}: the count searches an index when filtered: {count_plan:?}"
            );
        }
    }
}
