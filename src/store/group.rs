//! Group commit for SQLite: concurrent writes are collected into one transaction and one fsync,
//! and each caller is answered only after its batch has committed. A job that fails rolls back
//! only itself (see [`run_batch`]).
//!
//! PostgreSQL needs none of this: its many connections commit concurrently and it flushes the
//! log of concurrent commits together by itself.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

use sqlx::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use super::lender::Lender;
use crate::http::AppError;

/// The most jobs in one transaction.
const MAX_BATCH: usize = 512;

pub type JobFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T, AppError>> + Send + 'c>>;

/// A write to run inside a batch.
pub trait Job: Send + Sync + Sized + 'static {
    type Output: Send + 'static;
    fn run<'c>(&'c self, conn: &'c mut SqliteConnection) -> JobFuture<'c, Self::Output>;

    /// Runs jobs of this kind that follow one another in a batch, in order, with one output
    /// each. A kind that can write many rows in one statement does so here (one hand-over to
    /// the database thread instead of one per job); by default they run one by one. An error
    /// fails the batch, whose jobs then run again one transaction each.
    fn run_many<'c>(
        jobs: &'c [&'c Self],
        conn: &'c mut SqliteConnection,
    ) -> JobFuture<'c, Vec<Self::Output>> {
        Box::pin(async move {
            let mut outputs = Vec::with_capacity(jobs.len());
            for job in jobs {
                outputs.push(job.run(&mut *conn).await?);
            }
            Ok(outputs)
        })
    }
}

type Answer = Result<Box<dyn Any + Send>, AppError>;

/// Any job, its output boxed: one committer serves every kind of write.
trait ErasedJob: Send + Sync {
    fn as_any(&self) -> &dyn Any;

    fn run_erased<'c>(
        &'c self,
        conn: &'c mut SqliteConnection,
    ) -> JobFuture<'c, Box<dyn Any + Send>>;

    /// Runs `jobs`, every one of this job's own kind, through [`Job::run_many`].
    fn run_many_erased<'c>(
        &'c self,
        jobs: &'c [Box<dyn ErasedJob>],
        conn: &'c mut SqliteConnection,
    ) -> JobFuture<'c, Vec<Box<dyn Any + Send>>>;
}

impl<J: Job> ErasedJob for J {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn run_erased<'c>(
        &'c self,
        conn: &'c mut SqliteConnection,
    ) -> JobFuture<'c, Box<dyn Any + Send>> {
        Box::pin(async move {
            self.run(conn)
                .await
                .map(|out| Box::new(out) as Box<dyn Any + Send>)
        })
    }

    fn run_many_erased<'c>(
        &'c self,
        jobs: &'c [Box<dyn ErasedJob>],
        conn: &'c mut SqliteConnection,
    ) -> JobFuture<'c, Vec<Box<dyn Any + Send>>> {
        Box::pin(async move {
            let typed = jobs
                .iter()
                .map(|job| job.as_any().downcast_ref::<J>())
                .collect::<Option<Vec<&J>>>()
                .ok_or_else(|| {
                    AppError::internal(anyhow::anyhow!("jobs of mixed kinds in one run"))
                })?;
            let outputs = J::run_many(&typed, conn).await?;
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
        })
    }
}

type Pending = (Box<dyn ErasedJob>, oneshot::Sender<Answer>);

/// A handle to the committer task; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Pending>,
}

impl GroupCommit {
    /// Starts the committer on the writer connection; it ends when every handle is dropped.
    pub fn spawn(writer: Lender) -> Self {
        let (jobs, receiver) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(committer(writer, receiver));
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

async fn committer(writer: Lender, mut receiver: mpsc::Receiver<Pending>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = receiver.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (jobs, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        match run_batch(&writer, &jobs).await {
            Ok(results) => {
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
                tracing::warn!(error = %cause, jobs = jobs.len(), "a write batch failed to commit");
                for reply in replies {
                    let _ = reply.send(Err(AppError::Unavailable(anyhow::anyhow!("{message}"))));
                }
            }
        }
    }
}

/// One transaction for the whole batch. If any job fails, the batch is rolled back and every
/// job runs again in a transaction of its own, so one job's failure is that job's alone.
/// (Savepoints would avoid the second pass, but SQLite keeps a savepoint after ROLLBACK TO,
/// and sqlx's nested transactions reuse one name: a later rollback could undo jobs already
/// answered. Failures are rare here, so the simple way costs nothing in practice.)
///
/// A batch that fails to commit (a full disk, say) closes its connection: SQLite may have
/// rolled the transaction back by itself, and a connection whose sqlx bookkeeping still counts
/// that transaction refuses every later BEGIN. A fresh one is opened for the next batch.
fn run_batch<'a>(writer: &'a Lender, jobs: &'a [Box<dyn ErasedJob>]) -> JobFuture<'a, Vec<Answer>> {
    Box::pin(async move {
        let mut conn = writer.acquire().await?;
        let outcome = run_batch_on(&mut conn, jobs).await;
        if outcome.is_err() {
            conn.close_on_drop();
        }
        outcome
    })
}

fn run_batch_on<'a>(
    writer: &'a mut SqliteConnection,
    jobs: &'a [Box<dyn ErasedJob>],
) -> JobFuture<'a, Vec<Answer>> {
    use sqlx::Connection;
    Box::pin(async move {
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
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
            match first.run_many_erased(run, &mut tx).await {
                Ok(outputs) => results.extend(outputs.into_iter().map(Ok)),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
            rest = later;
        }
        if !failed {
            tx.commit().await?;
            return Ok(results);
        }
        tx.rollback().await?;
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs {
            let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
            let result = job.run_erased(&mut tx).await;
            if result.is_ok() {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            results.push(result);
        }
        Ok(results)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    struct Insert(i64);

    impl Job for Insert {
        type Output = u64;

        fn run<'c>(&'c self, conn: &'c mut SqliteConnection) -> JobFuture<'c, u64> {
            Box::pin(async move {
                // two statements: a failure in the second must undo the first
                sqlx::query("INSERT INTO audit (n) VALUES ($1)")
                    .bind(self.0)
                    .execute(&mut *conn)
                    .await?;
                let id = if self.0 < 40 { self.0 } else { 1000 + self.0 };
                let done = sqlx::query("INSERT INTO items (id) VALUES ($1)")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                Ok(done.rows_affected())
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_rolls_back_alone_and_the_rest_commit_together() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true);
        let pool = Lender::open(options, 1, std::time::Duration::from_secs(5))
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
        let preset: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM items")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(preset, 20, "the colliding rows are there");
        let group = GroupCommit::spawn(pool.clone());
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
        let items: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM items")
            .fetch_one(&pool)
            .await
            .unwrap();
        let audit: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(
            (items, audit),
            (60, 40),
            "the failed jobs left nothing behind"
        );
    }
}
