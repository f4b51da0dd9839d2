//! The one place the host binds the contract (`policy-sdk/wit`, the only copy
//! of the WIT). The `stages` world includes the three stage interfaces and the
//! shared `types` import.

#![allow(unsafe_code, missing_docs, clippy::all)]

wasmtime::component::bindgen!({
    path: "../policy-sdk/wit",
    world: "stages",
    additional_derives: [PartialEq],
    with: {
        "postern:policy/types.message": crate::runtime::host_message::MessageHandle,
    },
});
