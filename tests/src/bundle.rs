//! OCI bundles for runtime tests: a busybox root filesystem with slipway-probe in it, a
//! config.json from `slipway runtime spec` that a test adjusts, and a state root of its own.
//! Every container and cgroup a test makes carries the prefix `slipway-test-` and is
//! removed when the bundle is dropped, even if the test failed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::slipway_bin;

/// The static probe built by tests/build.rs.
pub const PROBE: &str = env!("SLIPWAY_PROBE");

pub struct Bundle {
    dir: tempfile::TempDir,
    pub spec: Value,
    /// Each bundle gets its own cgroup parent: `slipway-test-<uuid>`.
    pub cgroup_parent: String,
    ids: std::cell::RefCell<Vec<String>>,
}

fn unique() -> String {
    format!("{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .expect("urandom");
    u64::from_le_bytes(b)
}

/// Removes what an earlier, killed test run left behind: `slipway-test-*` cgroups older
/// than ten minutes (younger ones may belong to a test running now).
fn sweep_stale_cgroups() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let now = std::time::SystemTime::now();
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            for entry in std::fs::read_dir(hierarchy.path()).into_iter().flatten().flatten() {
                let stale = entry.file_name().to_string_lossy().starts_with("slipway-test-")
                    && entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| now.duration_since(t).ok())
                        .is_some_and(|age| age > std::time::Duration::from_secs(600));
                if stale {
                    remove_cgroup_tree(&entry.path());
                }
            }
        }
    });
}

impl Bundle {
    /// A bundle whose process is `args` (run without a terminal).
    pub fn new(args: &[&str]) -> Bundle {
        sweep_stale_cgroups();
        let dir = tempfile::Builder::new()
            .prefix("slipway-test-bundle-")
            .tempdir()
            .expect("temp dir");
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "tmp", "etc", "root"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.is_file(),
            "runtime tests need Debian's busybox-static (/bin/busybox)"
        );
        std::fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
        for applet in [
            "sh", "cat", "ls", "echo", "sleep", "id", "ps", "mkdir", "touch", "grep", "wc", "readlink", "hostname",
            "true", "false", "ip", "head", "stat", "mount",
        ] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        std::fs::copy(PROBE, rootfs.join("bin/probe")).unwrap();
        std::fs::write(rootfs.join("etc/hostname"), "bundle\n").unwrap();
        let out = Command::new(slipway_bin())
            .args(["runtime", "spec", "--no-terminal", "--bundle"])
            .arg(dir.path())
            .arg("--")
            .args(args)
            .output()
            .expect("slipway runtime spec");
        assert!(
            out.status.success(),
            "runtime spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let spec: Value = serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
        let cgroup_parent = format!("slipway-test-{}", unique());
        Bundle {
            dir,
            spec,
            cgroup_parent,
            ids: Default::default(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn state_root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn set_args(&mut self, args: &[&str]) {
        self.spec["process"]["args"] = json!(args);
    }

    /// A fresh container id, remembered for clean-up.
    pub fn new_id(&self) -> String {
        let id = format!("slipway-test-{}", unique());
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// The spec as the library takes it, with this bundle's cgroup parent, for container `id`.
    pub fn oci_spec(&self, id: &str) -> oci_spec::runtime::Spec {
        let mut spec = self.spec.clone();
        spec["linux"]["cgroupsPath"] = json!(format!("{}/{id}", self.cgroup_parent));
        serde_json::from_value(spec).expect("a valid spec")
    }

    fn write_spec(&self, id: &str) {
        let mut spec = self.spec.clone();
        spec["linux"]["cgroupsPath"] = json!(format!("{}/{id}", self.cgroup_parent));
        std::fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(&spec).unwrap(),
        )
        .unwrap();
    }

    /// `slipway runtime <args>` with this bundle's state root.
    pub fn runtime(&self, args: &[&str]) -> Output {
        Command::new(slipway_bin())
            .arg("runtime")
            .arg("--root")
            .arg(self.state_root())
            .args(args)
            .output()
            .expect("slipway runtime")
    }

    /// Runs the bundle in the foreground; returns (exit code, stdout, stderr).
    pub fn run(&self) -> (i32, String, String) {
        let id = self.new_id();
        self.write_spec(&id);
        let out = self.runtime(&["run", "--bundle", self.dir.path().to_str().unwrap(), &id]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs the bundle from inside a private mount namespace whose /sys/fs/cgroup is a
    /// cgroup2-only mount: the runtime then takes its cgroup v2 path for real, on a host
    /// that mounts v1.
    pub fn run_on_cgroup2_only(&self) -> (i32, String, String) {
        let id = self.new_id();
        self.write_spec(&id);
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("umount -l /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec \"$@\"")
            .arg("sh")
            .arg(slipway_bin())
            .arg("runtime")
            .arg("--root")
            .arg(self.state_root())
            .args(["run", "--bundle", self.dir.path().to_str().unwrap(), &id])
            .output()
            .expect("unshare");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `create` with a fresh id; returns the id and the command's exit status and stderr.
    /// The container inherits the command's stdio (as with runc), so it goes to files here:
    /// a pipe would stay open as long as the container runs.
    pub fn create(&self) -> (String, std::process::ExitStatus, String) {
        let id = self.new_id();
        self.write_spec(&id);
        let log = self.dir.path().join(format!("{id}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let status = Command::new(slipway_bin())
            .arg("runtime")
            .arg("--root")
            .arg(self.state_root())
            .args(["create", "--bundle", self.dir.path().to_str().unwrap(), &id])
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .status()
            .expect("slipway runtime create");
        (id, status, std::fs::read_to_string(&log).unwrap_or_default())
    }

    /// The directories of this bundle's cgroups, in every hierarchy that has one.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for entry in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            let p = entry.path().join(&self.cgroup_parent);
            if p.exists() {
                dirs.push(p);
            }
        }
        let top = Path::new("/sys/fs/cgroup").join(&self.cgroup_parent);
        if top.exists() {
            dirs.push(top);
        }
        dirs
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self.runtime(&["delete", "--force", id]);
        }
        // Whatever is left of the cgroups (deepest first), with anything still in them killed.
        for dir in self.cgroup_dirs() {
            remove_cgroup_tree(&dir);
        }
    }
}

fn remove_cgroup_tree(dir: &Path) {
    let mut children: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    children.sort();
    for c in children {
        remove_cgroup_tree(&c);
    }
    if let Ok(pids) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in pids.split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
    for _ in 0..50 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The value of a `Key:\tvalue` line of /proc/PID/status text.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')).map(str::trim))
}
