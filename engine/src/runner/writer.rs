//! A worker's write stage: commits planned batches in order on the writer connection, on a
//! task of its own, while the guest already applies the next batch.
//!
//! At most one batch commits while one more waits, handed over; the worker waits for room
//! before it hands another. The stage stops at its first error and commits nothing after it.
//! A [`Fence`] lets a reader wait until every batch announced has committed (the guest's
//! `get-row` must see what the batches before its own wrote): a batch is announced when the
//! guest has applied it, before its writes are planned and handed over.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::commit::{CommitError, Committer};
use super::cursor::Cursor;
use super::status::{State, StatusBoard};
use crate::readmodel::Statement;

/// Batches handed over that wait while another commits.
const READY: usize = 1;

/// Where a writer commits and whom it tells.
pub(super) struct Destination {
    /// The event store's schema.
    pub(super) store_schema: String,
    /// The version's schema, also its checkpoint key.
    pub(super) schema: String,
    /// The projection, for the logs.
    pub(super) name: String,
    /// The projection's key in `status`.
    pub(super) key: String,
    /// Status of every projection.
    pub(super) status: StatusBoard,
    /// The longest a statement of a batch may run.
    pub(super) statement_timeout: Duration,
}

/// A planned batch to commit.
pub(super) struct Job {
    /// The checkpoint it starts from and the one it moves to.
    pub(super) range: (Cursor, Cursor),
    /// Whether the batch reached the head of the log.
    pub(super) at_head: bool,
    /// Its writes (and dead letters).
    pub(super) statements: Vec<Statement>,
    /// Events the guest received.
    pub(super) events: usize,
    /// Operations the guest returned.
    pub(super) ops: usize,
    /// When the guest call began.
    pub(super) started: Instant,
    /// How long the guest call took.
    pub(super) applied: Duration,
}

/// The batch a writer failed to commit, and why. It committed nothing after it.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub(super) struct WriteError {
    /// The batch's checkpoint range.
    pub(super) range: (Cursor, Cursor),
    /// Why it did not commit.
    pub(super) error: CommitError,
}

/// A batch announced to the fence ([`Writer::announce`]) and not handed over yet.
#[must_use = "an announced batch must be handed over"]
pub(super) struct Announced(());

/// The writer stopped on an error, which [`Writer::close`] returns.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the writer stopped on an error")]
pub(super) struct Stopped;

/// Waits until every batch announced to a writer has committed.
#[derive(Clone)]
pub(super) struct Fence {
    announced: Arc<AtomicU64>,
    committed: watch::Receiver<u64>,
}

impl Fence {
    /// Whether a batch announced has not committed yet.
    pub(super) fn pending(&self) -> bool {
        *self.committed.borrow() < self.announced.load(Ordering::Acquire)
    }

    /// Batches committed so far.
    pub(super) fn committed(&self) -> u64 {
        *self.committed.borrow()
    }

    /// Returns once every batch announced so far has committed; fails when the writer
    /// stopped first.
    pub(super) async fn settled(&mut self) -> Result<(), Stopped> {
        let announced = self.announced.load(Ordering::Acquire);
        self.committed.wait_for(|committed| *committed >= announced).await.map(|_| ()).map_err(|_| Stopped)
    }
}

/// The write stage of one session. Dropping it lets the batches handed over commit, on their
/// task; [`Writer::close`] waits for them.
pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    fence: Fence,
    task: Option<JoinHandle<Result<(), WriteError>>>,
}

impl Writer {
    /// Starts committing batches to `destination` over `committer`, in the current span.
    pub(super) fn start(committer: Committer, destination: Destination) -> Writer {
        let (jobs, incoming) = mpsc::channel(READY);
        let (committed, progress) = watch::channel(0);
        let task = tokio::spawn(write(committer, destination, incoming, committed).in_current_span());
        let fence = Fence { announced: Arc::new(AtomicU64::new(0)), committed: progress };
        Writer { jobs: Some(jobs), fence, task: Some(task) }
    }

    /// A fence on this writer's progress.
    pub(super) fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// Whether a batch announced has not committed yet.
    pub(super) fn pending(&self) -> bool {
        self.fence.pending()
    }

    /// Announces the next batch to be handed over: from now on a reader waits for it on the
    /// fence, although it is not planned yet. Every announced batch is handed over in order
    /// (or the session ends, and with it every wait on the fence).
    pub(super) fn announce(&self) -> Announced {
        self.fence.announced.fetch_add(1, Ordering::AcqRel);
        Announced(())
    }

    /// Hands `job`, the batch `announced`, over once there is room.
    pub(super) async fn hand(&mut self, _announced: Announced, job: Job) -> Result<(), Stopped> {
        let jobs = self.jobs.as_ref().ok_or(Stopped)?;
        jobs.send(job).await.map_err(|_| Stopped)
    }

    /// Returns once every batch announced has committed.
    pub(super) async fn settled(&mut self) -> Result<(), Stopped> {
        self.fence.settled().await
    }

    /// Returns when the writer has stopped on an error (never, while it commits).
    pub(super) async fn stopped(&mut self) -> Stopped {
        let _ = self.fence.committed.wait_for(|_| false).await;
        Stopped
    }

    /// Lets every batch handed over commit, and returns the first error, if any.
    pub(super) async fn close(&mut self) -> Result<(), WriteError> {
        self.jobs = None;
        let Some(task) = self.task.take() else { return Ok(()) };
        match task.await {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // Cancelled: the runtime is shutting down, and nothing will read the outcome.
            Err(_) => Ok(()),
        }
    }
}

/// Commits the batches of `jobs` in order, counting them in `committed`, until the channel
/// closes or a commit fails.
async fn write(
    mut committer: Committer,
    to: Destination,
    mut jobs: mpsc::Receiver<Job>,
    committed: watch::Sender<u64>,
) -> Result<(), WriteError> {
    while let Some(job) = jobs.recv().await {
        let checkpoint = job.range.1;
        committer
            .commit(&to.store_schema, &to.schema, job.range, &job.statements, to.statement_timeout)
            .await
            .map_err(|error| WriteError { range: job.range, error })?;
        let total = job.started.elapsed();
        tracing::debug!(projection = %to.name, schema = %to.schema, events = job.events, ops = job.ops, statements = job.statements.len(), guest_ms = job.applied.as_millis() as u64, total_ms = total.as_millis() as u64, "batch committed");
        to.status.update(&to.key, |s| {
            s.committed(checkpoint, job.events as u64, job.applied, total);
            s.state = if job.at_head { State::Live } else { State::CatchingUp };
        });
        committed.send_modify(|count| *count += 1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[tokio::test]
    async fn a_fence_waits_for_every_batch_announced_and_fails_once_the_writer_is_gone() {
        let (committed, progress) = watch::channel(0);
        let mut fence = Fence { announced: Arc::new(AtomicU64::new(2)), committed: progress };
        committed.send_replace(1);
        assert!(fence.pending());
        assert!(fence.settled().now_or_never().is_none(), "one of the two batches announced has not committed");
        committed.send_replace(2);
        assert!(!fence.pending());
        assert!(fence.settled().await.is_ok());
        fence.announced.fetch_add(1, Ordering::AcqRel);
        drop(committed);
        assert!(fence.settled().await.is_err(), "the writer stopped before the third batch committed");
    }
}
