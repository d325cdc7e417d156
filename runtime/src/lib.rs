//! Slipway's embedded container runtime.
//!
//! A library with no HTTP in it: the server and the `slipway runtime` command line call it.
//! It speaks the OCI runtime spec (through `oci-spec`) and gives containers Docker's
//! isolation: namespaces, a pivoted overlay or bundle root, Docker's mounts, masked and
//! read-only paths, capabilities, seccomp profile, cgroups (v1 and v2), rlimits and
//! no_new_privs.
//!
//! One concern per module, as crun and youki lay theirs out:
//! - [`spec`]: Docker's defaults as an OCI spec;
//! - [`seccomp`]: Docker's seccomp profile, compiled to BPF;
//! - [`cgroups`]: cgroup v1 and v2 managers (limits, stats, freezer, devices, OOM);
//! - [`logs`]: container logs, written as JSON lines, rotated, read back;
//! - [`host`]: what the host offers.

pub mod cgroups;
pub mod container;
pub mod error;
pub mod foreground;
pub mod host;
pub mod linux;
pub mod logs;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod state;

pub use container::Runtime;
pub use error::RuntimeError;
pub mod build;
pub mod image;
pub mod monitor;
