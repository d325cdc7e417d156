//! Docker's seccomp profile, compiled to BPF.
//!
//! - [`docker_default`] resolves Docker's default profile for a container's capabilities,
//!   the running architecture and kernel, into the OCI `LinuxSeccomp` Docker would write
//!   into `config.json`.
//! - [`compile`] turns any OCI seccomp spec into a [`Filter`] with libseccomp, caching the
//!   result in memory and, optionally, on disk.
//! - [`Filter::install`] loads it with one `seccomp(2)` call; it is async-signal-safe, for
//!   the forked child just before `execve`. The caller sets no_new_privs first (or keeps
//!   CAP_SYS_ADMIN), as the kernel requires.
//!
//! Behaviour worth knowing:
//! - a syscall name libseccomp does not know for the filter's architectures is skipped,
//!   as runc does (libseccomp 2.5.4, Debian bookworm's, does not know the syscalls added
//!   after Linux 6.6: statmount, listmount, mseal, lsm_*, *xattrat, ...);
//! - as in runc, a syscall numbered above every syscall the spec names returns ENOSYS
//!   rather than the default action, so libc can fall back from a syscall the profile
//!   does not know (see `compile.rs`); with Docker's profile and libseccomp 2.5.4 that
//!   covers the syscalls above;
//! - a rule whose action equals the default action is dropped (libseccomp refuses it);
//! - a rule comparing the same argument twice becomes one rule per comparison (OR), as
//!   in runc and crun; otherwise the comparisons of a rule are ANDed;
//! - SCMP_ACT_NOTIFY and SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV are refused: they need a
//!   seccomp agent, which Slipway does not run;
//! - a process of an architecture missing from the filter is killed (libseccomp's
//!   default bad-architecture action).

mod cache;
mod compile;
mod profile;
mod profile_table;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag};

/// Docker's default seccomp profile, resolved for a container with the given capabilities
/// (its bounding set), for the running architecture and kernel: the OCI `LinuxSeccomp`
/// that Docker would put into the container's config.json (defaultAction SCMP_ACT_ERRNO
/// with defaultErrnoRet 1; architectures [SCMP_ARCH_X86_64, SCMP_ARCH_X86, SCMP_ARCH_X32]
/// on x86_64 and [SCMP_ARCH_AARCH64, SCMP_ARCH_ARM] on aarch64; the rule groups whose
/// includes and excludes match).
pub fn docker_default(caps: &[caps::Capability]) -> LinuxSeccomp {
    profile::resolve(caps, profile::running_arch_name(), profile::KernelVersion::running())
}

/// A compiled BPF program, ready to load.
#[derive(Clone)]
pub struct Filter {
    program: Arc<[libc::sock_filter]>,
    flags: u32,
}

impl Filter {
    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.program.len()
    }

    /// Whether the program is empty (never true for a compiled filter).
    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits [`install`](Self::install) passes to the kernel.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Loads the filter into the calling thread with
    /// `seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)`.
    ///
    /// Async-signal-safe: no allocation, no lock; it is meant for a forked child just
    /// before `execve`. The kernel requires no_new_privs (or CAP_SYS_ADMIN). With
    /// SECCOMP_FILTER_FLAG_TSYNC, a thread that cannot be synchronised makes it fail
    /// with `ESRCH`.
    pub fn install(&self) -> Result<(), Errno> {
        let prog = libc::sock_fprog {
            len: self.program.len() as libc::c_ushort,
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points to `len` valid instructions that outlive the call; the
        // kernel copies them and does not write through the pointer.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
                libc::c_ulong::from(self.flags),
                &prog as *const libc::sock_fprog,
            )
        };
        match rc {
            0 => Ok(()),
            rc if rc < 0 => Err(Errno::last()),
            // TSYNC: the id of the thread that could not be synchronised.
            _ => Err(Errno::ESRCH),
        }
    }
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &self.program.len())
            .field("flags", &format_args!("{:#x}", self.flags))
            .finish()
    }
}

/// Compiles an OCI seccomp spec to BPF with libseccomp.
///
/// Every action but SCMP_ACT_NOTIFY (refused: it needs a seccomp agent), every operator,
/// the architectures and the flags TSYNC, LOG and SPEC_ALLOW are supported. Syscall names
/// unknown for this architecture are skipped, as runc does.
///
/// Results are cached in memory by the SHA-256 of the spec's JSON and, with `cache_dir`,
/// on disk as `<cache_dir>/<sha256>.bpf` (written atomically, temporary file + rename;
/// the directory is created if needed). A corrupt or stale cache file is ignored and
/// rewritten; a cache directory that cannot be read or written is an error
/// ([`SeccompError::Cache`]).
pub fn compile(spec: &LinuxSeccomp, cache_dir: Option<&Path>) -> Result<Filter, SeccompError> {
    compile_with(spec, cache_dir, true).map(|(filter, _)| filter)
}

/// Where [`compile_with`] found its filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    Memory,
    Disk,
    Compiled,
}

pub(crate) fn compile_with(
    spec: &LinuxSeccomp,
    cache_dir: Option<&Path>,
    use_memory: bool,
) -> Result<(Filter, Origin), SeccompError> {
    let key = cache::key(spec)?;
    if use_memory && let Some(filter) = cache::memory_get(&key) {
        return Ok((filter, Origin::Memory));
    }
    let path = cache_dir.map(|dir| cache::file_path(dir, &key));
    if let Some(path) = &path
        && let Some(compiled) = cache::read(path)?
    {
        let filter = cache::to_filter(compiled);
        cache::memory_put(key, &filter);
        tracing::debug!(path = %path.display(), instructions = filter.len(), "seccomp filter loaded from cache");
        return Ok((filter, Origin::Disk));
    }
    let compiled = compile::compile_spec(spec)?;
    if let Some(path) = &path {
        cache::write(path, &compiled)?;
    }
    let filter = cache::to_filter(compiled);
    cache::memory_put(key, &filter);
    tracing::debug!(instructions = filter.len(), "seccomp filter compiled");
    Ok((filter, Origin::Compiled))
}

/// Why a seccomp spec could not be compiled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeccompError {
    /// An action Slipway cannot apply (SCMP_ACT_NOTIFY).
    #[error("seccomp {what}: action {action} is not supported: {reason}")]
    UnsupportedAction {
        /// Where in the spec: `defaultAction` or `syscalls[i]`.
        what: String,
        action: LinuxSeccompAction,
        reason: &'static str,
    },
    /// A filter flag Slipway cannot apply (SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV).
    #[error("seccomp flag {0} is not supported: it only applies to SCMP_ACT_NOTIFY, which Slipway does not support")]
    UnsupportedFlag(LinuxSeccompFilterFlag),
    /// An architecture libseccomp cannot build a filter for.
    #[error("seccomp architecture {arch} is not supported ({reason})")]
    BadArch { arch: Arch, reason: String },
    /// An errnoRet that does not fit the 16 bits of SECCOMP_RET_DATA.
    #[error("seccomp {what}: errnoRet {value} is out of range (0 to 65535)")]
    InvalidErrno { what: String, value: u32 },
    /// A syscall argument index past the sixth argument.
    #[error("seccomp syscalls[{rule}]: argument index {index} is out of range (0 to 5)")]
    InvalidArgIndex { rule: usize, index: usize },
    /// libseccomp refused something; `context` says what we were doing.
    #[error("libseccomp failed {context}: {source}")]
    Libseccomp {
        context: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    /// The program is longer than the kernel accepts.
    #[error("seccomp filter has {0} instructions; the kernel accepts at most 4096")]
    TooLarge(usize),
    /// Reading or writing the on-disk cache failed.
    #[error("seccomp cache {}: {source}", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Other I/O while compiling (the memfd the program is exported through).
    #[error("seccomp {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The spec could not be serialised for its cache key.
    #[error("seccomp spec cannot be serialised: {0}")]
    Spec(#[from] serde_json::Error),
}
