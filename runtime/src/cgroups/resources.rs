//! Turning OCI resources into cgroup file writes: a plan built per cgroup version, checked
//! for missing controllers before anything is written, then executed in order.

use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;

use super::{CgroupError, fsio};

/// One planned write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Write {
    pub controller: &'static str,
    pub file: String,
    pub value: String,
    /// The write restricts something, so the controller must exist.
    pub restricting: bool,
    /// The kernel may lack this file (swap accounting, realtime, bfq...): warn and skip then.
    pub optional: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub writes: Vec<Write>,
}

impl Plan {
    /// A write that needs its controller.
    pub fn must(&mut self, controller: &'static str, file: impl Into<String>, value: impl ToString) {
        self.push(controller, file.into(), value.to_string(), true, false);
    }
    /// A write that only lifts a limit: skipped if the controller is absent.
    pub fn lift(&mut self, controller: &'static str, file: impl Into<String>, value: impl ToString) {
        self.push(controller, file.into(), value.to_string(), false, false);
    }
    /// A write to a file the kernel may not have.
    pub fn optional(
        &mut self,
        controller: &'static str,
        file: impl Into<String>,
        value: impl ToString,
        restricting: bool,
    ) {
        self.push(controller, file.into(), value.to_string(), restricting, true);
    }
    fn push(&mut self, controller: &'static str, file: String, value: String, restricting: bool, optional: bool) {
        self.writes.push(Write {
            controller,
            file,
            value,
            restricting,
            optional,
        });
    }

    /// Fails with `ControllerNotAvailable` for the first restricting write whose controller
    /// `dir_of` cannot place, before anything is written.
    pub fn check(&self, cgroup: &str, dir_of: &dyn Fn(&str) -> Option<PathBuf>) -> Result<(), CgroupError> {
        for w in &self.writes {
            if w.restricting && dir_of(w.controller).is_none() {
                return Err(CgroupError::ControllerNotAvailable {
                    controller: w.controller.to_string(),
                    cgroup: cgroup.to_string(),
                });
            }
        }
        Ok(())
    }

    pub fn execute(&self, cgroup: &str, dir_of: &dyn Fn(&str) -> Option<PathBuf>) -> Result<(), CgroupError> {
        for w in &self.writes {
            let Some(dir) = dir_of(w.controller) else {
                continue;
            };
            let file = dir.join(&w.file);
            if w.optional && !file.exists() {
                if w.restricting {
                    tracing::warn!(cgroup, file = %file.display(), value = %w.value,
                        "kernel lacks this cgroup file; setting ignored");
                }
                continue;
            }
            fsio::write(cgroup, &file, &w.value)?;
        }
        Ok(())
    }
}

pub(crate) fn invalid(cgroup: &str, reason: impl Into<String>) -> CgroupError {
    CgroupError::InvalidResources {
        cgroup: cgroup.to_string(),
        reason: reason.into(),
    }
}

/// Warnings for settings neither version implements.
pub(crate) fn warn_ignored(cgroup: &str, r: &LinuxResources, v2: bool) {
    if let Some(m) = r.memory() {
        if m.disable_oom_killer() == Some(true) {
            tracing::warn!(cgroup, "oom_kill_disable is not supported; ignored");
        }
        if m.kernel().is_some_and(|k| k != 0) {
            tracing::warn!(cgroup, "kernel memory limits are deprecated; ignored");
        }
        if v2 && m.kernel_tcp().is_some_and(|k| k != 0) {
            tracing::warn!(cgroup, "kernel TCP memory limits do not exist on cgroup v2; ignored");
        }
        if v2 && m.swappiness().is_some() {
            tracing::warn!(cgroup, "memory swappiness does not exist on cgroup v2; ignored");
        }
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        tracing::warn!(cgroup, "rdma limits are not supported; ignored");
    }
    if v2 && r.network().is_some() {
        tracing::warn!(cgroup, "network classes do not exist on cgroup v2; ignored");
    }
    if v2
        && r.cpu()
            .as_ref()
            .is_some_and(|c| c.realtime_runtime().is_some() || c.realtime_period().is_some())
    {
        tracing::warn!(cgroup, "realtime cpu scheduling is not available on cgroup v2; ignored");
    }
}

/// The v2 value of `memory.swap.max` from OCI's memory+swap total (runc's conversion):
/// `None` when nothing is to be written.
pub(crate) fn v2_swap(cgroup: &str, limit: Option<i64>, swap: Option<i64>) -> Result<Option<String>, CgroupError> {
    let swap = match swap {
        None | Some(0) => return Ok(None),
        Some(s) => s,
    };
    if swap < 0 {
        return Ok(Some("max".to_string()));
    }
    match limit {
        None | Some(0) => Err(invalid(cgroup, "a swap limit needs a memory limit")),
        Some(l) if l < 0 => Err(invalid(cgroup, "a swap limit needs a memory limit")),
        Some(l) if swap < l => Err(invalid(
            cgroup,
            format!("memory+swap limit {swap} is below the memory limit {l}"),
        )),
        Some(l) => Ok(Some((swap - l).to_string())),
    }
}

/// cpu.shares (2..262144) to cpu.weight (1..10000), as runc converts.
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// blkio.weight (10..1000) to io.weight (1..10000), as runc converts.
pub(crate) fn blkio_to_io_weight(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn cgroups_resources_conversions() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(v2_swap("c", Some(100), Some(300)).unwrap().as_deref(), Some("200"));
        assert_eq!(v2_swap("c", Some(100), Some(-1)).unwrap().as_deref(), Some("max"));
        assert_eq!(v2_swap("c", Some(100), None).unwrap(), None);
        assert!(v2_swap("c", None, Some(300)).is_err());
        assert!(v2_swap("c", Some(400), Some(300)).is_err());
    }

    #[test]
    fn cgroups_resources_plan_checks_before_writing() {
        let mut p = Plan::default();
        p.lift("cpu", "cpu.shares", 1024);
        p.must("memory", "memory.limit_in_bytes", 1);
        let none = |_: &str| None;
        let err = p.check("c", &none).unwrap_err();
        assert!(err.is_controller_not_available(), "{err}");
        assert!(err.to_string().contains("memory"));
    }
}
