//! Host bindings of the projection contract, generated from `wit/`.
//!
//! One module per contract version the host loads. The versions share the types of the
//! oldest (`types` of 0.2.0 is mapped onto 0.1.0's, which it repeats unchanged), so that the
//! engine works with one set of types whichever version a component was built against.

/// Bindings of `refract:projection@0.1.0`.
pub mod v0_1_0 {
    #![allow(missing_docs, reason = "generated code; the WIT file documents every item")]
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "projector",
    });
}

/// Bindings of `refract:projection@0.2.0`: 0.1.0 and `apply-packed`.
pub mod v0_2_0 {
    #![allow(missing_docs, reason = "generated code; the WIT file documents every item")]
    wasmtime::component::bindgen!({
        path: "../wit/v0.2.0",
        world: "projector",
        with: {
            "refract:projection/types@0.2.0": super::v0_1_0::refract::projection::types,
        },
    });
}

pub use v0_1_0::refract::projection::host;
pub use v0_1_0::refract::projection::types;

/// The contract versions this host speaks, oldest first, as they appear in interface names.
pub const CONTRACT_VERSIONS: [&str; 2] = ["0.1.0", "0.2.0"];
