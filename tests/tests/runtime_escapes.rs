//! Regression tests for the container-escape classes the runtime guards against
//! (reference §C): each tries the escape for real and asserts it fails.

use std::path::Path;

use serde_json::json;
use slipway_e2e::bundle::Bundle;

/// The host's own binary must never be what a container process sees as an executable:
/// the init execs the workload directly (CVE-2019-5736).
#[test]
fn the_runtime_binary_is_never_visible_inside_the_container() {
    let b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "for p in /proc/[0-9]*; do readlink $p/exe; done; probe exe-write 1",
    ]);
    let (code, out, err) = b.run();
    assert_eq!(code, 0, "{err}");
    for line in out.lines().filter(|l| !l.contains("errno") && !l.contains(':')) {
        assert!(
            !line.contains("slipway"),
            "a container process runs the runtime's binary: {line}\n{out}"
        );
        assert!(line.ends_with("busybox") || line.ends_with("probe"), "{line}");
    }
    // PID 1 is the workload, busy running: its binary cannot be opened for writing.
    assert!(out.contains("1: errno 26"), "ETXTBSY on /proc/1/exe:\n{out}");
}

/// A working directory reached through a descriptor the runtime leaked would lie outside
/// the root (CVE-2024-21626): every such attempt fails or stays inside.
#[test]
fn a_leaked_descriptor_cannot_be_the_working_directory() {
    let mut b = Bundle::new(&["/bin/probe", "cwd"]);
    for fd in 3..12 {
        b.spec["process"]["cwd"] = json!(format!("/proc/self/fd/{fd}"));
        let (code, out, err) = b.run();
        if code == 0 {
            assert!(
                !out.contains("unreachable") && out.starts_with('/'),
                "fd {fd}: cwd {out}"
            );
        } else {
            assert!(err.contains("working directory"), "fd {fd}: {err}");
        }
    }
}

/// Masked paths get the real null device bound over them; a /dev/null that is anything
/// else stops the container instead (CVE-2025-31133).
#[test]
fn a_swapped_dev_null_is_refused() {
    let fake = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(fake.path(), "not the null device").unwrap();
    let mut b = Bundle::new(&["/bin/cat", "/proc/keys"]);
    b.spec["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/dev/null", "type": "bind", "source": fake.path(), "options": ["bind"]
    }));
    let (code, _, err) = b.run();
    assert_ne!(code, 0);
    assert!(err.contains("not the null device"), "{err}");

    // An image whose /dev/null is a symlink (with no /dev tmpfs over it) gets a real one.
    let mut b = Bundle::new(&["/bin/sh", "-c", "stat -c '%F %t:%T' /dev/null; cat /proc/keys | wc -c"]);
    std::fs::create_dir_all(b.rootfs().join("dev")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", b.rootfs().join("dev/null")).unwrap();
    b.spec["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/dev");
    let (code, out, err) = b.run();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "character special file 1:3\n0\n");
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("etc/hostname")).unwrap(),
        "bundle\n"
    );
}

/// Mount targets are resolved inside the root: symlinks in the image cannot send a mount,
/// or a directory the runtime creates, to the host.
#[test]
fn symlinked_mount_targets_stay_inside_the_root() {
    let marker = format!("slipway-test-escape-{}", std::process::id());
    let host_target = Path::new("/tmp").join(&marker);
    let source = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("file"), "mounted\n").unwrap();
    let mut b = Bundle::new(&["/bin/sh", "-c", "cat /abs/sub/file /rel/sub/file"]);
    std::os::unix::fs::symlink(&host_target, b.rootfs().join("abs")).unwrap();
    std::os::unix::fs::symlink(format!("../../../../../../../tmp/{marker}"), b.rootfs().join("rel")).unwrap();
    std::fs::create_dir_all(b.rootfs().join("tmp").join(&marker)).unwrap();
    for dest in ["/abs/sub", "/rel/sub"] {
        b.spec["mounts"].as_array_mut().unwrap().push(json!({
            "destination": dest, "type": "bind", "source": source.path(), "options": ["rbind", "ro"]
        }));
    }
    let (code, out, err) = b.run();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "mounted\nmounted\n");
    assert!(
        !host_target.exists(),
        "nothing was created on the host at {}",
        host_target.display()
    );
    assert!(
        b.rootfs().join("tmp").join(&marker).join("sub").is_dir(),
        "the target was made inside the root"
    );
}

/// A fork bomb stops at pids.max, inside the container's cgroup.
#[test]
fn a_fork_bomb_stops_at_the_pids_limit() {
    let mut b = Bundle::new(&["/bin/probe", "forkbomb"]);
    b.spec["linux"]["resources"]["pids"] = json!({ "limit": 32 });
    let (code, out, err) = b.run();
    assert_eq!(code, 0, "{err}");
    let forked: usize = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(forked < 32, "{out}");
    assert!(out.trim_end().ends_with("errno 11"), "fork failed with EAGAIN: {out}");
}

/// A memory bomb is OOM-killed inside its cgroup; this process lives on.
#[test]
fn a_memory_bomb_is_oom_killed_inside_its_cgroup() {
    let mut b = Bundle::new(&["/bin/probe", "membomb"]);
    b.spec["linux"]["resources"]["memory"] = json!({ "limit": 32 << 20, "swap": 32 << 20 });
    let (code, out, _) = b.run();
    assert_eq!(code, 137, "killed by SIGKILL: {out}");
    assert!(!out.contains("allocated"));
}

/// The first block device this host lets root open, as major and minor.
fn openable_block_device() -> Option<(u32, u32)> {
    for entry in std::fs::read_dir("/sys/dev/block").ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let (major, minor) = name.split_once(':')?;
        let dev_name = std::fs::read_to_string(entry.path().join("uevent"))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("DEVNAME=").map(String::from))?;
        if std::fs::File::open(Path::new("/dev").join(&dev_name)).is_ok() {
            return Some((major.parse().ok()?, minor.parse().ok()?));
        }
    }
    None
}

/// With CAP_MKNOD a container can make a node for the host's disk, as on Play with Docker,
/// but the device cgroup refuses to open it.
#[test]
fn a_host_block_device_cannot_be_opened() {
    let (major, minor) = openable_block_device().expect("a block device root can open on this host");
    let b = Bundle::new(&["/bin/probe", "mknod-open", &major.to_string(), &minor.to_string()]);
    let (code, out, err) = b.run();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "mknod ok, open errno 1", "{major}:{minor}");
}
