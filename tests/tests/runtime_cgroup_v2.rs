//! The runtime's cgroup v2 path, for real: this machine mounts cgroup v1, so the test runs
//! the runtime in a private mount namespace where /sys/fs/cgroup is the cgroup2 hierarchy
//! alone. There the container gets a v2 cgroup, a BPF device filter, and a cgroup2
//! /sys/fs/cgroup of its own.

use serde_json::json;
use slipway_e2e::bundle::Bundle;

fn openable_block_device() -> (u32, u32) {
    for entry in std::fs::read_dir("/sys/dev/block").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((major, minor)) = name.split_once(':') else {
            continue;
        };
        let Some(dev) = std::fs::read_to_string(entry.path().join("uevent"))
            .ok()
            .and_then(|u| u.lines().find_map(|l| l.strip_prefix("DEVNAME=").map(String::from)))
        else {
            continue;
        };
        if std::fs::File::open(format!("/dev/{dev}")).is_ok() {
            return (major.parse().unwrap(), minor.parse().unwrap());
        }
    }
    panic!("no block device root can open on this host");
}

#[test]
fn containers_run_on_a_cgroup2_only_host() {
    let (major, minor) = openable_block_device();
    let b = Bundle::new(&[
        "/bin/sh",
        "-c",
        &format!(
            "stat -f -c %t /sys/fs/cgroup; cat /proc/self/cgroup | grep '^0::'; probe mknod-open {major} {minor}; probe status | grep Seccomp:"
        ),
    ]);
    let (code, out, err) = b.run_on_cgroup2_only();
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "63677270",
        "the container sees a cgroup2 /sys/fs/cgroup (CGROUP2_SUPER_MAGIC)"
    );
    assert_eq!(lines[1], "0::/", "rooted at its own cgroup");
    assert_eq!(
        lines[2], "mknod ok, open errno 1",
        "the BPF device filter refuses the host's disk"
    );
    assert!(lines[3].ends_with('2'));
    // The cgroup was made in the v2 hierarchy (which this host mounts at .../unified).
    assert!(
        b.cgroup_dirs().iter().any(|d| d.starts_with("/sys/fs/cgroup/unified")),
        "{:?}",
        b.cgroup_dirs()
    );
}

#[test]
fn a_limit_whose_controller_is_missing_is_a_clear_error() {
    // This host binds memory to cgroup v1, so cgroup2 offers no memory controller.
    let mut b = Bundle::new(&["/bin/true"]);
    b.spec["linux"]["resources"]["memory"] = json!({ "limit": 64 << 20 });
    let (code, _, err) = b.run_on_cgroup2_only();
    assert_ne!(code, 0);
    assert!(err.contains("memory") && err.contains("not available"), "{err}");
}
