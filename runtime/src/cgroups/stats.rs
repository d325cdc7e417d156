//! Resource usage of a cgroup, read the same way on v1 and v2. A field is `None` when the
//! controller or the kernel file is missing. Limits that are not set read `u64::MAX`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{CgroupError, fsio};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub io: IoStats,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuStats {
    /// Total CPU time used, in nanoseconds.
    pub usage_ns: Option<u64>,
    pub user_ns: Option<u64>,
    pub system_ns: Option<u64>,
    /// v1 only: per-CPU usage (cpuacct.usage_percpu).
    pub per_cpu_ns: Option<Vec<u64>>,
    /// CFS bandwidth periods that elapsed / that were throttled, and the time throttled.
    pub nr_periods: Option<u64>,
    pub nr_throttled: Option<u64>,
    pub throttled_ns: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryStats {
    /// Bytes in use now (v1 memory.usage_in_bytes, v2 memory.current); includes page cache.
    pub usage: Option<u64>,
    /// The limit in bytes; `u64::MAX` when unlimited.
    pub limit: Option<u64>,
    /// The highest usage seen (v1 memory.max_usage_in_bytes, v2 memory.peak on 5.19+).
    pub max_usage: Option<u64>,
    /// Page cache (v1 total_cache, v2 file).
    pub cache: Option<u64>,
    /// Anonymous memory (v1 total_rss, v2 anon).
    pub rss: Option<u64>,
    /// Swap in use, in bytes, beyond RAM.
    pub swap: Option<u64>,
    /// Swap allowed beyond the memory limit; `u64::MAX` when unlimited.
    pub swap_limit: Option<u64>,
    /// v1: times the limit was hit (memory.failcnt); v2: `max` events.
    pub failcnt: Option<u64>,
    /// Processes killed by the OOM killer.
    pub oom_kills: Option<u64>,
    /// The raw memory.stat, for callers that want more (Docker's stats API shows it).
    pub stat: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PidsStats {
    pub current: Option<u64>,
    /// `u64::MAX` when unlimited.
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IoStats {
    /// Summed over devices (v1 blkio.throttle.io_service*_recursive, v2 io.stat).
    pub read_bytes: Option<u64>,
    pub write_bytes: Option<u64>,
    pub read_ops: Option<u64>,
    pub write_ops: Option<u64>,
}

pub(crate) struct V1Dirs {
    pub cpu: Option<PathBuf>,
    pub cpuacct: Option<PathBuf>,
    pub memory: Option<PathBuf>,
    pub pids: Option<PathBuf>,
    pub blkio: Option<PathBuf>,
}

fn in_dir(dir: &Option<PathBuf>, file: &str) -> Option<PathBuf> {
    dir.as_ref().map(|d| d.join(file))
}

fn u64_in(cg: &str, dir: &Option<PathBuf>, file: &str) -> Result<Option<u64>, CgroupError> {
    match in_dir(dir, file) {
        Some(f) => fsio::read_u64_opt(cg, &f),
        None => Ok(None),
    }
}

fn keyed_in(cg: &str, dir: &Option<PathBuf>, file: &str) -> Result<Option<BTreeMap<String, u64>>, CgroupError> {
    match in_dir(dir, file) {
        Some(f) => fsio::read_keyed_opt(cg, &f),
        None => Ok(None),
    }
}

fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

pub(crate) fn collect_v1(cg: &str, d: &V1Dirs) -> Result<Stats, CgroupError> {
    let mut s = Stats::default();

    // cpu
    s.cpu.usage_ns = u64_in(cg, &d.cpuacct, "cpuacct.usage")?;
    s.cpu.user_ns = u64_in(cg, &d.cpuacct, "cpuacct.usage_user")?;
    s.cpu.system_ns = u64_in(cg, &d.cpuacct, "cpuacct.usage_sys")?;
    if s.cpu.user_ns.is_none() {
        // Older kernels: cpuacct.stat in USER_HZ ticks.
        if let Some(m) = keyed_in(cg, &d.cpuacct, "cpuacct.stat")? {
            let ns = 1_000_000_000 / clk_tck();
            s.cpu.user_ns = m.get("user").map(|v| v * ns);
            s.cpu.system_ns = m.get("system").map(|v| v * ns);
        }
    }
    if let Some(f) = in_dir(&d.cpuacct, "cpuacct.usage_percpu")
        && let Some(text) = fsio::read_opt(cg, &f)?
    {
        let v: Result<Vec<u64>, _> = text.split_whitespace().map(str::parse).collect();
        s.cpu.per_cpu_ns = Some(v.map_err(|_| CgroupError::Parse {
            cgroup: cg.to_string(),
            file: f.clone(),
            content: text.clone(),
        })?);
    }
    if let Some(m) = keyed_in(cg, &d.cpu, "cpu.stat")? {
        s.cpu.nr_periods = m.get("nr_periods").copied();
        s.cpu.nr_throttled = m.get("nr_throttled").copied();
        s.cpu.throttled_ns = m.get("throttled_time").copied();
    }

    // memory
    let m = &mut s.memory;
    m.usage = u64_in(cg, &d.memory, "memory.usage_in_bytes")?;
    m.limit = u64_in(cg, &d.memory, "memory.limit_in_bytes")?;
    m.max_usage = u64_in(cg, &d.memory, "memory.max_usage_in_bytes")?;
    m.failcnt = u64_in(cg, &d.memory, "memory.failcnt")?;
    if let Some(stat) = keyed_in(cg, &d.memory, "memory.stat")? {
        m.cache = stat.get("total_cache").or_else(|| stat.get("cache")).copied();
        m.rss = stat.get("total_rss").or_else(|| stat.get("rss")).copied();
        m.stat = stat;
    }
    let memsw_usage = u64_in(cg, &d.memory, "memory.memsw.usage_in_bytes")?;
    let memsw_limit = u64_in(cg, &d.memory, "memory.memsw.limit_in_bytes")?;
    if let (Some(sw), Some(u)) = (memsw_usage, m.usage) {
        m.swap = Some(sw.saturating_sub(u));
    }
    if let (Some(sw), Some(l)) = (memsw_limit, m.limit) {
        m.swap_limit = Some(if sw == u64::MAX { u64::MAX } else { sw.saturating_sub(l) });
    }
    if let Some(oc) = keyed_in(cg, &d.memory, "memory.oom_control")? {
        m.oom_kills = Some(oc.get("oom_kill").copied().unwrap_or(0));
    }

    // pids
    s.pids.current = u64_in(cg, &d.pids, "pids.current")?;
    s.pids.limit = u64_in(cg, &d.pids, "pids.max")?;

    // io
    if let Some(f) = in_dir(&d.blkio, "blkio.throttle.io_service_bytes_recursive")
        && let Some((r, w)) = read_blkio(cg, &f)?
    {
        s.io.read_bytes = Some(r);
        s.io.write_bytes = Some(w);
    }
    if let Some(f) = in_dir(&d.blkio, "blkio.throttle.io_serviced_recursive")
        && let Some((r, w)) = read_blkio(cg, &f)?
    {
        s.io.read_ops = Some(r);
        s.io.write_ops = Some(w);
    }
    Ok(s)
}

/// Sums the "maj:min Read N" / "maj:min Write N" lines of a v1 blkio file.
fn read_blkio(cg: &str, file: &Path) -> Result<Option<(u64, u64)>, CgroupError> {
    let Some(text) = fsio::read_opt(cg, file)? else {
        return Ok(None);
    };
    let (mut r, mut w) = (0u64, 0u64);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 3 {
            let v: u64 = f[2].parse().unwrap_or(0);
            match f[1] {
                "Read" => r += v,
                "Write" => w += v,
                _ => {}
            }
        }
    }
    Ok(Some((r, w)))
}

pub(crate) fn collect_v2(cg: &str, dir: &Path) -> Result<Stats, CgroupError> {
    let d = Some(dir.to_path_buf());
    let mut s = Stats::default();

    // cpu.stat's usage fields are core (always there); the throttling ones need the cpu
    // controller.
    if let Some(m) = keyed_in(cg, &d, "cpu.stat")? {
        let ns = |k: &str| m.get(k).map(|v| v * 1000);
        s.cpu.usage_ns = ns("usage_usec");
        s.cpu.user_ns = ns("user_usec");
        s.cpu.system_ns = ns("system_usec");
        s.cpu.nr_periods = m.get("nr_periods").copied();
        s.cpu.nr_throttled = m.get("nr_throttled").copied();
        s.cpu.throttled_ns = ns("throttled_usec");
    }

    let m = &mut s.memory;
    m.usage = u64_in(cg, &d, "memory.current")?;
    m.limit = u64_in(cg, &d, "memory.max")?;
    m.max_usage = u64_in(cg, &d, "memory.peak")?;
    if let Some(stat) = keyed_in(cg, &d, "memory.stat")? {
        m.cache = stat.get("file").copied();
        m.rss = stat.get("anon").copied();
        m.stat = stat;
    }
    m.swap = u64_in(cg, &d, "memory.swap.current")?;
    m.swap_limit = u64_in(cg, &d, "memory.swap.max")?;
    if let Some(ev) = keyed_in(cg, &d, "memory.events")? {
        m.failcnt = ev.get("max").copied();
        m.oom_kills = Some(ev.get("oom_kill").copied().unwrap_or(0));
    }

    s.pids.current = u64_in(cg, &d, "pids.current")?;
    s.pids.limit = u64_in(cg, &d, "pids.max")?;

    if let Some(text) = fsio::read_opt(cg, &dir.join("io.stat"))? {
        let mut io = IoStats {
            read_bytes: Some(0),
            write_bytes: Some(0),
            read_ops: Some(0),
            write_ops: Some(0),
        };
        for line in text.lines() {
            for kv in line.split_whitespace().skip(1) {
                let Some((k, v)) = kv.split_once('=') else {
                    continue;
                };
                let v: u64 = v.parse().unwrap_or(0);
                let slot = match k {
                    "rbytes" => &mut io.read_bytes,
                    "wbytes" => &mut io.write_bytes,
                    "rios" => &mut io.read_ops,
                    "wios" => &mut io.write_ops,
                    _ => continue,
                };
                *slot = slot.map(|s| s + v);
            }
        }
        s.io = io;
    }
    Ok(s)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn cgroups_stats_v2_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n").unwrap();
        std::fs::write(p.join("memory.current"), "4096\n").unwrap();
        std::fs::write(p.join("memory.max"), "max\n").unwrap();
        std::fs::write(p.join("memory.stat"), "anon 1024\nfile 2048\n").unwrap();
        std::fs::write(p.join("memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n").unwrap();
        std::fs::write(
            p.join("io.stat"),
            "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n254:0 rbytes=5 wbytes=0 rios=1 wios=0\n",
        )
        .unwrap();
        let s = collect_v2("t", p).unwrap();
        assert_eq!(s.cpu.usage_ns, Some(1_500_000));
        assert_eq!(s.cpu.nr_periods, None);
        assert_eq!(s.memory.limit, Some(u64::MAX));
        assert_eq!(s.memory.rss, Some(1024));
        assert_eq!(s.memory.oom_kills, Some(1));
        assert_eq!(s.pids.current, None);
        assert_eq!(s.io.read_bytes, Some(15));
        assert_eq!(s.io.write_ops, Some(2));
        serde_json::to_string(&s).unwrap();
    }
}
