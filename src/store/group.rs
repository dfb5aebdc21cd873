//! Group commit for SQLite: concurrent writes are collected into one transaction and one fsync,
//! and each caller is answered only after its batch has committed. A job that fails rolls back
//! only itself (see [`run_batch`]).
//!
//! A batch runs as one call on a blocking thread, on a connection of its own (rusqlite, over
//! the same SQLite library as sqlx): through sqlx every statement, BEGIN and COMMIT would be a
//! hand-over to the connection's worker thread and back, and those hand-overs, not SQLite,
//! were the writer's time (BENCHMARKS.md). While a batch runs, the committer holds the sqlx
//! writer connection, so SQLite still has one writer at a time and writes never race for the
//! lock.
//!
//! PostgreSQL gathers its own way (see [`super::batch`]).

use std::any::Any;
use std::path::PathBuf;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::BatchCounts;
use super::errors::from_rusqlite;
use super::lender::Lender;
use crate::http::AppError;

/// The most jobs in one transaction.
const MAX_BATCH: usize = 512;

/// Statements the writer keeps prepared: one multi-row ticket upsert per row count (up to
/// [`crate::tickets::store::UPSERT_MAX_ROWS`]) and a few more, so no batch pays for parsing.
const STATEMENTS: usize = 128;

/// A write to run inside a batch, on the writer's thread: plain synchronous SQLite calls.
pub trait Job: Send + Sync + Sized + 'static {
    type Output: Send + 'static;
    fn run(&self, conn: &Connection) -> Result<Self::Output, AppError>;

    /// Runs jobs of this kind that follow one another in a batch, in order, with one output
    /// each. A kind that can write many rows in one statement does so here; by default they
    /// run one by one. An error fails the batch, whose jobs then run again one transaction
    /// each.
    fn run_many(jobs: &[&Self], conn: &Connection) -> Result<Vec<Self::Output>, AppError> {
        jobs.iter().map(|job| job.run(conn)).collect()
    }

    /// Called once the job's transaction has committed, before any job of its batch is
    /// answered, in the order the jobs ran: for what must be told in commit order (an event
    /// to this process's subscribers). Nothing by default.
    fn committed(&self, _output: &Self::Output) {}
}

type Answer = Result<Box<dyn Any + Send>, AppError>;

/// Any job, its output boxed: one committer serves every kind of write.
trait ErasedJob: Send + Sync {
    fn as_any(&self) -> &dyn Any;

    fn run_erased(&self, conn: &Connection) -> Answer;

    /// [`Job::committed`] with `answer`'s output, if it is one of this job's kind.
    fn committed_erased(&self, answer: &Answer);

    /// Runs `jobs`, every one of this job's own kind, through [`Job::run_many`].
    fn run_many_erased(
        &self,
        jobs: &[Box<dyn ErasedJob>],
        conn: &Connection,
    ) -> Result<Vec<Box<dyn Any + Send>>, AppError>;
}

impl<J: Job> ErasedJob for J {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn run_erased(&self, conn: &Connection) -> Answer {
        self.run(conn)
            .map(|out| Box::new(out) as Box<dyn Any + Send>)
    }

    fn committed_erased(&self, answer: &Answer) {
        if let Ok(output) = answer
            && let Some(output) = output.downcast_ref::<J::Output>()
        {
            self.committed(output);
        }
    }

    fn run_many_erased(
        &self,
        jobs: &[Box<dyn ErasedJob>],
        conn: &Connection,
    ) -> Result<Vec<Box<dyn Any + Send>>, AppError> {
        let typed = jobs
            .iter()
            .map(|job| job.as_any().downcast_ref::<J>())
            .collect::<Option<Vec<&J>>>()
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("jobs of mixed kinds in one run")))?;
        let outputs = J::run_many(&typed, conn)?;
        if outputs.len() != jobs.len() {
            return Err(AppError::internal(anyhow::anyhow!(
                "{} jobs answered {} times",
                jobs.len(),
                outputs.len()
            )));
        }
        Ok(outputs
            .into_iter()
            .map(|out| Box::new(out) as Box<dyn Any + Send>)
            .collect())
    }
}

type Pending = (Box<dyn ErasedJob>, oneshot::Sender<Answer>);

/// A handle to the committer task; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Pending>,
}

/// Where the committer's own connection comes from.
pub struct WriterFile {
    pub path: PathBuf,
    pub busy_timeout: Duration,
}

impl WriterFile {
    fn connect(&self) -> Result<Connection, AppError> {
        // The file is in WAL mode already (the sqlx writer set it); these are per connection.
        // temp_store = MEMORY keeps each statement's journal in memory: a multi-row upsert
        // later in a batch needs one, and SQLite otherwise moved it to a temporary file
        // (created, written and deleted) once it passed 64 KiB, every statement.
        super::inline::connect(
            &self.path,
            self.busy_timeout,
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
            STATEMENTS,
        )
        .map_err(from_rusqlite)
    }
}

impl GroupCommit {
    /// Starts the committer; it writes on a connection of its own to `file` while it holds
    /// `writer`, and ends when every handle is dropped.
    pub fn spawn(writer: Lender, file: WriterFile, counts: BatchCounts) -> Self {
        let (jobs, receiver) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(committer(writer, file, receiver, counts));
        Self { jobs }
    }

    /// Runs `job` in the next batch and answers once that batch is committed.
    pub async fn submit<J: Job>(&self, job: J) -> Result<J::Output, AppError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((Box::new(job), reply))
            .await
            .map_err(|_| AppError::Unavailable(anyhow::anyhow!("the writer has stopped")))?;
        let output = answer.await.map_err(|_| {
            AppError::Unavailable(anyhow::anyhow!("the writer stopped mid-batch"))
        })??;
        output.downcast::<J::Output>().map(|out| *out).map_err(|_| {
            AppError::internal(anyhow::anyhow!(
                "a write batch answered with the wrong type"
            ))
        })
    }
}

async fn committer(
    writer: Lender,
    file: WriterFile,
    mut receiver: mpsc::Receiver<Pending>,
    counts: BatchCounts,
) {
    let file = std::sync::Arc::new(file);
    let mut conn: Option<Connection> = None;
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = receiver.recv().await {
        batch.push(first);
        super::batch::gather(&mut receiver, &mut batch, MAX_BATCH).await;
        let (jobs, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let outcome = match writer.acquire().await {
            // Holding the sqlx writer keeps every other write out while the batch runs.
            Ok(_turn) => {
                let file = file.clone();
                let held = conn.take();
                let ran = tokio::task::spawn_blocking(move || {
                    let started = std::time::Instant::now();
                    let (outcome, kept) = run_batch_on(held, &file, &jobs);
                    (outcome.map(|results| (results, started.elapsed())), kept)
                })
                .await;
                match ran {
                    Ok((outcome, kept)) => {
                        conn = kept;
                        outcome
                    }
                    Err(err) => Err(AppError::internal(anyhow::anyhow!(
                        "the write batch did not finish: {err}"
                    ))),
                }
            }
            Err(err) => Err(err.into()),
        };
        match outcome {
            Ok((results, took)) => {
                counts.committed(results.len(), took);
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(err) => {
                let message = err.to_string();
                let cause = match &err {
                    AppError::Internal(cause) | AppError::Unavailable(cause) => {
                        format!("{cause:#}")
                    }
                    other => other.to_string(),
                };
                tracing::warn!(error = %cause, jobs = replies.len(), "a write batch failed to commit");
                for reply in replies {
                    let _ = reply.send(Err(AppError::Unavailable(anyhow::anyhow!("{message}"))));
                }
            }
        }
    }
}

/// Runs the batch on `held` (or a fresh connection) and gives back the connection if it is
/// still fit to use: one whose batch failed to commit (a full disk, say) is closed, and the
/// next batch opens a new one.
fn run_batch_on(
    held: Option<Connection>,
    file: &WriterFile,
    jobs: &[Box<dyn ErasedJob>],
) -> (Result<Vec<Answer>, AppError>, Option<Connection>) {
    let conn = match held {
        Some(conn) => conn,
        None => match file.connect() {
            Ok(conn) => conn,
            Err(err) => return (Err(err), None),
        },
    };
    match run_batch(&conn, jobs) {
        Ok(results) => (Ok(results), Some(conn)),
        Err(err) => (Err(err), None),
    }
}

fn begin(conn: &Connection) -> Result<(), AppError> {
    conn.prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(from_rusqlite)
}

fn finish(conn: &Connection, commit: bool) -> Result<(), AppError> {
    let sql = if commit { "COMMIT" } else { "ROLLBACK" };
    let done = conn
        .prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(from_rusqlite);
    if done.is_err() && !conn.is_autocommit() {
        // Leave no transaction open behind a failed COMMIT.
        let _ = conn.execute_batch("ROLLBACK");
    }
    done
}

/// One transaction for the whole batch. If any job fails, the batch is rolled back and every
/// job runs again in a transaction of its own, so one job's failure is that job's alone.
/// (Savepoints would avoid the second pass; failures are rare here, so the simple way costs
/// nothing in practice.)
fn run_batch(conn: &Connection, jobs: &[Box<dyn ErasedJob>]) -> Result<Vec<Answer>, AppError> {
    begin(conn)?;
    let mut results = Vec::with_capacity(jobs.len());
    let mut failed = false;
    let mut rest = jobs;
    while let Some(first) = rest.first() {
        // Jobs of one kind in a row run together.
        let kind = Any::type_id(first.as_any());
        let same = rest
            .iter()
            .take_while(|job| Any::type_id(job.as_any()) == kind)
            .count();
        let (run, later) = rest.split_at(same);
        match first.run_many_erased(run, conn) {
            Ok(outputs) => results.extend(outputs.into_iter().map(Ok)),
            Err(_) => {
                failed = true;
                break;
            }
        }
        rest = later;
    }
    if !failed {
        finish(conn, true)?;
        for (job, result) in jobs.iter().zip(&results) {
            job.committed_erased(result);
        }
        return Ok(results);
    }
    finish(conn, false)?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        begin(conn)?;
        let result = job.run_erased(conn);
        finish(conn, result.is_ok())?;
        job.committed_erased(&result);
        results.push(result);
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    struct Insert(i64);

    impl Job for Insert {
        type Output = usize;

        fn run(&self, conn: &Connection) -> Result<usize, AppError> {
            // two statements: a failure in the second must undo the first
            conn.execute("INSERT INTO audit (n) VALUES (?1)", [self.0])
                .map_err(from_rusqlite)?;
            let id = if self.0 < 40 { self.0 } else { 1000 + self.0 };
            conn.execute("INSERT INTO items (id) VALUES (?1)", [id])
                .map_err(from_rusqlite)
        }
    }

    async fn count(pool: &Lender, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(pool)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_rolls_back_alone_and_the_rest_commit_together() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.db");
        let options =
            sqlx::sqlite::SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
                .unwrap()
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let pool = Lender::open(options, 1, Duration::from_secs(5))
            .await
            .unwrap();
        sqlx::query("CREATE TABLE items (id INTEGER PRIMARY KEY)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE audit (n INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        // jobs 40 and up collide with these
        for id in 1040..1060 {
            sqlx::query("INSERT INTO items (id) VALUES ($1)")
                .bind(id)
                .execute(&pool)
                .await
                .unwrap();
        }
        assert_eq!(
            count(&pool, "items").await,
            20,
            "the colliding rows are there"
        );
        let file = WriterFile {
            path,
            busy_timeout: Duration::from_secs(5),
        };
        let group = GroupCommit::spawn(pool.clone(), file, BatchCounts::default());
        let mut tasks = Vec::new();
        for n in 0..60 {
            let group = group.clone();
            tasks.push(tokio::spawn(
                async move { (n, group.submit(Insert(n)).await) },
            ));
        }
        let mut ok = 0;
        for task in tasks {
            let (n, result) = task.await.unwrap();
            match result {
                Ok(1) => ok += 1,
                Ok(other) => panic!("{n}: {other}"),
                Err(err @ AppError::Conflict { .. }) => {
                    assert!(n >= 40, "{n} should have succeeded: {err:?}")
                }
                Err(err) => panic!("{n}: {err}"),
            }
        }
        assert_eq!(ok, 40);
        assert_eq!(
            (count(&pool, "items").await, count(&pool, "audit").await),
            (60, 40),
            "the failed jobs left nothing behind"
        );
    }
}
