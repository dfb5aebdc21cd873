//! Lookups of a few rows by an index, written once for both backends: on SQLite they run on the
//! caller's thread through the inline readers (see [`super::inline`]), on PostgreSQL through
//! the pool. The hot paths (entries, exits, checks) ask several each; through sqlx's SQLite
//! worker thread each one cost two thread hand-offs more than the query itself.
//!
//! A row type declares itself with [`lookup_row!`](crate::lookup_row), which derives sqlx's
//! mapping (by column name) and rusqlite's (by position: the SELECT lists the columns in the
//! order of the fields; debug builds check the names). Looking a column up by name compares it
//! with every column's name, and that was a quarter of the time of deciding a whole lot's rights.

use sqlx::postgres::PgRow;

use super::{Backend, Param, Store};
use crate::http::AppError;

/// A row either backend can give.
pub trait LookupRow: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin {
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

/// A one-column row: `SELECT 1 ...` or a single value.
impl LookupRow for (i64,) {
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((row.get(0)?,))
    }
}

/// Declares a struct that [`all`] and [`optional`] can read: it derives `sqlx::FromRow` and
/// implements [`LookupRow`] by position, field by field.
#[macro_export]
macro_rules! lookup_row {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[$field_meta:meta])* $field_vis:vis $field:ident : $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(sqlx::FromRow)]
        $vis struct $name {
            $($(#[$field_meta])* $field_vis $field: $ty),*
        }

        impl $crate::store::lookup::LookupRow for $name {
            fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                let mut column = 0usize;
                $(
                    debug_assert_eq!(
                        row.as_ref().column_name(column).ok(),
                        Some(stringify!($field)),
                        concat!("the SELECT read as ", stringify!($name), " lists its columns in another order"),
                    );
                    let $field = row.get(column)?;
                    column += 1;
                )*
                let _ = column;
                Ok(Self { $($field),* })
            }
        }
    };
}

/// The rows `sql` gives for `params`, which it names `$1`, `$2`, ... (in any order).
pub async fn all<T: LookupRow>(
    store: &Store,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<T>, AppError> {
    match store.backend() {
        Backend::Sqlite(db) => db.inline.read(|conn| {
            let mut statement = conn.prepare_cached(sql)?;
            bind_sqlite(&mut statement, params)?;
            let mut rows = statement.raw_query();
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(T::from_sqlite(row)?);
            }
            Ok(out)
        }),
        Backend::Postgres(pool) => Ok(crate::bind_all!(sqlx::query_as::<_, T>(sql), params)
            .fetch_all(pool)
            .await?),
    }
}

/// The one row `sql` gives for `params`, if any: `sql` finds at most one (a unique key, or
/// `LIMIT 1`).
pub async fn optional<T: LookupRow>(
    store: &Store,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Option<T>, AppError> {
    Ok(all(store, sql, params).await?.into_iter().next())
}

/// `$N` names the Nth parameter, as PostgreSQL reads it. SQLite numbers `$N` names in the order
/// it meets them, so each is bound by its name.
fn bind_sqlite(
    statement: &mut rusqlite::Statement<'_>,
    params: &[Param<'_>],
) -> rusqlite::Result<()> {
    const NAMES: [&str; 9] = ["$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9"];
    if statement.parameter_count() != params.len() || params.len() > NAMES.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            params.len(),
            statement.parameter_count(),
        ));
    }
    for (name, param) in NAMES.iter().zip(params) {
        let index = statement
            .parameter_index(name)?
            .ok_or_else(|| rusqlite::Error::InvalidParameterName((*name).to_owned()))?;
        match *param {
            Param::Text(text) => statement.raw_bind_parameter(index, text)?,
            Param::Int(int) => statement.raw_bind_parameter(index, int)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement_test(sql: &str, params: &[Param<'_>]) -> rusqlite::Result<Vec<(i64, String)>> {
        let conn = rusqlite::Connection::open_in_memory()?;
        conn.execute_batch(
            "CREATE TABLE t (n INTEGER, s TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');",
        )?;
        let mut statement = conn.prepare(sql)?;
        bind_sqlite(&mut statement, params)?;
        let mut rows = statement.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push((row.get(0)?, row.get(1)?));
        }
        Ok(out)
    }

    #[test]
    fn parameters_are_bound_by_their_number_not_their_place() {
        let rows = statement_test(
            "SELECT n, s FROM t WHERE n < $2 AND n > $1 ORDER BY n",
            &[Param::Int(1), Param::Int(3)],
        )
        .expect("runs");
        assert_eq!(rows, vec![(2, "b".to_owned())]);
    }

    #[test]
    fn a_parameter_used_twice_is_bound_once() {
        let rows = statement_test(
            "SELECT n, s FROM t WHERE s = $1 OR n = length($1) + 1 ORDER BY n",
            &[Param::Text("a")],
        )
        .expect("runs");
        assert_eq!(rows, vec![(1, "a".to_owned()), (2, "b".to_owned())]);
    }

    #[test]
    fn too_few_or_too_many_parameters_fail() {
        let sql = "SELECT n, s FROM t WHERE n > $1 AND n < $2";
        assert!(statement_test(sql, &[Param::Int(1)]).is_err());
        assert!(statement_test(sql, &[Param::Int(1), Param::Int(2), Param::Int(3)]).is_err());
        // More than it can name is refused, not bound in part.
        let ten = "SELECT n, s FROM t WHERE n IN ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
        assert!(statement_test(ten, &[Param::Int(1); 10]).is_err());
    }
}
