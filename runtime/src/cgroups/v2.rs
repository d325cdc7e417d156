//! Cgroup v2: one unified directory per cgroup; controllers are enabled top-down through
//! each ancestor's `cgroup.subtree_control`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

use super::devices::DeviceState;
use super::resources::{Plan, blkio_to_io_weight, invalid, shares_to_weight, v2_swap, warn_ignored};
use super::{CgroupError, bpf, fsio, join};

/// Controllers [`V2::create`] enables for its cgroups when the parent offers them. Others
/// (hugetlb, misc, rdma) are enabled on demand by `apply`.
const ENABLE_ON_CREATE: &[&str] = &["cpu", "cpuset", "io", "memory", "pids"];

#[derive(Debug, Clone)]
pub(crate) struct V2 {
    path: String,
    root: PathBuf,
    pub(crate) dir: PathBuf,
}

impl V2 {
    pub(crate) fn new(path: &str, root: &Path) -> V2 {
        V2 {
            path: path.to_string(),
            root: root.to_path_buf(),
            dir: join(root, path),
        }
    }

    pub(crate) fn create(&self) -> Result<(), CgroupError> {
        let mut dir = self.root.clone();
        for comp in self.path.split('/') {
            dir.push(comp);
            fsio::mkdir(&self.path, &dir)?;
        }
        self.enable(ENABLE_ON_CREATE)
    }

    /// The ancestors whose `cgroup.subtree_control` governs this cgroup, root first.
    fn ancestors(&self) -> Vec<PathBuf> {
        let mut out = vec![self.root.clone()];
        let comps: Vec<&str> = self.path.split('/').collect();
        let mut dir = self.root.clone();
        for comp in &comps[..comps.len() - 1] {
            dir.push(comp);
            out.push(dir.clone());
        }
        out
    }

    /// Enables `wanted` controllers (those the root offers) in every ancestor, top-down.
    /// Failures are warnings: `apply` reports the controller as unavailable if it matters.
    fn enable(&self, wanted: &[&str]) -> Result<(), CgroupError> {
        for anc in self.ancestors() {
            let offered = read_set(&self.path, &anc.join("cgroup.controllers"))?;
            let enabled = read_set(&self.path, &anc.join("cgroup.subtree_control"))?;
            for c in wanted {
                if offered.contains(*c) && !enabled.contains(*c) {
                    let file = anc.join("cgroup.subtree_control");
                    if let Err(e) = fsio::write(&self.path, &file, &format!("+{c}")) {
                        tracing::warn!(cgroup = %self.path, controller = c, error = %e,
                            "cannot enable controller (does the parent hold processes?)");
                    }
                }
            }
        }
        Ok(())
    }

    /// The controllers this cgroup can use (its `cgroup.controllers`).
    fn available(&self) -> Result<BTreeSet<String>, CgroupError> {
        let file = self.dir.join("cgroup.controllers");
        match fsio::read_opt(&self.path, &file)? {
            Some(t) => Ok(t.split_whitespace().map(str::to_string).collect()),
            None => Err(CgroupError::NotFound {
                cgroup: self.path.clone(),
            }),
        }
    }

    pub(crate) fn apply(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        warn_ignored(&self.path, r, true);
        let devices = match r.devices() {
            Some(rules) => Some(DeviceState::from_oci(rules).map_err(|e| invalid(&self.path, e))?),
            None => None,
        };
        let plan = self.plan(r)?;
        let mut available = self.available()?;
        let missing: Vec<&str> = plan
            .writes
            .iter()
            .filter(|w| w.restricting && !available.contains(w.controller))
            .map(|w| w.controller)
            .collect();
        if !missing.is_empty() {
            self.enable(&missing)?;
            available = self.available()?;
        }
        let dir_of = |c: &str| (c == "cgroup" || available.contains(c)).then(|| self.dir.clone());
        plan.check(&self.path, &dir_of)?;
        plan.execute(&self.path, &dir_of)?;
        if let Some(state) = devices {
            bpf::install(&self.path, &self.dir, &state)?;
        }
        Ok(())
    }

    fn plan(&self, r: &LinuxResources) -> Result<Plan, CgroupError> {
        let mut p = Plan::default();
        if let Some(m) = r.memory() {
            let limit = m.limit().filter(|v| *v != 0);
            // memory.swap.max before memory.max is what runc does; neither bounds the other.
            if let Some(swap) = v2_swap(&self.path, limit, m.swap())? {
                p.optional("memory", "memory.swap.max", &swap, swap != "max");
            }
            match limit {
                Some(l) if l > 0 => p.must("memory", "memory.max", l),
                Some(_) => p.lift("memory", "memory.max", "max"),
                None => {}
            }
            match m.reservation().filter(|v| *v != 0) {
                Some(res) if res > 0 => p.must("memory", "memory.low", res),
                Some(_) => p.lift("memory", "memory.low", 0),
                None => {}
            }
        }
        if let Some(pids) = r.pids() {
            match pids.limit() {
                l if l > 0 => p.must("pids", "pids.max", l),
                _ => p.lift("pids", "pids.max", "max"),
            }
        }
        if let Some(c) = r.cpu() {
            if let Some(s) = c.shares().filter(|s| *s != 0) {
                p.must("cpu", "cpu.weight", shares_to_weight(s));
            }
            let quota = c.quota().filter(|q| *q != 0);
            let period = c.period().filter(|q| *q != 0);
            if quota.is_some() || period.is_some() {
                let q = match quota {
                    Some(q) if q > 0 => q.to_string(),
                    _ => "max".to_string(),
                };
                let value = match period {
                    Some(per) => format!("{q} {per}"),
                    None => q.clone(),
                };
                if q == "max" {
                    p.lift("cpu", "cpu.max", value);
                } else {
                    p.must("cpu", "cpu.max", value);
                }
            }
            if let Some(b) = c.burst() {
                p.optional("cpu", "cpu.max.burst", b, b != 0);
            }
            if let Some(idle) = c.idle() {
                p.optional("cpu", "cpu.idle", idle, idle != 0);
            }
            if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
                p.must("cpuset", "cpuset.cpus", cpus);
            }
            if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
                p.must("cpuset", "cpuset.mems", mems);
            }
        }
        if let Some(b) = r.block_io() {
            let bfq = self.dir.join("io.bfq.weight").exists() && !self.dir.join("io.weight").exists();
            let weight_file = if bfq { "io.bfq.weight" } else { "io.weight" };
            if let Some(w) = b.weight().filter(|w| *w != 0) {
                let value = if bfq { u64::from(w) } else { blkio_to_io_weight(w) };
                p.optional("io", weight_file, format!("default {value}"), true);
            }
            for wd in b.weight_device().iter().flatten() {
                if let Some(w) = wd.weight() {
                    let value = if bfq { u64::from(w) } else { blkio_to_io_weight(w) };
                    p.optional(
                        "io",
                        weight_file,
                        format!("{}:{} {}", wd.major(), wd.minor(), value),
                        true,
                    );
                }
            }
            for (list, key) in [
                (b.throttle_read_bps_device(), "rbps"),
                (b.throttle_write_bps_device(), "wbps"),
                (b.throttle_read_iops_device(), "riops"),
                (b.throttle_write_iops_device(), "wiops"),
            ] {
                for t in list.iter().flatten() {
                    let rate = if t.rate() == 0 {
                        "max".to_string()
                    } else {
                        t.rate().to_string()
                    };
                    p.must("io", "io.max", format!("{}:{} {key}={rate}", t.major(), t.minor()));
                }
            }
        }
        for h in r.hugepage_limits().iter().flatten() {
            let file = format!("hugetlb.{}.max", h.page_size());
            if h.limit() > 0 {
                p.must("hugetlb", file, h.limit());
            } else {
                p.lift("hugetlb", file, "max");
            }
        }
        if let Some(u) = r.unified() {
            let mut keys: Vec<_> = u.iter().collect();
            keys.sort();
            for (key, value) in keys {
                if key.is_empty() || key.contains('/') || key.starts_with('.') || !key.contains('.') {
                    return Err(invalid(&self.path, format!("bad unified key {key:?}")));
                }
                let controller = key.split('.').next().unwrap_or_default();
                let controller: &'static str = match controller {
                    "cgroup" => "cgroup",
                    "cpu" => "cpu",
                    "cpuset" => "cpuset",
                    "io" => "io",
                    "memory" => "memory",
                    "pids" => "pids",
                    "hugetlb" => "hugetlb",
                    "rdma" => "rdma",
                    "misc" => "misc",
                    other => {
                        return Err(invalid(
                            &self.path,
                            format!("unknown controller {other:?} in unified key {key:?}"),
                        ));
                    }
                };
                p.must(controller, key.as_str(), value);
            }
        }
        Ok(p)
    }

    pub(crate) fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        fsio::write(&self.path, &self.dir.join("cgroup.procs"), &pid.to_string())
    }
}

fn read_set(cgroup: &str, file: &Path) -> Result<BTreeSet<String>, CgroupError> {
    Ok(fsio::read_opt(cgroup, file)?
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect())
}

fn events_frozen(cgroup: &str, dir: &Path) -> Result<bool, CgroupError> {
    let file = dir.join("cgroup.events");
    let text = fsio::read_opt(cgroup, &file)?.ok_or_else(|| CgroupError::NotFound {
        cgroup: cgroup.to_string(),
    })?;
    Ok(fsio::parse_keyed(&text).get("frozen") == Some(&1))
}

fn freeze_file(cgroup: &str, dir: &Path) -> Result<PathBuf, CgroupError> {
    let file = dir.join("cgroup.freeze");
    if file.exists() {
        Ok(file)
    } else if dir.is_dir() {
        // Kernels before 5.2 have no v2 freezer.
        Err(CgroupError::ControllerNotAvailable {
            controller: "freezer".to_string(),
            cgroup: cgroup.to_string(),
        })
    } else {
        Err(CgroupError::NotFound {
            cgroup: cgroup.to_string(),
        })
    }
}

fn wait_frozen(cgroup: &str, dir: &Path, want: bool, timeout: Duration) -> Result<(), CgroupError> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(500);
    loop {
        if events_frozen(cgroup, dir)? == want {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(CgroupError::Timeout {
                cgroup: cgroup.to_string(),
                what: format!("cgroup.events to show frozen {}", u8::from(want)),
                waited: timeout,
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

pub(crate) fn freeze_no_rollback(cgroup: &str, dir: &Path, timeout: Duration) -> Result<(), CgroupError> {
    let file = freeze_file(cgroup, dir)?;
    fsio::write(cgroup, &file, "1")?;
    wait_frozen(cgroup, dir, true, timeout)
}

pub(crate) fn freeze(cgroup: &str, dir: &Path, timeout: Duration) -> Result<(), CgroupError> {
    match freeze_no_rollback(cgroup, dir, timeout) {
        Err(e @ CgroupError::Timeout { .. }) => {
            let _ = thaw(cgroup, dir, timeout);
            Err(e)
        }
        other => other,
    }
}

pub(crate) fn thaw(cgroup: &str, dir: &Path, timeout: Duration) -> Result<(), CgroupError> {
    let file = freeze_file(cgroup, dir)?;
    fsio::write(cgroup, &file, "0")?;
    wait_frozen(cgroup, dir, false, timeout)
}

pub(crate) fn is_frozen(cgroup: &str, dir: &Path) -> Result<bool, CgroupError> {
    freeze_file(cgroup, dir)?;
    events_frozen(cgroup, dir)
}

pub(crate) fn oom_kills(cgroup: &str, dir: &Path) -> Result<u64, CgroupError> {
    match fsio::read_keyed_opt(cgroup, &dir.join("memory.events"))? {
        Some(m) => Ok(m.get("oom_kill").copied().unwrap_or(0)),
        None if dir.is_dir() => Err(CgroupError::ControllerNotAvailable {
            controller: "memory".to_string(),
            cgroup: cgroup.to_string(),
        }),
        None => Err(CgroupError::NotFound {
            cgroup: cgroup.to_string(),
        }),
    }
}
