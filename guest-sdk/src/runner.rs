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
        events: impl IntoIterator<Item = Event>,
        source: impl FnOnce() -> Box<dyn RowSource>,
    ) -> Result<Vec<Op>, ProjectionError> {
        let mut state = self.state.take().unwrap_or_else(|| State::new(&P::describe(), P::CACHE_ROWS, source()));
        for event in events {
            if let Err(error) = P::apply(&event, &mut state) {
                return Err(projection_error(&event, error));
            }
        }
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

fn projection_error(event: &Event, error: Error) -> ProjectionError {
    let message = match error {
        // Already names the event.
        Error::Payload { .. } => error.to_string(),
        _ => format!("{}: {error}", event.reference()),
    };
    ProjectionError { message, global_position: Some(event.global_position()) }
}
