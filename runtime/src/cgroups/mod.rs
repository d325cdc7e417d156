//! Cgroup v1 and v2 managers: limits, processes, freezer, devices, OOM counts and stats.
//!
//! [`Hierarchy::detect`] reads `/proc/self/mountinfo` to learn how the host mounts cgroups:
//! - **v1** (this machine and CI): one hierarchy per controller (or per group of comounted
//!   controllers, such as `cpu,cpuacct`), plus, on a "hybrid" host, a cgroup2 mount with few
//!   or no controllers (`/sys/fs/cgroup/unified`);
//! - **v2**: one unified hierarchy.
//!
//! A [`Cgroup`] is one relative path (for example `slipway/pg-1/node1`) that exists below the
//! mount point of every hierarchy it uses. Paths are relative to the mount points, not to the
//! caller's own cgroup.
//!
//! Devices: v1 writes the kernel's `devices.allow` / `devices.deny`; v2 has no devices file,
//! so [`Cgroup::apply`] compiles the OCI rules into a `BPF_PROG_TYPE_CGROUP_DEVICE` program
//! and attaches it to the cgroup directory (see `bpf.rs`). Both are computed from the same
//! emulation of the kernel's v1 rule semantics (see `devices.rs`), so the two behave alike.

mod bpf;
mod devices;
mod fsio;
mod mountinfo;
mod resources;
mod stats;
mod v1;
mod v2;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use devices::{docker_default_devices, runtime_default_devices};
pub use stats::{CpuStats, IoStats, MemoryStats, PidsStats, Stats};

/// How long [`Cgroup::freeze`] and [`Cgroup::thaw`] wait for the kernel to report the new state.
pub const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Cgroup::kill_all`] keeps killing before it gives up.
pub const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Cgroup::destroy`] retries `rmdir` while the kernel still reports EBUSY.
pub const RMDIR_TIMEOUT: Duration = Duration::from_secs(2);

/// Errors from cgroup operations. Every variant names the cgroup (its relative path), and
/// file system errors name the file and the operation.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// `/proc/self/mountinfo` could not be read.
    #[error("cannot read {file}: {source}")]
    Mountinfo {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A line of mountinfo did not have the documented shape.
    #[error("malformed mountinfo line {line}: {text:?}")]
    MountinfoSyntax { line: usize, text: String },
    /// No cgroup or cgroup2 file system is mounted.
    #[error("no cgroup file system is mounted (per /proc/self/mountinfo)")]
    NoCgroupMounts,
    /// The relative cgroup path given to [`Cgroup::new`] is not acceptable.
    #[error("invalid cgroup path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    /// The resources ask for a controller this host does not offer to this cgroup
    /// (v1: not mounted; v2: not in the cgroup's `cgroup.controllers`).
    #[error("cgroup {cgroup}: controller {controller} is not available")]
    ControllerNotAvailable { controller: String, cgroup: String },
    /// The cgroup does not exist (in any hierarchy).
    #[error("cgroup {cgroup} does not exist")]
    NotFound { cgroup: String },
    /// A file system operation failed.
    #[error("cgroup {cgroup}: cannot {op} {file}: {source}")]
    Io {
        cgroup: String,
        op: String,
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A cgroup file held something we could not parse.
    #[error("cgroup {cgroup}: unexpected content in {file}: {content:?}")]
    Parse {
        cgroup: String,
        file: PathBuf,
        content: String,
    },
    /// The OCI resources are inconsistent or cannot be expressed.
    #[error("cgroup {cgroup}: invalid resources: {reason}")]
    InvalidResources { cgroup: String, reason: String },
    /// A bpf(2) call for the v2 device filter failed.
    #[error("cgroup {cgroup}: bpf {op} failed: {source}{}", if log.is_empty() { String::new() } else { format!("; verifier log: {log}") })]
    Bpf {
        cgroup: String,
        op: &'static str,
        #[source]
        source: io::Error,
        log: String,
    },
    /// The kernel did not reach the wanted state in time.
    #[error("cgroup {cgroup}: timed out after {waited:?} waiting for {what}")]
    Timeout {
        cgroup: String,
        what: String,
        waited: Duration,
    },
    /// [`Cgroup::kill_all`] or [`Cgroup::destroy`] was asked to kill a cgroup that holds the
    /// calling process.
    #[error("cgroup {cgroup} holds the calling process (pid {pid}); refusing to kill it")]
    ContainsCaller { cgroup: String, pid: i32 },
}

impl CgroupError {
    /// True for [`CgroupError::ControllerNotAvailable`].
    pub fn is_controller_not_available(&self) -> bool {
        matches!(self, CgroupError::ControllerNotAvailable { .. })
    }

    /// The OS error number behind an I/O error, if any (e.g. `EBUSY` when a memory limit is
    /// below the current usage on v1).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            CgroupError::Io { source, .. } | CgroupError::Bpf { source, .. } => source.raw_os_error(),
            CgroupError::Mountinfo { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// How the host mounts cgroups, found from /proc/self/mountinfo (not by guessing paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// Cgroup v1: each controller name (`memory`, `cpu`, `name=systemd`, ...) maps to the
    /// mount point of its hierarchy (comounted controllers share one path). `unified` is the
    /// cgroup2 mount of a hybrid host, if any.
    V1 {
        mounts: BTreeMap<String, PathBuf>,
        unified: Option<PathBuf>,
    },
    /// Pure cgroup v2, mounted at `root`.
    V2 { root: PathBuf },
}

impl Hierarchy {
    /// Reads `/proc/self/mountinfo`.
    pub fn detect() -> Result<Hierarchy, CgroupError> {
        let file = PathBuf::from("/proc/self/mountinfo");
        let text = std::fs::read_to_string(&file).map_err(|source| CgroupError::Mountinfo { file, source })?;
        Hierarchy::from_mountinfo(&text)
    }

    /// Parses mountinfo text. Any v1 hierarchy with a real controller makes the host v1
    /// (with the cgroup2 mount, if present, as `unified`); otherwise a cgroup2 mount makes it
    /// v2. The first mount of each hierarchy wins, except that a mount of the hierarchy's root
    /// (`/`) is preferred over a mount of a sub-cgroup.
    pub fn from_mountinfo(text: &str) -> Result<Hierarchy, CgroupError> {
        mountinfo::parse(text)
    }

    /// A v2 hierarchy at the given cgroup2 mount point (for tests, or hosts where the caller
    /// knows better than mountinfo).
    pub fn v2_at(root: PathBuf) -> Hierarchy {
        Hierarchy::V2 { root }
    }

    /// True for [`Hierarchy::V2`].
    pub fn is_v2(&self) -> bool {
        matches!(self, Hierarchy::V2 { .. })
    }

    /// The controllers this host offers: v1, the mounted controllers (named hierarchies such
    /// as `name=systemd` left out); v2, the root's `cgroup.controllers`.
    pub fn controllers(&self) -> Result<BTreeSet<String>, CgroupError> {
        match self {
            Hierarchy::V1 { mounts, .. } => Ok(mounts.keys().filter(|k| !k.starts_with("name=")).cloned().collect()),
            Hierarchy::V2 { root } => {
                let file = root.join("cgroup.controllers");
                let text = fsio::read("", &file)?;
                Ok(text.split_whitespace().map(str::to_string).collect())
            }
        }
    }
}

/// One cgroup: the same relative path in every hierarchy, e.g. `"slipway/pg-1/node1"`.
///
/// `Cgroup::new` touches nothing; [`Cgroup::create`] makes the directories and
/// [`Cgroup::destroy`] removes them. Dropping a `Cgroup` does nothing.
#[derive(Debug, Clone)]
pub struct Cgroup {
    path: String,
    imp: Imp,
}

#[derive(Debug, Clone)]
enum Imp {
    V1(v1::V1),
    V2(v2::V2),
}

impl Cgroup {
    /// Names a cgroup. Rejects empty and absolute paths, `.` and `..` components, empty
    /// components, and NUL or newline characters. A trailing `/` is dropped.
    pub fn new(hierarchy: &Hierarchy, path: &str) -> Result<Cgroup, CgroupError> {
        let path = validate_path(path)?;
        let imp = match hierarchy {
            Hierarchy::V1 { mounts, unified } => Imp::V1(v1::V1::new(&path, mounts, unified.as_deref())),
            Hierarchy::V2 { root } => Imp::V2(v2::V2::new(&path, root)),
        };
        Ok(Cgroup { path, imp })
    }

    /// The relative path this cgroup was named with.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// True when this cgroup lives on a pure v2 host (or a v2 hierarchy given by
    /// [`Hierarchy::v2_at`]).
    pub fn is_v2(&self) -> bool {
        matches!(self.imp, Imp::V2(_))
    }

    /// v1: that controller's directory for this cgroup (if the controller is mounted);
    /// v2: the unified directory, whatever the controller.
    pub fn dir(&self, controller: &str) -> Option<PathBuf> {
        match &self.imp {
            Imp::V1(c) => c.dir(controller),
            Imp::V2(c) => Some(c.dir.clone()),
        }
    }

    /// The cgroup2 directory of this cgroup: v2, its directory; v1, its directory in the
    /// hybrid host's cgroup2 mount (where [`Cgroup::create`] also makes it), if there is one.
    /// Useful for `clone3(CLONE_INTO_CGROUP)`.
    pub fn unified_dir(&self) -> Option<PathBuf> {
        match &self.imp {
            Imp::V1(c) => c.unified.clone(),
            Imp::V2(c) => Some(c.dir.clone()),
        }
    }

    /// True if the cgroup's directory exists in at least one hierarchy.
    pub fn exists(&self) -> bool {
        self.all_dirs().iter().any(|d| d.is_dir())
    }

    /// `mkdir -p` in every hierarchy this cgroup uses.
    ///
    /// v1: cpu, cpuacct, cpuset, memory, devices, freezer, pids, blkio (and hugetlb, net_cls,
    /// net_prio when mounted); each new cpuset directory gets `cpuset.cpus`/`cpuset.mems` from
    /// its parent, as v1 requires before a task can join. On a hybrid host the directory is also
    /// made, best effort, in the cgroup2 mount (as runc does), which gives `cgroup.kill`.
    ///
    /// v2: enables `cpu cpuset io memory pids` (those available) in each ancestor's
    /// `cgroup.subtree_control`. Other controllers (e.g. hugetlb) are enabled by
    /// [`Cgroup::apply`] only when a resource needs them.
    pub fn create(&self) -> Result<(), CgroupError> {
        match &self.imp {
            Imp::V1(c) => c.create(),
            Imp::V2(c) => c.create(),
        }
    }

    /// Applies OCI resources: memory (limit, reservation, swap, swappiness, kernel TCP),
    /// pids, cpu (shares or v2 weight, quota/period, burst, idle, realtime on v1, cpuset
    /// cpus/mems), block I/O (weights and throttles), hugepage limits, v1 network classes,
    /// v2 `unified` keys, and devices. `disable_oom_killer` and kernel memory are ignored with a
    /// warning.
    ///
    /// Every controller a restricting setting needs is checked before anything is written;
    /// a missing one gives [`CgroupError::ControllerNotAvailable`]. Settings that only lift a
    /// limit (`-1`, "max") are skipped when the controller is absent. Optional kernel files
    /// (v1 `memory.memsw.*`, `memory.swap.max`, `cpu.rt_*`, ...) are skipped with a warning
    /// when the kernel lacks them.
    pub fn apply(&self, r: &oci_spec::runtime::LinuxResources) -> Result<(), CgroupError> {
        match &self.imp {
            Imp::V1(c) => c.apply(r),
            Imp::V2(c) => c.apply(r),
        }
    }

    /// Moves a process (all its threads) into this cgroup in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        if pid <= 0 {
            return Err(CgroupError::InvalidResources {
                cgroup: self.path.clone(),
                reason: format!("invalid pid {pid}"),
            });
        }
        match &self.imp {
            Imp::V1(c) => c.add_process(pid),
            Imp::V2(c) => c.add_process(pid),
        }
    }

    /// The processes directly in this cgroup (not in its descendants), sorted. On v1, the union
    /// over every hierarchy.
    pub fn procs(&self) -> Result<Vec<i32>, CgroupError> {
        self.collect_procs(false)
    }

    /// The processes in this cgroup and all its descendants, sorted.
    pub fn all_procs(&self) -> Result<Vec<i32>, CgroupError> {
        self.collect_procs(true)
    }

    fn collect_procs(&self, recursive: bool) -> Result<Vec<i32>, CgroupError> {
        let mut set = BTreeSet::new();
        let mut found = false;
        for dir in self.all_dirs() {
            if fsio::collect_procs(&self.path, &dir, recursive, &mut set)? {
                found = true;
            }
        }
        if !found {
            return Err(self.not_found());
        }
        Ok(set.into_iter().collect())
    }

    /// Freezes every process in the cgroup (and its descendants) and waits until the kernel
    /// reports the cgroup frozen. v1: `freezer.state` = FROZEN; v2: `cgroup.freeze` = 1, then
    /// `cgroup.events` shows `frozen 1`. On timeout the cgroup is thawed again and
    /// [`CgroupError::Timeout`] is returned.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        match &self.imp {
            Imp::V1(c) => c.freeze(FREEZE_TIMEOUT),
            Imp::V2(c) => v2::freeze(&self.path, &c.dir, FREEZE_TIMEOUT),
        }
    }

    /// Undoes [`Cgroup::freeze`] and waits until the kernel reports the cgroup thawed (unless an
    /// ancestor is frozen on v1, in which case it returns at once).
    pub fn thaw(&self) -> Result<(), CgroupError> {
        match &self.imp {
            Imp::V1(c) => c.thaw(FREEZE_TIMEOUT),
            Imp::V2(c) => v2::thaw(&self.path, &c.dir, FREEZE_TIMEOUT),
        }
    }

    /// True when the kernel reports the cgroup frozen (by itself or by an ancestor).
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        match &self.imp {
            Imp::V1(c) => c.is_frozen(),
            Imp::V2(c) => v2::is_frozen(&self.path, &c.dir),
        }
    }

    /// Resource usage. Missing controllers or files give `None` fields, not errors; a cgroup
    /// that does not exist gives [`CgroupError::NotFound`].
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        if !self.exists() {
            return Err(self.not_found());
        }
        match &self.imp {
            Imp::V1(c) => c.stats(),
            Imp::V2(c) => stats::collect_v2(&self.path, &c.dir),
        }
    }

    /// How many processes the OOM killer has killed in this cgroup. v1: `oom_kill` in
    /// `memory.oom_control` (0 on kernels that lack it); v2: `oom_kill` in `memory.events`
    /// (which counts descendants too).
    pub fn oom_kills(&self) -> Result<u64, CgroupError> {
        match &self.imp {
            Imp::V1(c) => c.oom_kills(),
            Imp::V2(c) => v2::oom_kills(&self.path, &c.dir),
        }
    }

    /// Kills every process in the cgroup and its descendants, and waits until none is left.
    ///
    /// Each round: write `cgroup.kill` when the kernel has it (v2, or the cgroup2 twin of a
    /// hybrid v1 host); if processes remain, freeze (so that nothing can fork while we list),
    /// SIGKILL every listed pid, thaw (frozen v1 tasks only die once thawed). Gives up after
    /// [`KILL_TIMEOUT`]. A missing cgroup is fine. Refuses, with
    /// [`CgroupError::ContainsCaller`], to kill a cgroup that holds the calling process.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        let me = nix::unistd::getpid().as_raw();
        let deadline = Instant::now() + KILL_TIMEOUT;
        let mut used_kill_file = false;
        loop {
            let pids = self.remaining_procs()?;
            if pids.is_empty() {
                return Ok(());
            }
            if pids.contains(&me) {
                return Err(CgroupError::ContainsCaller {
                    cgroup: self.path.clone(),
                    pid: me,
                });
            }
            if Instant::now() > deadline {
                return Err(CgroupError::Timeout {
                    cgroup: self.path.clone(),
                    what: format!("processes {pids:?} to die"),
                    waited: KILL_TIMEOUT,
                });
            }
            // cgroup.kill first: atomic, and it also reaches tasks forking right now.
            if !used_kill_file
                && let Some(file) = self.unified_dir().map(|d| d.join("cgroup.kill"))
                && file.exists()
            {
                fsio::write(&self.path, &file, "1")?;
                used_kill_file = true;
                if self.wait_empty(Duration::from_millis(500))? {
                    return Ok(());
                }
                continue;
            }
            let froze = self.freeze_for_kill();
            for pid in self.remaining_procs()? {
                if pid != me {
                    // SAFETY: kill(2) has no memory-safety preconditions; ESRCH is fine.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            if froze {
                self.thaw_after_kill();
            }
            if self.wait_empty(Duration::from_millis(200))? {
                return Ok(());
            }
            // Let cgroup.kill be tried again in the next round: a process may have joined.
            used_kill_file = false;
        }
    }

    /// The processes of the subtree, or none if the cgroup does not exist.
    fn remaining_procs(&self) -> Result<Vec<i32>, CgroupError> {
        match self.all_procs() {
            Err(CgroupError::NotFound { .. }) => Ok(Vec::new()),
            other => other,
        }
    }

    fn wait_empty(&self, within: Duration) -> Result<bool, CgroupError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            if self.remaining_procs()?.is_empty() {
                return Ok(true);
            }
            if start.elapsed() >= within {
                return Ok(false);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    fn freeze_for_kill(&self) -> bool {
        let result = match &self.imp {
            Imp::V1(c) if c.can_freeze() => c.freeze_no_rollback(Duration::from_millis(500)),
            Imp::V2(c) if c.dir.join("cgroup.freeze").exists() => {
                v2::freeze_no_rollback(&self.path, &c.dir, Duration::from_millis(500))
            }
            _ => return false,
        };
        if let Err(e) = result {
            tracing::debug!(cgroup = %self.path, error = %e, "freeze before kill incomplete");
        }
        true
    }

    fn thaw_after_kill(&self) {
        let result = match &self.imp {
            Imp::V1(c) => c.thaw(Duration::from_millis(500)),
            Imp::V2(c) => v2::thaw(&self.path, &c.dir, Duration::from_millis(500)),
        };
        if let Err(e) = result {
            tracing::debug!(cgroup = %self.path, error = %e, "thaw after kill incomplete");
        }
    }

    /// [`Cgroup::kill_all`], then removes this cgroup's directory, and those of its
    /// descendants (deepest first), in every hierarchy; retries EBUSY for
    /// [`RMDIR_TIMEOUT`]. A missing directory is fine. Ancestors are never touched, so a
    /// parent keeps its other children (destroy the parent's own `Cgroup` to remove it).
    pub fn destroy(&self) -> Result<(), CgroupError> {
        self.kill_all()?;
        let mut first_err = None;
        for dir in self.all_dirs() {
            if let Err(e) = fsio::remove_tree(&self.path, &dir, RMDIR_TIMEOUT) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every directory of this cgroup: one per distinct v1 hierarchy (plus the hybrid cgroup2
    /// twin), or the v2 directory.
    fn all_dirs(&self) -> Vec<PathBuf> {
        match &self.imp {
            Imp::V1(c) => c.all_dirs(),
            Imp::V2(c) => vec![c.dir.clone()],
        }
    }

    fn not_found(&self) -> CgroupError {
        CgroupError::NotFound {
            cgroup: self.path.clone(),
        }
    }
}

fn validate_path(path: &str) -> Result<String, CgroupError> {
    let bad = |reason| {
        Err(CgroupError::InvalidPath {
            path: path.to_string(),
            reason,
        })
    };
    if path.starts_with('/') {
        return bad("must be relative");
    }
    if path.contains('\0') || path.contains('\n') {
        return bad("contains NUL or newline");
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    if trimmed.is_empty() {
        return bad("is empty");
    }
    for comp in trimmed.split('/') {
        match comp {
            "" => return bad("has an empty component"),
            "." | ".." => return bad("has a . or .. component"),
            _ => {}
        }
    }
    Ok(trimmed.to_string())
}

/// Joins a cgroup's relative path below a mount point.
fn join(base: &Path, rel: &str) -> PathBuf {
    base.join(rel)
}
