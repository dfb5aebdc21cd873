//! The backend differences in what a database error means, kept in one place.

use sqlx::error::DatabaseError;

use crate::http::AppError;

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
    describe_unique(err.constraint().unwrap_or(""), err.message())
}

fn describe_unique(constraint: &str, message: &str) -> String {
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
                return code.parse::<i32>().is_ok_and(sqlite_code_is_unavailable);
            }
            // PostgreSQL: connection exceptions, insufficient resources, operator intervention.
            code.starts_with("08") || code.starts_with("53") || code.starts_with("57")
        }
        _ => false,
    }
}

/// SQLite's result codes for "cannot serve now" (the primary code is the low byte of the
/// extended one): BUSY 5, LOCKED 6, READONLY 8, IOERR 10, FULL 13, CANTOPEN 14.
fn sqlite_code_is_unavailable(code: i32) -> bool {
    matches!(code & 0xff, 5 | 6 | 8 | 10 | 13 | 14)
}

/// The extended result code of a failed rusqlite call, if SQLite gave one.
fn rusqlite_code(err: &rusqlite::Error) -> Option<i32> {
    match err {
        rusqlite::Error::SqliteFailure(failure, _) => Some(failure.extended_code),
        _ => None,
    }
}

/// An error of an SQLite statement run through rusqlite (the writer of group commit, the
/// inline readers), read as [`From<sqlx::Error>`](crate::http::AppError) reads sqlx's: what a
/// client caused is 409, what means "cannot serve now" 503, the rest 500.
pub fn from_rusqlite(err: rusqlite::Error) -> AppError {
    use rusqlite::ffi;
    match rusqlite_code(&err) {
        Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
            let message = err.to_string();
            AppError::conflict("duplicate", describe_unique("", &message))
        }
        Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => AppError::conflict(
            "referenced_object_missing",
            "an object this request refers to does not exist (any more)",
        ),
        _ if is_rusqlite_unavailable(&err) => AppError::Unavailable(err.into()),
        _ => AppError::internal(err),
    }
}

/// [`is_unavailable`] for rusqlite's errors.
pub fn is_rusqlite_unavailable(err: &rusqlite::Error) -> bool {
    rusqlite_code(err).is_some_and(sqlite_code_is_unavailable)
}

/// True when the database refused text a client sent: PostgreSQL stores no NUL character
/// (`character_not_in_repertoire`, `untranslatable_character`).
pub fn is_unstorable_text(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("22021" | "22P05")),
        _ => false,
    }
}
