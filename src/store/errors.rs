//! The backend differences in what a database error means, kept in one place.

use sqlx::error::DatabaseError;

/// Unique constraints a client can run into, with what to tell it. The first column is the
/// PostgreSQL constraint name, the second what SQLite's message names.
const UNIQUE_MESSAGES: &[(&str, &str, &str)] = &[
    (
        "parking_lots_pkey",
        "parking_lots.id",
        "a parking lot with this id already exists",
    ),
    (
        "parking_lots_carpark",
        "parking_lots.facility_no, parking_lots.carpark_no",
        "another parking lot has this facilityNo and carparkNo",
    ),
    (
        "principals_role_name_key",
        "principals.role, principals.name",
        "a principal with this role and name already exists",
    ),
];

pub fn describe_unique_violation(err: &dyn DatabaseError) -> String {
    let constraint = err.constraint().unwrap_or("");
    let message = err.message();
    UNIQUE_MESSAGES
        .iter()
        .find(|(pg, sqlite, _)| constraint == *pg || message.contains(sqlite))
        .map(|(_, _, text)| (*text).to_owned())
        .unwrap_or_else(|| "this would create a duplicate of an existing object".to_owned())
}

/// True when the error means "the database cannot serve now" (down, unreachable, full,
/// read-only, locked for too long) rather than "this request is wrong".
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLite: the primary result code is the low byte of the extended one.
                // BUSY 5, LOCKED 6, READONLY 8, IOERR 10, FULL 13, CANTOPEN 14.
                return code
                    .parse::<i64>()
                    .map(|c| matches!(c & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
                    .unwrap_or(false);
            }
            // PostgreSQL: connection exceptions, insufficient resources, operator intervention.
            code.starts_with("08") || code.starts_with("53") || code.starts_with("57")
        }
        _ => false,
    }
}

/// True when the database refused text a client sent: PostgreSQL stores no NUL character
/// (`character_not_in_repertoire`, `untranslatable_character`).
pub fn is_unstorable_text(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("22021" | "22P05")),
        _ => false,
    }
}
