//! The Dockerfile, variable-expansion and `.dockerignore` modules of `slipway-runtime`,
//! compiled here on their own from the runtime's source files: they depend on nothing
//! else in the runtime, and building the whole runtime (tokio, oci-spec, ...) with coverage
//! instrumentation takes minutes instead of seconds. The module tree mirrors the runtime's,
//! so the files' `crate::build::...` paths resolve the same way.

pub mod build;
