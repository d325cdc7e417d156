//! `slipway bench runtime`: create, start, wait and delete of /bin/true on one busybox
//! bundle, N times each with Slipway, crun and runc (the `run` command of each, which does
//! all four), interleaved so the machine's noise falls on all three alike. Two bundles:
//! Docker's defaults in full (the 14 capabilities, masked paths, the seccomp profile), and
//! the same without the seccomp profile.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::require_tool;

pub struct Options {
    pub runs: usize,
    pub warmup: usize,
}

#[derive(Debug, Serialize)]
pub struct Figure {
    pub bundle: String,
    pub runtime: String,
    pub runs: usize,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub min_ms: f64,
    pub command: String,
}

struct Peer {
    name: &'static str,
    argv: Vec<String>,
}

/// crun refuses to run while any controller is on cgroup2 in a hybrid layout; on such hosts
/// (this project's machines: hugetlb is on cgroup2) the benchmark binds hugetlb to a v1
/// hierarchy for its duration, as the machine notes advise, and undoes it after.
struct HugetlbMove {
    dir: PathBuf,
}

impl HugetlbMove {
    fn apply() -> Result<Option<HugetlbMove>> {
        let controllers = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap_or_default();
        if !controllers.split_whitespace().any(|c| c == "hugetlb") {
            return Ok(None);
        }
        // Runtimes mount each v1 hierarchy into containers under its directory's name, so
        // the directory must be called after the controller.
        let dir = PathBuf::from("/sys/fs/cgroup/hugetlb");
        std::fs::create_dir_all(&dir)?;
        let status = Command::new("mount")
            .args(["-t", "cgroup", "-o", "hugetlb", "cgroup"])
            .arg(&dir)
            .status()?;
        if !status.success() {
            bail!("could not bind hugetlb to a cgroup v1 hierarchy for crun");
        }
        eprintln!(
            "hugetlb bound to a v1 hierarchy at {} for crun (undone at the end)",
            dir.display()
        );
        Ok(Some(HugetlbMove { dir }))
    }
}

impl HugetlbMove {
    /// Removes the hierarchy's cgroups (waiting for dying ones to go), then unmounts it.
    fn unmount(&self) {
        for _ in 0..100 {
            if remove_children(&self.dir) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// Removes every cgroup below `dir`, deepest first; true when none is left.
fn remove_children(dir: &Path) -> bool {
    let mut clean = true;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            clean &= remove_children(&e.path());
            clean &= std::fs::remove_dir(e.path()).is_ok();
        }
    }
    clean
}

fn hugetlb_on_cgroup2() -> bool {
    std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .unwrap_or_default()
        .split_whitespace()
        .any(|c| c == "hugetlb")
}

impl Drop for HugetlbMove {
    fn drop(&mut self) {
        self.unmount();
        // A hierarchy whose cgroups were still dying lingers after the umount and keeps
        // hugetlb off cgroup2; mounting it again and removing what is left releases it.
        for _ in 0..50 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if hugetlb_on_cgroup2() {
                break;
            }
            if Command::new("mount")
                .args(["-t", "cgroup", "-o", "hugetlb", "cgroup"])
                .arg(&self.dir)
                .status()
                .is_ok_and(|s| s.success())
            {
                self.unmount();
            }
        }
        if !hugetlb_on_cgroup2() {
            eprintln!(
                "warning: hugetlb is still bound to a v1 hierarchy; mount it, remove its cgroups and unmount it to undo"
            );
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn make_bundle(dir: &Path, seccomp: bool) -> Result<()> {
    let rootfs = dir.join("rootfs/bin");
    std::fs::create_dir_all(&rootfs)?;
    std::fs::copy("/bin/busybox", rootfs.join("busybox"))
        .context("copying /bin/busybox (apt-get install busybox-static)")?;
    std::os::unix::fs::symlink("busybox", rootfs.join("true"))?;
    let mut spec = slipway_runtime::spec::docker_default(&["/bin/true"], false);
    if !seccomp && let Some(linux) = spec.linux_mut() {
        linux.set_seccomp(None);
    }
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&spec)?)?;
    Ok(())
}

fn time_once(argv: &[String], id: &str) -> Result<f64> {
    let start = Instant::now();
    let status = Command::new(&argv[0])
        .args(&argv[1..])
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    let elapsed = start.elapsed().as_secs_f64() * 1000.0;
    if !status.status.success() {
        bail!("{} failed: {}", argv.join(" "), String::from_utf8_lossy(&status.stderr));
    }
    Ok(elapsed)
}

/// Fisher-Yates with the clock as seed: the order need only vary, not be unpredictable.
fn shuffle(v: &mut [usize]) {
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

pub fn run(o: &Options) -> Result<Vec<Figure>> {
    require_tool("crun", "crun")?;
    require_tool("runc", "runc")?;
    let exe = std::env::current_exe()?;
    let work = std::env::temp_dir().join(format!("slipway-bench-runtime-{}", std::process::id()));
    let _cleanup = RemoveDir(work.clone());
    let _hugetlb = HugetlbMove::apply()?;
    let mut figures = Vec::new();
    for (label, seccomp) in [
        ("Docker's defaults", true),
        ("Docker's defaults without seccomp", false),
    ] {
        let bundle = work.join(if seccomp { "full" } else { "noseccomp" });
        make_bundle(&bundle, seccomp)?;
        let b = bundle.display().to_string();
        let state = work.join("state").display().to_string();
        let peers = [
            Peer {
                name: "slipway",
                argv: vec![
                    exe.display().to_string(),
                    "runtime".into(),
                    "--root".into(),
                    state,
                    "run".into(),
                    "--bundle".into(),
                    b.clone(),
                ],
            },
            Peer {
                name: "crun",
                argv: vec!["crun".into(), "run".into(), "--bundle".into(), b.clone()],
            },
            Peer {
                name: "runc",
                argv: vec!["runc".into(), "run".into(), "--bundle".into(), b.clone()],
            },
        ];
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); peers.len()];
        let mut order: Vec<usize> = (0..peers.len()).collect();
        for i in 0..o.warmup + o.runs {
            // A new order each round: the first cgroup migration after an idle spell pays
            // for an RCU grace period (milliseconds here), so a fixed order would hand
            // that cost to whichever runtime comes after the slowest.
            shuffle(&mut order);
            for &n in &order {
                let peer = &peers[n];
                let id = format!("slipway-bench-{}-{}-{i}", peer.name, std::process::id());
                let t = time_once(&peer.argv, &id)?;
                if i >= o.warmup {
                    times[n].push(t);
                }
            }
        }
        for (peer, mut t) in peers.iter().zip(times) {
            t.sort_by(|a, b| a.total_cmp(b));
            figures.push(Figure {
                bundle: label.into(),
                runtime: peer.name.into(),
                runs: t.len(),
                median_ms: percentile(&t, 0.5),
                p90_ms: percentile(&t, 0.9),
                min_ms: t[0],
                command: format!(
                    "{} <id>",
                    peer.argv.join(" ").replace(&work.display().to_string(), "$WORK")
                ),
            });
        }
    }
    Ok(figures)
}

struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        // Slipway's runs leave the shared parent cgroup `slipway` behind, empty; remove it
        // where nothing else uses it (a running server's containers keep it).
        for h in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            let _ = std::fs::remove_dir(h.path().join("slipway"));
        }
    }
}

pub fn print(figures: &[Figure]) {
    println!(
        "{:<36} {:<8} {:>5} {:>10} {:>8} {:>8}",
        "bundle", "runtime", "runs", "median ms", "p90 ms", "min ms"
    );
    for f in figures {
        println!(
            "{:<36} {:<8} {:>5} {:>10.2} {:>8.2} {:>8.2}",
            f.bundle, f.runtime, f.runs, f.median_ms, f.p90_ms, f.min_ms
        );
    }
    let bundles: Vec<&str> = {
        let mut b: Vec<&str> = figures.iter().map(|f| f.bundle.as_str()).collect();
        b.dedup();
        b
    };
    for bundle in bundles {
        let of = |r: &str| {
            figures
                .iter()
                .find(|f| f.bundle == bundle && f.runtime == r)
                .map(|f| f.median_ms)
        };
        if let (Some(s), Some(c), Some(r)) = (of("slipway"), of("crun"), of("runc")) {
            println!("{bundle}: slipway/crun = {:.2}x, slipway/runc = {:.2}x", s / c, s / r);
        }
    }
    let of = |r: &str| {
        figures
            .iter()
            .find(|f| f.bundle == "Docker's defaults" && f.runtime == r)
            .map(|f| f.median_ms)
    };
    if let (Some(s), Some(c)) = (of("slipway"), of("crun")) {
        println!(
            "target: slipway's median at most 0.5x crun's with Docker's isolation: {} ({:.2}x)",
            if s <= 0.5 * c { "met" } else { "NOT met" },
            s / c
        );
    }
    println!("commands (each followed by a fresh container id):");
    for f in figures.iter().filter(|f| f.bundle == "Docker's defaults") {
        println!("  {}", f.command);
    }
}
