//! Cgroup v1: one directory per hierarchy (comounted controllers share one).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxMemory, LinuxResources};

use super::devices::DeviceState;
use super::resources::{Plan, invalid, warn_ignored};
use super::{CgroupError, Stats, fsio, join, stats, v2};

/// The v1 controllers a Slipway cgroup lives in (when the host mounts them).
const USED: &[&str] = &[
    "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory", "net_cls", "net_prio", "pids",
];

#[derive(Debug, Clone)]
pub(crate) struct V1 {
    path: String,
    /// Every mounted hierarchy, by controller name.
    mounts: BTreeMap<String, PathBuf>,
    /// Used controller -> this cgroup's directory.
    dirs: BTreeMap<&'static str, PathBuf>,
    /// The cgroup2 twin on a hybrid host.
    pub(crate) unified: Option<PathBuf>,
}

impl V1 {
    pub(crate) fn new(path: &str, mounts: &BTreeMap<String, PathBuf>, unified: Option<&Path>) -> V1 {
        let dirs = USED
            .iter()
            .filter_map(|c| mounts.get(*c).map(|m| (*c, join(m, path))))
            .collect();
        V1 {
            path: path.to_string(),
            mounts: mounts.clone(),
            dirs,
            unified: unified.map(|u| join(u, path)),
        }
    }

    pub(crate) fn dir(&self, controller: &str) -> Option<PathBuf> {
        self.mounts.get(controller).map(|m| join(m, &self.path))
    }

    fn used_dir(&self, controller: &str) -> Option<PathBuf> {
        self.dirs.get(controller).cloned()
    }

    /// One directory per distinct hierarchy we use, then the cgroup2 twin.
    pub(crate) fn all_dirs(&self) -> Vec<PathBuf> {
        let set: BTreeSet<PathBuf> = self.dirs.values().cloned().collect();
        let mut v: Vec<PathBuf> = set.into_iter().collect();
        if let Some(u) = &self.unified {
            v.push(u.clone());
        }
        v
    }

    fn v1_dirs(&self) -> BTreeSet<PathBuf> {
        self.dirs.values().cloned().collect()
    }

    pub(crate) fn create(&self) -> Result<(), CgroupError> {
        let cpuset_mount = self.mounts.get("cpuset");
        let mut done = BTreeSet::new();
        for c in self.dirs.keys() {
            let mount = &self.mounts[*c];
            if !done.insert(mount.clone()) {
                continue;
            }
            let mut dir = mount.clone();
            for comp in self.path.split('/') {
                let parent = dir.clone();
                dir.push(comp);
                fsio::mkdir(&self.path, &dir)?;
                if Some(mount) == cpuset_mount {
                    self.inherit_cpuset(&parent, &dir)?;
                }
            }
        }
        if let Some(u) = &self.unified {
            // Best effort: it only adds cgroup.kill and a place for CLONE_INTO_CGROUP.
            if let Err(e) = std::fs::create_dir_all(u) {
                tracing::warn!(cgroup = %self.path, dir = %u.display(), error = %e,
                    "cannot create the cgroup2 twin on this hybrid host; continuing without it");
            }
        }
        Ok(())
    }

    /// A new v1 cpuset has empty `cpus` and `mems` and refuses tasks until they are set.
    fn inherit_cpuset(&self, parent: &Path, dir: &Path) -> Result<(), CgroupError> {
        for name in ["cpuset.cpus", "cpuset.mems"] {
            let file = dir.join(name);
            let Some(cur) = fsio::read_opt(&self.path, &file)? else {
                continue; // mounted with noprefix, or not a cpuset hierarchy after all
            };
            if !cur.trim().is_empty() {
                continue;
            }
            let from = fsio::read(&self.path, &parent.join(name))?;
            let from = from.trim();
            if !from.is_empty() {
                fsio::write(&self.path, &file, from)?;
            }
        }
        Ok(())
    }

    pub(crate) fn apply(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        warn_ignored(&self.path, r, false);
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(invalid(&self.path, "\"unified\" resources need cgroup v2"));
        }
        let devices = match r.devices() {
            Some(rules) => Some(DeviceState::from_oci(rules).map_err(|e| invalid(&self.path, e))?),
            None => None,
        };
        let plan = self.plan(r, devices.as_ref())?;
        let dir_of = |c: &str| self.used_dir(c);
        plan.check(&self.path, &dir_of)?;
        plan.execute(&self.path, &dir_of)
    }

    fn plan(&self, r: &LinuxResources, devices: Option<&DeviceState>) -> Result<Plan, CgroupError> {
        let mut p = Plan::default();
        if let Some(m) = r.memory() {
            self.plan_memory(&mut p, m)?;
        }
        if let Some(pids) = r.pids() {
            match pids.limit() {
                l if l > 0 => p.must("pids", "pids.max", l),
                _ => p.lift("pids", "pids.max", "max"),
            }
        }
        if let Some(c) = r.cpu() {
            if let Some(s) = c.shares().filter(|s| *s != 0) {
                p.must("cpu", "cpu.shares", s);
            }
            if let Some(period) = c.period().filter(|v| *v != 0) {
                p.must("cpu", "cpu.cfs_period_us", period);
            }
            match c.quota() {
                Some(q) if q > 0 => p.must("cpu", "cpu.cfs_quota_us", q),
                Some(q) if q < 0 => p.lift("cpu", "cpu.cfs_quota_us", -1),
                _ => {}
            }
            if let Some(b) = c.burst() {
                p.optional("cpu", "cpu.cfs_burst_us", b, b != 0);
            }
            if let Some(idle) = c.idle() {
                p.optional("cpu", "cpu.idle", idle, idle != 0);
            }
            if let Some(rp) = c.realtime_period().filter(|v| *v != 0) {
                p.optional("cpu", "cpu.rt_period_us", rp, true);
            }
            if let Some(rr) = c.realtime_runtime().filter(|v| *v != 0) {
                p.optional("cpu", "cpu.rt_runtime_us", rr, true);
            }
            if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
                p.must("cpuset", "cpuset.cpus", cpus);
            }
            if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
                p.must("cpuset", "cpuset.mems", mems);
            }
        }
        if let Some(b) = r.block_io() {
            if let Some(w) = b.weight().filter(|w| *w != 0) {
                // CFQ's blkio.weight, or BFQ's on newer kernels.
                let bfq = self
                    .used_dir("blkio")
                    .is_some_and(|d| !d.join("blkio.weight").exists() && d.join("blkio.bfq.weight").exists());
                let file = if bfq { "blkio.bfq.weight" } else { "blkio.weight" };
                p.optional("blkio", file, w, true);
            }
            if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
                p.optional("blkio", "blkio.leaf_weight", w, true);
            }
            for wd in b.weight_device().iter().flatten() {
                if let Some(w) = wd.weight() {
                    p.optional(
                        "blkio",
                        "blkio.weight_device",
                        format!("{}:{} {}", wd.major(), wd.minor(), w),
                        true,
                    );
                }
            }
            for (list, file) in [
                (b.throttle_read_bps_device(), "blkio.throttle.read_bps_device"),
                (b.throttle_write_bps_device(), "blkio.throttle.write_bps_device"),
                (b.throttle_read_iops_device(), "blkio.throttle.read_iops_device"),
                (b.throttle_write_iops_device(), "blkio.throttle.write_iops_device"),
            ] {
                for t in list.iter().flatten() {
                    p.must("blkio", file, format!("{}:{} {}", t.major(), t.minor(), t.rate()));
                }
            }
        }
        for h in r.hugepage_limits().iter().flatten() {
            let file = format!("hugetlb.{}.limit_in_bytes", h.page_size());
            if h.limit() > 0 {
                p.must("hugetlb", file, h.limit());
            } else {
                p.lift("hugetlb", file, -1);
            }
        }
        if let Some(n) = r.network() {
            if let Some(id) = n.class_id() {
                p.must("net_cls", "net_cls.classid", id);
            }
            for prio in n.priorities().iter().flatten() {
                p.must(
                    "net_prio",
                    "net_prio.ifpriomap",
                    format!("{} {}", prio.name(), prio.priority()),
                );
            }
        }
        if let Some(state) = devices {
            self.plan_devices(&mut p, state)?;
        }
        Ok(p)
    }

    fn plan_memory(&self, p: &mut Plan, m: &LinuxMemory) -> Result<(), CgroupError> {
        let limit = m.limit().filter(|v| *v != 0);
        let mut swap = m.swap().filter(|v| *v != 0);
        if limit.is_some_and(|l| l < 0) && swap.is_none() {
            swap = Some(-1);
        }
        if let (Some(l), Some(s)) = (limit, swap)
            && l > 0
            && s > 0
            && s < l
        {
            return Err(invalid(
                &self.path,
                format!("memory+swap limit {s} is below the memory limit {l}"),
            ));
        }
        let mem_dir = self.used_dir("memory");
        let has_memsw = mem_dir
            .as_ref()
            .is_some_and(|d| d.join("memory.memsw.limit_in_bytes").exists());
        let write_limit = |p: &mut Plan, l: i64| {
            if l > 0 {
                p.must("memory", "memory.limit_in_bytes", l);
            } else {
                p.lift("memory", "memory.limit_in_bytes", -1);
            }
        };
        let write_swap = |p: &mut Plan, s: i64| {
            if !has_memsw {
                if s > 0 && mem_dir.is_some() {
                    tracing::warn!(cgroup = %self.path,
                        "the kernel has no swap accounting (memory.memsw.*); swap limit ignored");
                }
                return;
            }
            if s > 0 {
                p.must("memory", "memory.memsw.limit_in_bytes", s);
            } else {
                p.lift("memory", "memory.memsw.limit_in_bytes", -1);
            }
        };
        match (limit, swap) {
            (Some(l), Some(s)) => {
                // The kernel keeps limit <= memsw at every step: raise memsw first when the
                // current limit exceeds the new memsw, lower the limit first otherwise.
                let current = match &mem_dir {
                    Some(d) => fsio::read_u64_opt(&self.path, &d.join("memory.limit_in_bytes"))?,
                    None => None,
                }
                .unwrap_or(u64::MAX);
                let swap_first = s < 0 || current < s as u64;
                if swap_first {
                    write_swap(p, s);
                    write_limit(p, l);
                } else {
                    write_limit(p, l);
                    write_swap(p, s);
                }
            }
            (Some(l), None) => write_limit(p, l),
            (None, Some(s)) => write_swap(p, s),
            (None, None) => {}
        }
        if let Some(res) = m.reservation().filter(|v| *v != 0) {
            if res > 0 {
                p.must("memory", "memory.soft_limit_in_bytes", res);
            } else {
                p.lift("memory", "memory.soft_limit_in_bytes", -1);
            }
        }
        if let Some(sw) = m.swappiness() {
            if sw > 100 {
                return Err(invalid(&self.path, format!("swappiness {sw} is above 100")));
            }
            p.optional("memory", "memory.swappiness", sw, true);
        }
        if let Some(k) = m.kernel_tcp().filter(|v| *v != 0) {
            p.optional("memory", "memory.kmem.tcp.limit_in_bytes", k, k > 0);
        }
        Ok(())
    }

    fn plan_devices(&self, p: &mut Plan, state: &DeviceState) -> Result<(), CgroupError> {
        // Writing "a" fails with EINVAL once the cgroup has children, and briefly denies
        // everything: skip when devices.list already shows the wanted allow-list.
        if let Some(dir) = self.used_dir("devices")
            && let Some(list) = fsio::read_opt(&self.path, &dir.join("devices.list"))?
            && state.matches_v1_list(&list)
        {
            return Ok(());
        }
        let restricting = !(state.default_allow && state.exceptions.is_empty());
        for (allow, line) in state.v1_writes() {
            let file = if allow { "devices.allow" } else { "devices.deny" };
            if restricting {
                p.must("devices", file, line);
            } else {
                p.lift("devices", file, line);
            }
        }
        Ok(())
    }

    pub(crate) fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in self.v1_dirs() {
            fsio::write(&self.path, &dir.join("cgroup.procs"), &pid.to_string())?;
        }
        if let Some(u) = &self.unified
            && u.is_dir()
            && let Err(e) = fsio::write(&self.path, &u.join("cgroup.procs"), &pid.to_string())
        {
            tracing::warn!(cgroup = %self.path, error = %e,
                "cannot join the cgroup2 twin on this hybrid host");
        }
        Ok(())
    }

    pub(crate) fn can_freeze(&self) -> bool {
        self.used_dir("freezer").is_some() || self.unified_freeze().is_some()
    }

    /// Without a v1 freezer, a hybrid host can still freeze through the cgroup2 twin.
    fn unified_freeze(&self) -> Option<&PathBuf> {
        self.unified.as_ref().filter(|u| u.join("cgroup.freeze").exists())
    }

    fn freezer(&self) -> Result<PathBuf, CgroupError> {
        self.used_dir("freezer")
            .ok_or_else(|| CgroupError::ControllerNotAvailable {
                controller: "freezer".to_string(),
                cgroup: self.path.clone(),
            })
    }

    pub(crate) fn freeze(&self, timeout: Duration) -> Result<(), CgroupError> {
        match self.freeze_no_rollback(timeout) {
            Err(e @ CgroupError::Timeout { .. }) => {
                let _ = self.thaw(timeout);
                Err(e)
            }
            other => other,
        }
    }

    pub(crate) fn freeze_no_rollback(&self, timeout: Duration) -> Result<(), CgroupError> {
        if self.used_dir("freezer").is_none()
            && let Some(u) = self.unified_freeze()
        {
            return v2::freeze_no_rollback(&self.path, u, timeout);
        }
        let file = self.freezer()?.join("freezer.state");
        fsio::write(&self.path, &file, "FROZEN")?;
        let start = Instant::now();
        let mut pause = Duration::from_micros(500);
        let mut tries = 0u32;
        loop {
            if fsio::read(&self.path, &file)?.trim() == "FROZEN" {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(CgroupError::Timeout {
                    cgroup: self.path.clone(),
                    what: "freezer.state to read FROZEN".to_string(),
                    waited: timeout,
                });
            }
            tries += 1;
            // A task that was forking or in uninterruptible sleep can leave the state at
            // FREEZING; writing FROZEN again retries the remaining tasks.
            if tries.is_multiple_of(10) {
                fsio::write(&self.path, &file, "FROZEN")?;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    pub(crate) fn thaw(&self, timeout: Duration) -> Result<(), CgroupError> {
        if self.used_dir("freezer").is_none()
            && let Some(u) = self.unified_freeze()
        {
            return v2::thaw(&self.path, u, timeout);
        }
        let dir = self.freezer()?;
        let file = dir.join("freezer.state");
        fsio::write(&self.path, &file, "THAWED")?;
        let start = Instant::now();
        let mut pause = Duration::from_micros(500);
        loop {
            if fsio::read(&self.path, &file)?.trim() == "THAWED" {
                return Ok(());
            }
            // Frozen by an ancestor: our own state is thawed, nothing more to wait for.
            let parent = fsio::read_opt(&self.path, &dir.join("freezer.parent_freezing"))?;
            if parent.is_some_and(|p| p.trim() == "1") {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(CgroupError::Timeout {
                    cgroup: self.path.clone(),
                    what: "freezer.state to read THAWED".to_string(),
                    waited: timeout,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    pub(crate) fn is_frozen(&self) -> Result<bool, CgroupError> {
        if self.used_dir("freezer").is_none()
            && let Some(u) = self.unified_freeze()
        {
            return v2::is_frozen(&self.path, u);
        }
        let file = self.freezer()?.join("freezer.state");
        Ok(fsio::read(&self.path, &file)?.trim() == "FROZEN")
    }

    pub(crate) fn stats(&self) -> Result<Stats, CgroupError> {
        stats::collect_v1(
            &self.path,
            &stats::V1Dirs {
                cpu: self.used_dir("cpu"),
                cpuacct: self.used_dir("cpuacct"),
                memory: self.used_dir("memory"),
                pids: self.used_dir("pids"),
                blkio: self.used_dir("blkio"),
            },
        )
    }

    pub(crate) fn oom_kills(&self) -> Result<u64, CgroupError> {
        let dir = self
            .used_dir("memory")
            .ok_or_else(|| CgroupError::ControllerNotAvailable {
                controller: "memory".to_string(),
                cgroup: self.path.clone(),
            })?;
        let file = dir.join("memory.oom_control");
        let text = fsio::read(&self.path, &file)?;
        Ok(fsio::parse_keyed(&text).get("oom_kill").copied().unwrap_or(0))
    }
}
