//! Support shared by the integration tests; each `tests/*.rs` file includes it with `mod common;`.

pub mod lab;
pub mod load;
pub mod project;
pub mod reference;
pub mod registry;
