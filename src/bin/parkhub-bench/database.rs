//! The database a run works on: a temporary SQLite file, or a PostgreSQL database created for
//! the run on the server given; both removed when the run ends.

use anyhow::Context;
use parkhub::store::BackendKind;

/// The database a run made for itself, removed when the run ends.
pub enum Fresh {
    /// A temporary directory holding the SQLite file (removed by `remove`, or when dropped).
    Sqlite(tempfile::TempDir),
    /// A PostgreSQL database created on the server given (by its admin URL).
    Postgres { admin: String, name: String },
    /// A database named by the caller: left as it is.
    Given,
}

impl Fresh {
    /// Removes the database (a full run leaves about 0.5 GB on PostgreSQL otherwise).
    pub async fn remove(self) {
        let (admin, name) = match self {
            Fresh::Sqlite(dir) => {
                let path = dir.path().display().to_string();
                if let Err(err) = dir.close() {
                    eprintln!("parkhub-bench: could not remove {path}: {err}");
                }
                return;
            }
            Fresh::Postgres { admin, name } => (admin, name),
            Fresh::Given => return,
        };
        let dropped = async {
            let admin = sqlx::PgPool::connect(&admin).await?;
            drop_database(&admin, &name).await?;
            admin.close().await;
            anyhow::Ok(())
        };
        if let Err(err) = dropped.await {
            eprintln!("parkhub-bench: could not drop the database {name}: {err:#}");
        }
    }
}

/// Drops database `name` (if it is there), closing whatever sessions it still has.
async fn drop_database(admin: &sqlx::PgPool, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(admin)
        .await
        .map(|_| ())
}

pub async fn fresh_database(url: Option<&str>) -> anyhow::Result<(String, Fresh)> {
    match url {
        None => {
            let dir = tempfile::tempdir()?;
            Ok((
                format!("sqlite://{}", dir.path().join("bench.db").display()),
                Fresh::Sqlite(dir),
            ))
        }
        Some(url) if parkhub::store::backend_kind(url)? == BackendKind::Sqlite => {
            Ok((url.to_owned(), Fresh::Given))
        }
        Some(url) => {
            let name = format!("parkhub_bench_{}", std::process::id());
            let admin = sqlx::PgPool::connect(url)
                .await
                .context("connect to PostgreSQL")?;
            // One left by an earlier run of the same process id.
            drop_database(&admin, &name).await?;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await?;
            admin.close().await;
            let fresh = parkhub::store::with_database(url, &name);
            Ok((
                fresh,
                Fresh::Postgres {
                    admin: url.to_owned(),
                    name,
                },
            ))
        }
    }
}
