//! The wasmtime engine, compiled projection components and their instances.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store, Trap};

use super::bindings::types::{Description, Event, Op, ProjectionError};
use super::bindings::{v0_1_0, v0_2_0};
use super::host::{HostState, RowSource};
use super::packed::{self, UnpackError};

/// Set to `perfmap` to have `perf` name the functions of the guests' compiled code (see the
/// README's "Performance" section).
pub const PROFILER_ENV: &str = "REFRACT_WASM_PROFILER";

/// How often the epoch advances; batch deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Resource limits of one projection instance.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock time one call into the guest may take before it is interrupted.
    pub call_deadline: Duration,
    /// Largest linear memory an instance may grow to, in bytes.
    pub max_memory_bytes: usize,
    /// Most core instances a component may create.
    pub max_instances: usize,
    /// Most tables a component may create.
    pub max_tables: usize,
    /// Most linear memories a component may create.
    pub max_memories: usize,
    /// Most bytes the guest may hand the host in one call: the operations `apply` returns
    /// (measured as wasmtime copies them out of the guest, before the host holds them), or the
    /// arguments of one call into the host. `apply-packed`'s buffer is held to it as it is
    /// copied out, and the operations it holds again as they are read back, at what they take
    /// in the host's memory.
    pub max_result_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_deadline: Duration::from_secs(30),
            max_memory_bytes: 512 << 20,
            max_instances: 64,
            max_tables: 64,
            max_memories: 16,
            max_result_bytes: 64 << 20,
        }
    }
}

/// Why a component could not be loaded or a call into it failed.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    /// The component file could not be read.
    #[error("cannot read component {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The bytes are not a valid component.
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    /// The component does not fit the contract: a missing export, or an import the host
    /// does not provide.
    #[error("the component does not implement refract:projection@{version}: {message}")]
    Contract {
        /// The contract version it was held to, or the versions it could have implemented.
        version: String,
        /// What the linker said.
        message: String,
    },
    /// The component was built against a version of the contract this host does not speak.
    #[error(
        "the component was built against refract:projection@{version} (it uses `{interface}`), which this \
         engine does not know: it speaks refract:projection{host}; build the component against one of \
         these versions or upgrade the engine",
        host = spoken()
    )]
    ContractVersion {
        /// The contract version the component uses.
        version: String,
        /// The import or export that names it.
        interface: String,
    },
    /// The component imports an interface the host does not provide.
    #[error(
        "the component imports `{import}`, which this engine does not provide: a projection may import \
         refract:projection{host} and WASI 0.2 (cli, clocks, filesystem, io, random, sockets) only",
        host = spoken()
    )]
    UnknownImport {
        /// The import, as the component names it.
        import: String,
    },
    /// The guest handed the host more than [`Limits::max_result_bytes`] in one call.
    #[error(
        "the projection returned more than {} MiB in one call (its operations for the batch, or the \
         arguments of one call into the host), its limit (setting max_result_mib); refused while being \
         copied out of the guest or read back, before the host stored any of it",
        .0 >> 20
    )]
    ResultTooLarge(usize),
    /// The guest's packed operations (contract 0.2.0's `apply-packed`) are not in the format
    /// the contract gives.
    #[error("the projection returned a malformed operations buffer: {0}")]
    Malformed(refract_packed::Malformed),
    /// The guest trapped (a panic, an out-of-bounds access, memory exhausted).
    #[error("the projection trapped: {0}")]
    Trap(String),
    /// The guest ran past its deadline and was interrupted.
    #[error("the projection ran longer than its deadline of {0:?} and was interrupted")]
    Deadline(Duration),
    /// The engine itself could not be set up.
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
}

/// Compiles components and makes instances of them. Cheap to clone; one per engine process.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    _ticker: Arc<EpochTicker>,
    cache: Option<wasmtime::Cache>,
}

impl Runtime {
    /// A runtime with its own wasmtime engine and epoch thread, compiling without a cache.
    pub fn new() -> Result<Self, WasmError> {
        Self::with_cache(None)
    }

    /// A runtime whose compiled components are cached in `cache_dir` (an absolute path),
    /// keyed by their bytes and the engine's configuration, so that an unchanged component is
    /// never compiled twice, across restarts too; `None`: no cache.
    pub fn with_cache(cache_dir: Option<&Path>) -> Result<Self, WasmError> {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        if std::env::var_os(PROFILER_ENV).is_some_and(|value| value == "perfmap") {
            // Names the guests' compiled functions for `perf` (in /tmp/perf-<pid>.map).
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let cache = match cache_dir {
            Some(dir) => {
                let mut settings = wasmtime::CacheConfig::new();
                settings.with_directory(dir);
                let cache = wasmtime::Cache::new(settings)
                    .map_err(|e| WasmError::Engine(format!("compilation cache in {}: {e:#}", dir.display())))?;
                config.cache(Some(cache.clone()));
                Some(cache)
            }
            None => None,
        };
        let engine = Engine::new(&config).map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        v0_1_0::refract::projection::host::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        v0_1_0::refract::projection::types::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        v0_2_0::refract::projection::host::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        // 0.2.0's `types` is 0.1.0's (see `bindings`): an instance of types only.
        linker.instance("refract:projection/types@0.2.0").map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        let ticker = EpochTicker::start(engine.clone())
            .map_err(|e| WasmError::Engine(format!("cannot start the epoch thread: {e}")))?;
        Ok(Runtime { engine, linker: Arc::new(linker), _ticker: Arc::new(ticker), cache })
    }

    /// How many components this runtime compiled because its cache did not hold them (`None`
    /// without a cache).
    pub fn compiled(&self) -> Option<usize> {
        self.cache.as_ref().map(wasmtime::Cache::cache_misses)
    }

    /// Compiles the component in `bytes`.
    pub fn load(&self, bytes: &[u8]) -> Result<Projector, WasmError> {
        let component = Component::new(&self.engine, bytes).map_err(|e| WasmError::Invalid(format!("{e:#}")))?;
        check_contract_version(&self.engine, &component)?;
        let packed = exports_packed(&self.engine, &component);
        let pre = self.linker.instantiate_pre(&component).map_err(|e| unlinked(&self.engine, &component, e))?;
        let contract = |version: &'static str| {
            move |e: wasmtime::Error| WasmError::Contract { version: version.to_owned(), message: format!("{e:#}") }
        };
        let pre = if packed {
            BindingsPre::Packed(v0_2_0::ProjectorPre::new(pre).map_err(contract("0.2.0"))?)
        } else {
            BindingsPre::Records(v0_1_0::ProjectorPre::new(pre).map_err(contract("0.1.0"))?)
        };
        Ok(Projector { runtime: self.clone(), pre })
    }

    /// Reads and compiles the component file at `path`.
    pub fn load_file(&self, path: &Path) -> Result<Projector, WasmError> {
        let bytes = std::fs::read(path).map_err(|error| WasmError::Read { path: path.display().to_string(), error })?;
        self.load(&bytes)
    }
}

/// A compiled projection component, ready to be instantiated.
#[derive(Clone)]
pub struct Projector {
    runtime: Runtime,
    pre: BindingsPre,
}

/// A component's exports, ready to instantiate, by how it takes a batch.
#[derive(Clone)]
enum BindingsPre {
    /// Contract 0.1.0: `apply` with a list of event records.
    Records(v0_1_0::ProjectorPre<HostState>),
    /// Contract 0.2.0: `apply-packed` with one buffer.
    Packed(v0_2_0::ProjectorPre<HostState>),
}

/// The exports of an instance (see [`BindingsPre`]).
enum Bindings {
    Records(v0_1_0::Projector),
    Packed(v0_2_0::Projector),
}

impl Projector {
    /// A fresh instance within `limits` whose `get-row` calls go to `rows`. `name` labels
    /// its log records.
    pub fn instantiate(&self, name: &str, limits: &Limits, rows: Box<dyn RowSource>) -> Result<Instance, WasmError> {
        let mut store = Store::new(&self.runtime.engine, HostState::new(name.to_owned(), rows, limits));
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(deadline_ticks(limits.call_deadline));
        store.set_hostcall_fuel(limits.max_result_bytes);
        let bindings = match &self.pre {
            BindingsPre::Records(pre) => pre.instantiate(&mut store).map(Bindings::Records),
            BindingsPre::Packed(pre) => pre.instantiate(&mut store).map(Bindings::Packed),
        };
        let bindings = bindings.map_err(|e| classify(e, limits))?;
        Ok(Instance { projector: self.clone(), store, bindings, limits: limits.clone(), packed: Vec::new() })
    }
}

/// One live instance of a projection: its own store and memory. Calls are synchronous and
/// block the calling thread; run them on a thread of their own, not on an async worker.
pub struct Instance {
    projector: Projector,
    store: Store<HostState>,
    bindings: Bindings,
    limits: Limits,
    /// The last batch packed for `apply-packed`, kept for its capacity.
    packed: Vec<u8>,
}

impl Instance {
    /// Calls the guest's `describe`.
    pub fn describe(&mut self) -> Result<Description, WasmError> {
        self.store.data().environment.start_batch(0, 0);
        self.store.set_epoch_deadline(deadline_ticks(self.limits.call_deadline));
        let result = match &self.bindings {
            Bindings::Records(bindings) => bindings.refract_projection_projection().call_describe(&mut self.store),
            Bindings::Packed(bindings) => bindings.refract_projection_projection().call_describe(&mut self.store),
        };
        let result = result.map_err(|e| classify(e, &self.limits));
        let result = result.map_err(|e| self.store.data().explain(e));
        self.store.data().end_call();
        result
    }

    /// A fresh instance of the same component in place of this one, reading rows from the
    /// same source: the guest's linear memory, which never shrinks while an instance lives,
    /// is given back, and with it whatever the projection kept there (its row cache).
    pub fn renew(self) -> Result<Instance, WasmError> {
        let Instance { projector, store, limits, .. } = self;
        let state = store.into_data();
        projector.instantiate(&state.projection, &limits, state.rows)
    }

    /// Applies one batch in the guest: `apply-packed` for a component of contract 0.2.0,
    /// `apply` for one of 0.1.0. The outer error is the host's view (trap, deadline, a result
    /// over the limit or malformed); the inner one is the projection's own verdict on the batch.
    pub fn apply(&mut self, events: &[Event]) -> Result<Result<Vec<Op>, ProjectionError>, WasmError> {
        let (first, last) = (events.first().map_or(0, |e| e.global_position), events.last().map_or(0, |e| e.timestamp));
        self.store.data().environment.start_batch(first, last);
        self.store.set_epoch_deadline(deadline_ticks(self.limits.call_deadline));
        let result = match &self.bindings {
            Bindings::Records(bindings) => {
                bindings.refract_projection_projection().call_apply(&mut self.store, events).map(Ok)
            }
            Bindings::Packed(bindings) => {
                packed::pack_events(events, &mut self.packed);
                let projection = bindings.refract_projection_projection();
                let budget = self.limits.max_result_bytes;
                projection.call_apply_packed(&mut self.store, &self.packed).map(|result| match result {
                    Ok(ops) => packed::unpack_ops(&ops, budget).map(Ok).map_err(WasmError::from),
                    Err(refusal) => Ok(Err(refusal)),
                })
            }
        };
        let result = result.map_err(|e| classify(e, &self.limits)).and_then(|result| result);
        let result = result.map_err(|e| self.store.data().explain(e));
        self.store.data().end_call();
        result
    }
}

/// Whether `component` exports the projection interface of contract 0.2.x (`apply-packed`).
fn exports_packed(engine: &Engine, component: &Component) -> bool {
    component.component_type().exports(engine).any(|(name, _)| {
        name.strip_prefix("refract:projection/projection@")
            .is_some_and(|version| compatibility(version) == Some((0, 2)))
    })
}

/// The contract versions this host speaks, as error messages name them: `@0.1.0 and @0.2.0`.
fn spoken() -> String {
    super::CONTRACT_VERSIONS.map(|version| format!("@{version}")).join(" and ")
}

impl From<UnpackError> for WasmError {
    fn from(error: UnpackError) -> Self {
        match error {
            UnpackError::Malformed(malformed) => WasmError::Malformed(malformed),
            UnpackError::TooLarge(limit) => WasmError::ResultTooLarge(limit),
        }
    }
}

fn deadline_ticks(deadline: Duration) -> u64 {
    (deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}

fn classify(error: wasmtime::Error, limits: &Limits) -> WasmError {
    /// How wasmtime says that a call ran out of hostcall fuel (its error type is private).
    const FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => WasmError::Deadline(limits.call_deadline),
        _ if error.chain().any(|cause| cause.to_string().contains(FUEL_EXHAUSTED)) => {
            WasmError::ResultTooLarge(limits.max_result_bytes)
        }
        _ => {
            // One line for the status: the cause, not wasmtime's backtrace (logged for debugging).
            tracing::debug!(error = format!("{error:?}"), "guest call failed");
            WasmError::Trap(error.root_cause().to_string())
        }
    }
}

/// Refuses a component that imports or exports the contract at a version this host cannot
/// serve (another major version, or another minor one before 1.0), naming it.
fn check_contract_version(engine: &Engine, component: &Component) -> Result<(), WasmError> {
    let ty = component.component_type();
    let mut names = ty.imports(engine).map(|(name, _)| name).chain(ty.exports(engine).map(|(name, _)| name));
    let newer = names.find_map(|name| {
        let version = name.strip_prefix("refract:projection/")?.split_once('@').map_or("", |(_, v)| v);
        let known = super::CONTRACT_VERSIONS.iter().any(|spoken| compatibility(spoken) == compatibility(version));
        (!known).then(|| (version.to_owned(), name.to_owned()))
    });
    match newer {
        Some((version, interface)) => Err(WasmError::ContractVersion { version, interface }),
        None => Ok(()),
    }
}

/// The semver track of `version`: versions on one track are compatible (`0.1.x`; `1.x.y`).
fn compatibility(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.split('.').map(|part| part.parse::<u64>().ok());
    let (major, minor) = (parts.next()??, parts.next()??);
    Some(if major == 0 { (0, minor) } else { (major, 0) })
}

/// The linker's refusal of `component`, naming the import it could not satisfy when it can.
fn unlinked(engine: &Engine, component: &Component, error: wasmtime::Error) -> WasmError {
    let message = format!("{error:#}");
    let ty = component.component_type();
    let mut imports = ty.imports(engine).map(|(name, _)| name);
    match imports.find(|name| message.contains(&format!("`{name}`"))) {
        Some(import) => WasmError::UnknownImport { import: import.to_owned() },
        None => WasmError::Contract { version: super::CONTRACT_VERSIONS.join(" or @"), message },
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a thread of its own, so that a
/// guest that never returns is interrupted at its deadline. Stops when dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new().name("refract-epoch".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })?;
        Ok(EpochTicker { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
