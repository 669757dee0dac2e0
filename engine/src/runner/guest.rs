//! A projection instance on a thread of its own.
//!
//! Calls into a guest are synchronous and may run for a while, so they never run on an async
//! worker thread: each instance lives on its own OS thread and is driven through a channel.

use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::reader::Batch;
use crate::wasm::types::{Event, Op, ProjectionError};
use crate::wasm::{Limits, Projector, RowSource, WasmError};

/// What one call of `apply` returned.
pub type ApplyResult = Result<Result<Vec<Op>, ProjectionError>, WasmError>;

struct Call {
    batch: Arc<Batch>,
    /// The events of the batch this projection receives, when that is not all of them.
    selected: Option<Vec<Event>>,
    reply: oneshot::Sender<ApplyResult>,
}

/// A handle to an instance running on its own thread. Dropping it ends the thread once the
/// current call returns.
///
/// When the instance started behind the head of the log, the thread replaces it with a fresh
/// one once it applies its first batch at the head, before it replies (see [`Instance::renew`]).
///
/// [`Instance::renew`]: crate::wasm::Instance::renew
pub struct Guest {
    calls: mpsc::Sender<Call>,
}

impl Guest {
    /// Instantiates `projector` on a new thread.
    pub async fn spawn(
        projector: Projector,
        name: &str,
        limits: Limits,
        rows: Box<dyn RowSource>,
    ) -> Result<Guest, WasmError> {
        let (calls, incoming) = mpsc::channel::<Call>();
        let (ready, started) = oneshot::channel();
        let label = name.to_owned();
        // The guest's `log` calls and the host's own logs on this thread belong to the
        // projection's span (name and version), as the worker's do.
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name(format!("guest-{name}"))
            .spawn(move || {
                let _span = span.entered();
                let mut instance = match projector.instantiate(&label, &limits, rows) {
                    Ok(instance) => instance,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                // Whether the instance started behind the head (its first batch filled the batch
                // size) and has not reached the head yet: it then holds the memory of catch-up's
                // largest batches. `None` before the first batch.
                let mut catching_up = None;
                while let Ok(call) = incoming.recv() {
                    let events = call.selected.as_deref().unwrap_or(&call.batch.events);
                    let result = instance.apply(events);
                    // After a trap the instance may be in any state: it is never called again.
                    if result.is_err() {
                        let _ = call.reply.send(result);
                        break;
                    }
                    // Caught up: live batches are small, and a live projection should not keep
                    // the memory of catch-up. The fresh instance reads the rows it needs back
                    // from the database. Only once: falling behind for a moment while live (a
                    // burst of appends) keeps the warm cache, which is worth more than the memory.
                    let renewing = *catching_up.get_or_insert(!call.batch.at_head) && call.batch.at_head;
                    if renewing {
                        instance = match instance.renew() {
                            Ok(fresh) => fresh,
                            Err(error) => {
                                tracing::error!(%error, "cannot renew the instance after catching up");
                                let _ = call.reply.send(result);
                                break;
                            }
                        };
                        catching_up = Some(false);
                        tracing::debug!("caught up: instance renewed");
                    }
                    let _ = call.reply.send(result);
                }
            })
            .map_err(|e| WasmError::Engine(format!("cannot start the guest thread: {e}")))?;
        started.await.map_err(|_| WasmError::Engine("the guest thread ended while starting".into()))??;
        Ok(Guest { calls })
    }

    /// Applies `selected` (or all of `batch` when `None`) in the guest. The guest starts at
    /// once, not when the returned future is first polled: the caller may do other work
    /// meanwhile.
    pub fn apply(&self, batch: Arc<Batch>, selected: Option<Vec<Event>>) -> impl Future<Output = ApplyResult> + use<> {
        let (reply, result) = oneshot::channel();
        let sent = self.calls.send(Call { batch, selected, reply });
        async move {
            let gone = || WasmError::Engine("the guest thread has ended".into());
            sent.map_err(|_| gone())?;
            result.await.map_err(|_| gone())?
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::runner::Cursor;
    use crate::wasm::Runtime;
    use crate::wasm::types::ColumnValue;

    /// Counts the guest's reads; every row is absent.
    struct CountedRows(Arc<AtomicUsize>);

    impl RowSource for CountedRows {
        fn get_row(&mut self, _: &str, _: &[ColumnValue]) -> Result<Option<Vec<ColumnValue>>, String> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(None)
        }
    }

    fn created(position: i64, order: u128) -> Event {
        let order = uuid::Uuid::from_u128(order);
        Event {
            global_position: position,
            stream_id: format!("order-{order}"),
            stream_version: 1,
            event_id: uuid::Uuid::from_u128(position as u128).to_string(),
            event_type: "OrderCreated".into(),
            data: format!(r#"{{"order_id":"{order}","customer_id":"{order}"}}"#).into_bytes(),
            metadata: Vec::new(),
            timestamp: 1_700_000_000_000_000,
        }
    }

    fn batch(events: Vec<Event>, at_head: bool) -> Arc<Batch> {
        Arc::new(Batch { from: Cursor::START, to: Cursor::START, events, at_head })
    }

    /// An `OrderCreated` makes order_summary read the order's lines once; the SDK caches the
    /// answer, so a second one of the same order reads again only on a fresh instance.
    #[tokio::test]
    async fn an_instance_that_started_behind_is_renewed_once_it_reaches_the_head() {
        let projector =
            Runtime::new().unwrap().load(&std::fs::read(refract_projection_artifacts::ORDER_SUMMARY).unwrap()).unwrap();
        let reads = Arc::new(AtomicUsize::new(0));
        let rows = Box::new(CountedRows(reads.clone()));
        let guest = Guest::spawn(projector, "order_summary", Limits::default(), rows).await.unwrap();
        let reads_of = |events: Vec<Event>, at_head| {
            let guest = &guest;
            let reads = reads.clone();
            async move {
                let before = reads.load(Ordering::Relaxed);
                let ops = guest.apply(batch(events, at_head), None).await.unwrap().unwrap();
                assert!(!ops.is_empty());
                reads.load(Ordering::Relaxed) - before
            }
        };
        // The instance starts behind the head.
        assert_eq!(reads_of(vec![created(1, 1), created(2, 2)], false).await, 2);
        assert_eq!(reads_of(vec![created(3, 1)], false).await, 0, "catch-up keeps the cache");
        // The first batch at the head is applied by the grown instance, which is then replaced.
        assert_eq!(reads_of(vec![created(4, 2)], true).await, 0);
        assert_eq!(reads_of(vec![created(5, 1)], true).await, 1, "a fresh instance has an empty cache");
        assert_eq!(reads_of(vec![created(6, 1)], true).await, 0, "live: the cache stays");
        // Behind again for a moment while live, then back at the head: the warm cache stays.
        assert_eq!(reads_of(vec![created(7, 1)], false).await, 0);
        assert_eq!(reads_of(vec![created(8, 1)], true).await, 0);
        assert_eq!(reads_of(vec![created(9, 1)], true).await, 0, "renewed only once, after the first catch-up");
    }
}
