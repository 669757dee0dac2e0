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
                while let Ok(call) = incoming.recv() {
                    let events = call.selected.as_deref().unwrap_or(&call.batch.events);
                    let result = instance.apply(events);
                    // After a trap the instance may be in any state: it is never called again.
                    let trapped = result.is_err();
                    let _ = call.reply.send(result);
                    if trapped {
                        break;
                    }
                }
            })
            .map_err(|e| WasmError::Engine(format!("cannot start the guest thread: {e}")))?;
        started.await.map_err(|_| WasmError::Engine("the guest thread ended while starting".into()))??;
        Ok(Guest { calls })
    }

    /// Applies `selected` (or all of `batch` when `None`) in the guest.
    pub async fn apply(&self, batch: Arc<Batch>, selected: Option<Vec<Event>>) -> ApplyResult {
        let (reply, result) = oneshot::channel();
        let gone = || WasmError::Engine("the guest thread has ended".into());
        self.calls.send(Call { batch, selected, reply }).map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }
}
