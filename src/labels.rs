//! The label namespace hoist writes on every object it creates.
//!
//! Labels are hoist's only state: observing a project means listing objects by
//! these labels on every machine. An object without `io.hoist.project` is never touched.

/// The project an object belongs to.
pub const PROJECT: &str = "io.hoist.project";
