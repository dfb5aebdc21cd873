//! Group commit for PostgreSQL: concurrent writes of one kind gathered into one statement.
//!
//! PostgreSQL commits concurrent transactions on its many connections by itself, but every
//! request that writes one row on its own still costs a round trip, a statement and a commit
//! record. A [`Batcher`] gathers the writes that wait while the previous batch runs and hands
//! them to their kind's [`Batched::run_together`] (a multi-row statement, committed on its
//! own), and answers each caller only once that has committed. If the batch fails, each job
//! runs again alone, so one job's failure is that job's alone. Instances stay stateless: a
//! batch is gathered from one instance's requests only.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::BatchCounts;
use crate::http::AppError;

pub type JobFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, AppError>> + Send + 'a>>;

/// The most jobs handed over in one batch.
const MAX_BATCH: usize = 256;

/// Batches of one kind that may run at once, each on a connection of its own: one commits
/// while the next gathers and runs. Two, not four: batches twice the size cost PostgreSQL
/// 15-20% less CPU a ticket in ticket-ingest (BENCHMARKS.md).
pub const LANES: usize = 2;

/// The most times a batch's gatherer lets ready tasks run before it closes the batch.
const GATHER_ROUNDS: usize = 8;

/// Adds to `batch` the jobs waiting now (up to `most` in all), then lets every task that is
/// ready run once and adds what they sent, as long as that brings more: requests a moment from
/// submitting join this batch and its commit rather than wait for the next. Without load the
/// first round finds nothing and the batch goes at once. (SQLite's group commit gathers the
/// same way.)
pub(super) async fn gather<T>(receiver: &mut mpsc::Receiver<T>, batch: &mut Vec<T>, most: usize) {
    let take = |receiver: &mut mpsc::Receiver<T>, batch: &mut Vec<T>| {
        while batch.len() < most {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
    };
    take(receiver, batch);
    for _ in 0..GATHER_ROUNDS {
        let before = batch.len();
        tokio::task::yield_now().await;
        take(receiver, batch);
        if batch.len() == before || batch.len() >= most {
            break;
        }
    }
}

/// Each of `jobs`' `field`, as one array to bind: a batch's column, for a statement over
/// `UNNEST` of arrays (one prepared statement whatever the batch's size).
pub fn column<'j, J, T>(jobs: &[&'j J], field: impl Fn(&'j J) -> T) -> Vec<T> {
    jobs.iter().map(|&job| field(job)).collect()
}

/// A write that can run together with others of its kind.
pub trait Batched: Send + Sync + Sized + 'static {
    type Output: Send + 'static;

    /// Runs `jobs` and answers each, in order. It commits what it wrote before it returns.
    fn run_together<'a>(pool: &'a PgPool, jobs: &'a [&'a Self])
    -> JobFuture<'a, Vec<Self::Output>>;

    /// Called for each job whose write committed, in the batch's order, before any of the
    /// batch is answered (see [`crate::store::group::Job::committed`]). Nothing by default.
    fn committed(&self, _output: &Self::Output) {}
}

type Pending<J> = (J, oneshot::Sender<Result<<J as Batched>::Output, AppError>>);

/// A handle to the lanes of one kind of job; they end when it is dropped.
pub struct Batcher<J: Batched> {
    jobs: mpsc::Sender<Pending<J>>,
}

impl<J: Batched> Batcher<J> {
    /// `committed` counts the batches run (see [`crate::store::Store::writes_committed`]).
    pub fn spawn(
        pool: PgPool,
        lanes: usize,
        committed: Arc<AtomicU64>,
        counts: BatchCounts,
    ) -> Self {
        let (jobs, receiver) = mpsc::channel(4 * MAX_BATCH);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..lanes.max(1) {
            tokio::spawn(lane(
                pool.clone(),
                receiver.clone(),
                committed.clone(),
                counts.clone(),
            ));
        }
        Self { jobs }
    }

    /// Runs `job` in the next batch and answers once that batch has committed.
    pub async fn submit(&self, job: J) -> Result<J::Output, AppError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((job, reply))
            .await
            .map_err(|_| AppError::Unavailable(anyhow::anyhow!("the writer has stopped")))?;
        answer
            .await
            .map_err(|_| AppError::Unavailable(anyhow::anyhow!("the writer stopped mid-batch")))?
    }
}

async fn lane<J: Batched>(
    pool: PgPool,
    receiver: Arc<Mutex<mpsc::Receiver<Pending<J>>>>,
    committed: Arc<AtomicU64>,
    counts: BatchCounts,
) {
    let mut batch: Vec<Pending<J>> = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            // One lane gathers at a time: what waits now is this batch.
            let mut receiver = receiver.lock().await;
            match receiver.recv().await {
                Some(first) => batch.push(first),
                None => return,
            }
            gather(&mut receiver, &mut batch, MAX_BATCH).await;
        }
        let (jobs, replies): (Vec<J>, Vec<_>) = batch.drain(..).unzip();
        let started = std::time::Instant::now();
        let results = run(&pool, &jobs).await;
        // Before any caller is answered: what it was told is committed is counted.
        committed.fetch_add(1, Ordering::AcqRel);
        counts.committed(jobs.len(), started.elapsed());
        for (job, result) in jobs.iter().zip(&results) {
            if let Ok(output) = result {
                job.committed(output);
            }
        }
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// All of `jobs` together; if that fails, each alone.
async fn run<J: Batched>(pool: &PgPool, jobs: &[J]) -> Vec<Result<J::Output, AppError>> {
    let all: Vec<&J> = jobs.iter().collect();
    let together = J::run_together(pool, &all).await;
    match together {
        Ok(outputs) if outputs.len() == jobs.len() => outputs.into_iter().map(Ok).collect(),
        Ok(outputs) => {
            let message = format!("{} jobs answered {} times", jobs.len(), outputs.len());
            jobs.iter()
                .map(|_| Err(AppError::internal(anyhow::anyhow!("{message}"))))
                .collect()
        }
        Err(err) if jobs.len() == 1 => vec![Err(err)],
        Err(_) => {
            let mut results = Vec::with_capacity(jobs.len());
            for job in jobs {
                let alone = J::run_together(pool, &[job]).await;
                results.push(alone.and_then(|mut outputs| {
                    outputs.pop().ok_or_else(|| {
                        AppError::internal(anyhow::anyhow!("a job answered nothing"))
                    })
                }));
            }
            results
        }
    }
}
