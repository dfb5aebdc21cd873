//! SQLite reads run on the calling thread, for the hottest lookups.
//!
//! sqlx runs every SQLite statement on a worker thread of the connection's own: the query goes
//! over a channel, the worker wakes, runs it and sends the rows back, and the task wakes again.
//! For an indexed lookup that takes SQLite some microseconds, those hand-overs cost more than
//! the query (BENCHMARKS.md). These connections (rusqlite, over the same SQLite library that
//! sqlx links) run the statement where the caller is.
//!
//! That is only right for statements that cannot wait long: point lookups by an index, in WAL
//! mode, where a reader never waits for the writer. A read here holds no lock across an
//! `.await`, so at most one connection per thread that reads is ever open at once. Reads of
//! many rows use the same connections from a blocking thread instead
//! ([`super::Store::sqlite_read_blocking`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::errors::{from_rusqlite, is_rusqlite_unavailable};
use crate::http::AppError;

/// Statements each connection keeps prepared.
const STATEMENTS: usize = 32;

/// A rusqlite connection to an existing SQLite file as the store uses them (the inline readers,
/// the group-commit writer): waits up to `busy_timeout` for a lock, runs `setup` (its
/// per-connection pragmas) and keeps up to `statements` statements prepared.
pub(super) fn connect(
    path: &Path,
    busy_timeout: Duration,
    setup: &str,
    statements: usize,
) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    conn.execute_batch(setup)?;
    conn.set_prepared_statement_cache_capacity(statements);
    Ok(conn)
}

/// Read-only connections to one SQLite file, opened as needed and reused.
pub struct InlineReader {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
}

impl InlineReader {
    /// Opens one connection now, so that a file that cannot be read fails at start-up.
    pub fn open(path: PathBuf, busy_timeout: Duration) -> Result<Self, rusqlite::Error> {
        let reader = Self {
            path,
            busy_timeout,
            idle: Mutex::new(Vec::new()),
        };
        let first = reader.connect()?;
        reader.give_back(first);
        Ok(reader)
    }

    fn connect(&self) -> Result<Connection, rusqlite::Error> {
        connect(
            &self.path,
            self.busy_timeout,
            "PRAGMA query_only = ON;",
            STATEMENTS,
        )
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
    }

    /// Runs `read` on a connection of its own. A connection whose read failed for a reason
    /// other than the statement itself is closed rather than reused.
    pub fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, AppError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => self.connect().map_err(from_rusqlite)?,
        };
        match read(&conn) {
            Ok(out) => {
                self.give_back(conn);
                Ok(out)
            }
            Err(err) => {
                if !is_rusqlite_unavailable(&err) {
                    self.give_back(conn);
                }
                Err(from_rusqlite(err))
            }
        }
    }

    /// Closes the idle connections; later reads open new ones.
    pub fn close(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).expect("create");
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER);
             INSERT INTO t VALUES ('a', 1), ('b', 2);",
        )
        .expect("schema");
        (dir, path)
    }

    #[test]
    fn reads_and_reuses_its_connection() {
        let (_dir, path) = database();
        let reader = InlineReader::open(path, Duration::from_secs(1)).expect("open");
        for (key, want) in [("a", 1), ("b", 2)] {
            let got: i64 = reader
                .read(|c| c.query_row("SELECT v FROM t WHERE k = ?1", [key], |r| r.get(0)))
                .expect("read");
            assert_eq!(got, want);
        }
        assert_eq!(reader.idle.lock().map(|i| i.len()).unwrap_or(0), 1);
    }

    #[test]
    fn refuses_to_write() {
        let (_dir, path) = database();
        let reader = InlineReader::open(path, Duration::from_secs(1)).expect("open");
        let err = reader
            .read(|c| c.execute("DELETE FROM t", []))
            .expect_err("a reader must not write");
        // SQLite answers READONLY, as it would for a file on a read-only disk.
        assert!(matches!(err, AppError::Unavailable(_)), "{err:?}");
        let left: i64 = reader
            .read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .expect("read");
        assert_eq!(left, 2);
    }

    #[test]
    fn a_missing_file_fails_at_start() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        assert!(InlineReader::open(dir.path().join("none.db"), Duration::from_secs(1)).is_err());
    }
}
