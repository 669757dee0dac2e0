//! Applying batches: the loop shared by the component and the testing harness.

use crate::state::RowSource;
use crate::{Error, Event, Op, Projection, ProjectionError, State};

/// One projection instance's state across batches.
#[derive(Default)]
pub(crate) struct Runner {
    state: Option<State>,
}

impl Runner {
    /// Applies one batch. After an error the state is dropped, as the host drops the whole
    /// instance: the next batch starts with an empty cache, reading rows from `source`.
    pub(crate) fn apply<P: Projection>(
        &mut self,
        events: impl Batch,
        source: impl FnOnce() -> Box<dyn RowSource>,
    ) -> Result<Vec<Op>, ProjectionError> {
        let mut state = self.state.take().unwrap_or_else(|| State::new(&P::describe(), P::CACHE_ROWS, source()));
        events.each(|event| P::apply(event, &mut state).map_err(|error| projection_error(event, error)))?;
        let ops = state.flush().map_err(|error| ProjectionError {
            message: format!("ending the batch: {error}"),
            global_position: None,
        })?;
        self.state = Some(state);
        Ok(ops)
    }

    /// Forgets the state, as a new instance would start.
    pub(crate) fn reset(&mut self) {
        self.state = None;
    }
}

/// The events of a batch, handed to a function one at a time.
pub(crate) trait Batch {
    /// Calls `apply` with each event in order, up to the first error, which it returns.
    fn each(self, apply: impl FnMut(&Event) -> Result<(), ProjectionError>) -> Result<(), ProjectionError>;
}

impl<I: IntoIterator<Item = Event>> Batch for I {
    fn each(self, mut apply: impl FnMut(&Event) -> Result<(), ProjectionError>) -> Result<(), ProjectionError> {
        self.into_iter().try_for_each(|event| apply(&event))
    }
}

fn projection_error(event: &Event, error: Error) -> ProjectionError {
    let message = match error {
        // Already names the event.
        Error::Payload { .. } => error.to_string(),
        _ => format!("{}: {error}", event.reference()),
    };
    ProjectionError { message, global_position: Some(event.global_position()) }
}
