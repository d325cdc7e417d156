//! Slipway's embedded container runtime and image store.
//!
//! This crate knows nothing of HTTP: the server calls it as a library. It grows with the
//! runtime issue; for now it only reports what the host offers.

pub mod host;
