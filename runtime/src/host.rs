//! What the host offers the runtime: for now, which cgroup hierarchy it mounts.

use std::path::Path;

/// How the host mounts cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupLayout {
    /// cgroup2 at /sys/fs/cgroup (the unified hierarchy).
    Unified,
    /// cgroup v1 controllers, possibly with a cgroup2 mount beside them (hybrid).
    Legacy { hybrid: bool },
    /// No cgroup mount found.
    None,
}

impl CgroupLayout {
    pub fn detect() -> Self {
        Self::detect_at(Path::new("/sys/fs/cgroup"))
    }

    pub fn detect_at(root: &Path) -> Self {
        if root.join("cgroup.controllers").exists() {
            return CgroupLayout::Unified;
        }
        if root.join("memory").is_dir() || root.join("pids").is_dir() {
            return CgroupLayout::Legacy {
                hybrid: root.join("unified/cgroup.controllers").exists(),
            };
        }
        CgroupLayout::None
    }
}
