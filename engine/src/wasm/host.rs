//! What the host offers a guest: its store data, the `host` interface and an authority-free WASI.

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::host::{self, Level};
use super::bindings::types::ColumnValue;
use super::determinism::BatchEnvironment;
use super::output::{GuestOutput, Stream};
use super::{Limits, WasmError};

/// Reads rows of a projection's own tables for the guest's `get-row` import.
///
/// The engine implements it over the projection's database connection; tests implement it
/// over a map. It is called on the guest's thread and may block.
pub trait RowSource: Send {
    /// The committed row of `table` whose key is `key`, or `None`. An error is a message for
    /// the guest (an unknown table or column, a lost connection).
    fn get_row(&mut self, table: &str, key: &[ColumnValue]) -> Result<Option<Vec<ColumnValue>>, String>;
}

/// A [`RowSource`] for projections that never read their tables back: every row is absent.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRows;

impl RowSource for NoRows {
    fn get_row(&mut self, _: &str, _: &[ColumnValue]) -> Result<Option<Vec<ColumnValue>>, String> {
        Ok(None)
    }
}

/// The data of one projection instance's store.
pub(crate) struct HostState {
    /// The projection's name, for the log.
    pub(crate) projection: String,
    pub(crate) rows: Box<dyn RowSource>,
    pub(crate) limits: StoreLimits,
    /// The time and randomness of the batch being applied.
    pub(crate) environment: BatchEnvironment,
    /// The guest's stdout and stderr, logged line by line.
    output: [GuestOutput; 2],
    wasi: WasiCtx,
    table: ResourceTable,
}

impl HostState {
    pub(crate) fn new(projection: String, rows: Box<dyn RowSource>, limits: &Limits) -> Self {
        // No preopened directories, no environment, no arguments, no sockets, no name
        // lookups, stdout and stderr into the host's log (bounded), clocks and randomness from
        // the batch: the guest gets WASI's shape, not its authority.
        let output = [GuestOutput::new(&projection, Stream::Stdout), GuestOutput::new(&projection, Stream::Stderr)];
        let mut builder = WasiCtx::builder();
        builder.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        builder.stdout(output[0].clone()).stderr(output[1].clone());
        let environment = BatchEnvironment::install(&projection, &mut builder);
        let wasi = builder.build();
        HostState {
            projection,
            rows,
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.max_memory_bytes)
                .instances(limits.max_instances)
                .tables(limits.max_tables)
                .memories(limits.max_memories)
                .trap_on_grow_failure(true)
                .build(),
            environment,
            output,
            wasi,
            table: ResourceTable::new(),
        }
    }
}

impl HostState {
    /// Ends a call into the guest: flushes what it printed to the log (see [`GuestOutput`]).
    pub(crate) fn end_call(&self) {
        self.output.iter().for_each(GuestOutput::end_call);
    }

    /// `error` of the call under way, a trap explained by the guest's last lines on stderr
    /// (where a panic prints its message), if it printed any.
    pub(crate) fn explain(&self, error: WasmError) -> WasmError {
        match (error, self.output[1].recent()) {
            (WasmError::Trap(trap), Some(stderr)) => WasmError::Trap(format!("{trap}; its stderr said: {stderr}")),
            (error, _) => error,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl host::Host for HostState {
    fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let projection = self.projection.as_str();
        let fields = GuestFields(&fields);
        match level {
            Level::Trace => {
                tracing::trace!(target: "refract::guest", projection, %fields, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "refract::guest", projection, %fields, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "refract::guest", projection, %fields, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "refract::guest", projection, %fields, "{message}")
            }
            Level::Error => {
                tracing::error!(target: "refract::guest", projection, %fields, "{message}")
            }
        }
    }

    fn get_row(&mut self, table: String, key: Vec<ColumnValue>) -> Result<Option<Vec<ColumnValue>>, String> {
        self.rows.get_row(&table, &key)
    }
}

impl super::bindings::types::Host for HostState {}

/// Contract 0.2.0's `host` is 0.1.0's.
impl super::bindings::v0_2_0::refract::projection::host::Host for HostState {
    fn log(
        &mut self,
        level: super::bindings::v0_2_0::refract::projection::host::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) {
        use super::bindings::v0_2_0::refract::projection::host::Level as Level0_2;
        let level = match level {
            Level0_2::Trace => Level::Trace,
            Level0_2::Debug => Level::Debug,
            Level0_2::Info => Level::Info,
            Level0_2::Warn => Level::Warn,
            Level0_2::Error => Level::Error,
        };
        host::Host::log(self, level, message, fields);
    }

    fn get_row(&mut self, table: String, key: Vec<ColumnValue>) -> Result<Option<Vec<ColumnValue>>, String> {
        host::Host::get_row(self, table, key)
    }
}

/// A guest's log fields rendered as `key=value` pairs.
struct GuestFields<'a>(&'a [(String, String)]);

impl std::fmt::Display for GuestFields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (key, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{key}={value:?}")?;
        }
        Ok(())
    }
}
