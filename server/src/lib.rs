#![recursion_limit = "256"]
//! Slipway: a self-hosted Docker learning lab.
//!
//! The library half of the `slipway` binary. Each module is one concern:
//! - [`config`]: settings from flags, `SLIPWAY_*` variables and `slipway.toml`;
//! - [`course`]: lessons loaded from Markdown, rendered, and linted;
//! - [`import`]: turning arbitrary course notes into lessons;
//! - [`runtime_cli`]: `slipway runtime`, the runc-like face of the embedded runtime;
//! - [`store`]: learners, accounts and progress in SQLite;
//! - [`web`]: the HTTP face (pages, assets, identity);
//! - [`bench`]: the speed targets, measured against a peer.

pub mod bench;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod course;
pub mod engine;
pub mod grader;
pub mod images_cli;
pub mod import;
pub mod playground;
pub mod playground_cli;
pub mod runtime_cli;
pub mod store;
pub mod web;
