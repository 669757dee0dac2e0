//! Host bindings of the projection contract, generated from `wit/`.
//!
//! One module per contract version the host loads; today that is `v0.1.0` only. When a new
//! minor version is released, its bindings get a module of their own and the older ones are
//! converted to the newest types, so that the engine works with one set of types.

/// Bindings of `refract:projection@0.1.0`.
pub mod v0_1_0 {
    #![allow(missing_docs, reason = "generated code; the WIT file documents every item")]
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "projector",
    });
}

pub use v0_1_0::Projector as ProjectorBindings;
pub use v0_1_0::ProjectorPre as ProjectorBindingsPre;
pub use v0_1_0::refract::projection::host;
pub use v0_1_0::refract::projection::types;

/// The contract version this host speaks, as it appears in interface names.
pub const CONTRACT_VERSION: &str = "0.1.0";
