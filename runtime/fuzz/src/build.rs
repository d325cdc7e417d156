//! `slipway-runtime`'s `build` module, reduced to the parts under test.

#[path = "../../src/build/dockerfile/mod.rs"]
pub mod dockerfile;
#[path = "../../src/build/expand.rs"]
pub mod expand;
#[path = "../../src/build/ignore.rs"]
pub mod ignore;
