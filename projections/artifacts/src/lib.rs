//! The example projections, the projections of `refract bench` (`NOOP`, `UPSERT_PER_EVENT`), the
//! variants of `order_summary` that tests deploy (`ORDER_SUMMARY_V2`, `ORDER_SUMMARY_TINY_CACHE`,
//! from `tests/fixtures`), and the hostile fixtures of the sandbox tests (`HOSTILE_*`, one
//! misbehaving projection `hostile_<feature>` each, from `tests/fixtures/hostile`), built as
//! WebAssembly components by this crate's build script.
//!
//! Each constant is the absolute path of a `.wasm` component, ready for the engine to load:
//!
//! ```no_run
//! let bytes = std::fs::read(refract_projection_artifacts::ORDER_SUMMARY).unwrap();
//! for (name, path) in refract_projection_artifacts::all() {
//!     println!("{name}: {path}");
//! }
//! # drop(bytes);
//! ```
//!
//! Building this crate (it is part of `cargo build` of the workspace) builds the components
//! with `cargo build --release --target wasm32-wasip2`, adding the target with rustup when
//! it is missing. The guests have a target directory of their own, `target/refract-guests`.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
