//! The embedded runtime's isolation, checked from inside real containers by slipway-probe
//! and compared with Docker's defaults. Runs `slipway runtime run` on OCI bundles.

use serde_json::json;
use slipway_e2e::bundle::{Bundle, status_field};

/// Docker's 14 default capabilities as the kernel prints them.
const DOCKER_CAPS: &str = "00000000a80425fb";

fn run(bundle: &Bundle) -> String {
    let (code, out, err) = bundle.run();
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    out
}

#[test]
fn prints_what_the_process_prints_and_returns_its_exit_code() {
    let mut b = Bundle::new(&["/bin/sh", "-c", "echo hello from the bundle; exit 7"]);
    let (code, out, _) = b.run();
    assert_eq!(out, "hello from the bundle\n");
    assert_eq!(code, 7);
    b.set_args(&["/bin/probe", "exit", "0"]);
    assert_eq!(b.run().0, 0);
    b.set_args(&["no-such-program"]);
    let (code, _, err) = b.run();
    assert_ne!(code, 0);
    assert!(err.contains("executable file not found in $PATH"), "{err}");
}

#[test]
fn capabilities_seccomp_and_privileges_are_dockers() {
    let b = Bundle::new(&["/bin/probe", "status"]);
    let status = run(&b);
    for set in ["CapBnd", "CapEff", "CapPrm"] {
        assert_eq!(status_field(&status, set), Some(DOCKER_CAPS), "{set}:\n{status}");
    }
    assert_eq!(status_field(&status, "CapInh"), Some("0000000000000000"));
    assert_eq!(status_field(&status, "CapAmb"), Some("0000000000000000"));
    assert_eq!(status_field(&status, "Seccomp"), Some("2"), "{status}");
    assert_eq!(status_field(&status, "NoNewPrivs"), Some("0"), "Docker's default");
}

#[test]
fn cap_add_cap_drop_and_no_new_privileges() {
    let mut b = Bundle::new(&["/bin/sh", "-c", "/bin/probe status; /bin/probe syscall unshare"]);
    for set in ["bounding", "effective", "permitted"] {
        let caps = b.spec["process"]["capabilities"][set].as_array_mut().unwrap();
        caps.retain(|c| c != "CAP_NET_RAW");
        caps.push(json!("CAP_SYS_ADMIN"));
    }
    b.spec["process"]["noNewPrivileges"] = json!(true);
    // As Docker does for --cap-add, the profile is resolved for the final capabilities.
    let mut caps: Vec<caps::Capability> = slipway_runtime::spec::to_caps(&slipway_runtime::spec::DEFAULT_CAPABILITIES);
    caps.retain(|c| *c != caps::Capability::CAP_NET_RAW);
    caps.push(caps::Capability::CAP_SYS_ADMIN);
    b.spec["linux"]["seccomp"] = serde_json::to_value(slipway_runtime::seccomp::docker_default(&caps)).unwrap();
    let out = run(&b);
    let mask = u64::from_str_radix(status_field(&out, "CapEff").unwrap(), 16).unwrap();
    assert_eq!(mask & (1 << 13), 0, "NET_RAW (13) dropped");
    assert_ne!(mask & (1 << 21), 0, "SYS_ADMIN (21) added");
    assert_eq!(status_field(&out, "NoNewPrivs"), Some("1"));
    assert!(
        out.contains("unshare ok"),
        "CAP_SYS_ADMIN unlocks unshare in Docker's profile:\n{out}"
    );
}

#[test]
fn the_default_seccomp_profile_refuses_what_dockers_refuses() {
    let b = Bundle::new(&[
        "/bin/probe",
        "syscall",
        "clone3",
        "clone-newns",
        "clone-plain",
        "unshare",
        "setns",
        "mount",
        "socket-alg",
        "socket-vsock",
        "socket-inet",
        "socket-unix",
        "keyctl",
        "add_key",
        "bpf",
        "personality-query",
        "personality-exec",
        "open_by_handle_at",
        "reboot",
    ]);
    let out = run(&b);
    let result = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or("missing")
            .to_string()
    };
    assert_eq!(
        result("clone3"),
        "errno 38",
        "clone3 answers ENOSYS so libc falls back to clone"
    );
    for refused in [
        "clone-newns",
        "unshare",
        "setns",
        "mount",
        "socket-alg",
        "socket-vsock",
        "keyctl",
        "add_key",
        "bpf",
        "personality-exec",
        "open_by_handle_at",
        "reboot",
    ] {
        assert_eq!(result(refused), "errno 1", "{refused}:\n{out}");
    }
    for allowed in ["clone-plain", "socket-inet", "socket-unix", "personality-query"] {
        assert_eq!(result(allowed), "ok", "{allowed}:\n{out}");
    }
}

#[test]
fn mounts_masked_and_read_only_paths_are_dockers() {
    let b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "cat /proc/self/mountinfo; echo ===; cat /proc/keys /proc/timer_list | wc -c; ls /sys/firmware | wc -l; echo ===; echo x > /proc/sys/kernel/hostname; echo x > /proc/sysrq-trigger; echo",
    ]);
    let (code, out, err) = b.run();
    assert_eq!(code, 0, "{err}");
    let mut parts = out.split("===\n");
    let mountinfo = parts.next().unwrap();
    let masked = parts.next().unwrap();
    let find = |dest: &str| -> (String, String, String) {
        let line = mountinfo
            .lines()
            .rfind(|l| l.split_whitespace().nth(4) == Some(dest))
            .unwrap_or_else(|| panic!("no mount at {dest}:\n{mountinfo}"));
        let (left, right) = line.split_once(" - ").unwrap();
        let opts = left.split_whitespace().nth(5).unwrap().to_string();
        let mut r = right.split_whitespace();
        let fstype = r.next().unwrap().to_string();
        let _source = r.next();
        (opts, fstype, r.next().unwrap_or("").to_string())
    };
    let (opts, fstype, _) = find("/proc");
    assert_eq!(fstype, "proc");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(opts.contains(o), "/proc {o}: {opts}");
    }
    let (opts, fstype, sopts) = find("/dev");
    assert_eq!(fstype, "tmpfs");
    assert!(
        opts.contains("nosuid") && sopts.contains("size=65536k") && sopts.contains("mode=755"),
        "{opts} {sopts}"
    );
    let (_, fstype, sopts) = find("/dev/pts");
    assert_eq!(fstype, "devpts");
    assert!(
        sopts.contains("gid=5") && sopts.contains("mode=620") && sopts.contains("ptmxmode=666"),
        "{sopts}"
    );
    let (opts, _, sopts) = find("/dev/shm");
    assert!(opts.contains("noexec") && sopts.contains("size=65536k"), "{sopts}");
    assert!(find("/dev/mqueue").1 == "mqueue");
    let (opts, fstype, _) = find("/sys");
    assert_eq!(fstype, "sysfs");
    assert!(opts.starts_with("ro"), "/sys is read-only: {opts}");
    assert!(
        find("/sys/fs/cgroup").0.starts_with("ro"),
        "/sys/fs/cgroup is read-only"
    );
    for ro in ["/proc/sys", "/proc/bus", "/proc/irq", "/proc/sysrq-trigger", "/proc/fs"] {
        if mountinfo.contains(&format!(" {ro} ")) {
            assert!(find(ro).0.starts_with("ro"), "{ro} is read-only");
        }
    }
    // Masked: the files read empty and the directory is empty.
    let mut counts = masked.lines();
    assert_eq!(
        counts.next(),
        Some("0"),
        "/proc/keys and /proc/timer_list read as /dev/null"
    );
    assert_eq!(counts.next(), Some("0"), "/sys/firmware is an empty tmpfs");
    assert!(err.contains("Read-only file system"), "writing /proc/sys fails:\n{err}");
}

#[test]
fn namespaces_cgroup_fds_cwd_hostname_and_env() {
    let mut b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "probe ns; echo ===; probe cgroup; echo ===; probe fds; echo ===; probe cwd; probe hostname; echo $GREETING; probe pid",
    ]);
    b.spec["process"]["cwd"] = json!("/tmp");
    b.spec["hostname"] = json!("node7");
    b.spec["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!("GREETING=hi there"));
    let out = run(&b);
    let sections: Vec<&str> = out.split("===\n").collect();
    let host_ns: Vec<String> = ["cgroup", "ipc", "mnt", "net", "pid", "uts"]
        .iter()
        .map(|ns| {
            std::fs::read_link(format!("/proc/self/ns/{ns}"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    for line in sections[0].lines() {
        let (name, link) = line.split_once(' ').unwrap();
        if name == "user" {
            continue; // Docker shares the host's user namespace by default.
        }
        assert!(
            !host_ns.contains(&link.to_string()),
            "{name} namespace is the host's: {link}"
        );
    }
    // In its own cgroup namespace the container sees its cgroup as the root.
    for line in sections[1].lines() {
        assert!(line.ends_with(":/"), "{line}");
    }
    // Only stdio crosses into the container (the probe's own directory handle aside).
    let fds: Vec<&str> = sections[2].lines().collect();
    assert!(fds.len() <= 4, "{fds:?}");
    for fd in &fds {
        let (n, target) = fd.split_once(' ').unwrap();
        let n: u32 = n.parse().unwrap();
        assert!(
            n <= 2 || target.starts_with("/proc/"),
            "fd {n} leaked into the container: {target}"
        );
    }
    let rest: Vec<&str> = sections[3].lines().collect();
    assert_eq!(rest[0], "/tmp");
    assert_eq!(rest[1], "node7");
    assert_eq!(rest[2], "hi there");
    assert_eq!(rest[3], "1", "the workload is PID 1");
}

#[test]
fn user_group_supplementary_groups_umask_rlimits_and_oom_score() {
    let mut b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "probe status; cat /proc/self/oom_score_adj; grep 'Max open files' /proc/self/limits; umask",
    ]);
    b.spec["process"]["user"] = json!({ "uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 23 });
    b.spec["process"]["oomScoreAdj"] = json!(500);
    b.spec["process"]["rlimits"] = json!([{ "type": "RLIMIT_NOFILE", "soft": 100, "hard": 200 }]);
    let out = run(&b);
    assert!(
        status_field(&out, "Uid").unwrap().starts_with("1000\t1000\t1000"),
        "{out}"
    );
    assert!(
        status_field(&out, "Gid").unwrap().starts_with("1001\t1001\t1001"),
        "{out}"
    );
    assert_eq!(status_field(&out, "Groups"), Some("10 20"));
    assert!(out.contains("\n500\n"), "{out}");
    assert!(
        out.lines().any(
            |l| l.starts_with("Max open files") && l.split_whitespace().collect::<Vec<_>>()[3..5] == ["100", "200"]
        ),
        "{out}"
    );
    assert!(out.trim_end().ends_with("0027"), "{out}");
}

#[test]
fn read_only_root_tmpfs_and_bind_mounts() {
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(host_dir.path().join("shared.txt"), "from the host\n").unwrap();
    let mut b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "cat /data/shared.txt; echo x > /data/new 2>/dev/null || echo bind-ro; echo y > /scratch/ok && echo tmpfs-rw; echo z > /root/nope 2>/dev/null || echo root-ro",
    ]);
    b.spec["root"]["readonly"] = json!(true);
    let mounts = b.spec["mounts"].as_array_mut().unwrap();
    mounts
        .push(json!({ "destination": "/data", "type": "bind", "source": host_dir.path(), "options": ["rbind", "ro"] }));
    mounts.push(
        json!({ "destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=1m"] }),
    );
    let out = run(&b);
    assert_eq!(out, "from the host\nbind-ro\ntmpfs-rw\nroot-ro\n");
    assert!(!host_dir.path().join("new").exists());
}

#[test]
fn a_working_directory_must_exist_inside_the_container() {
    let mut b = Bundle::new(&["/bin/true"]);
    b.spec["process"]["cwd"] = json!("/does/not/exist");
    let (code, _, err) = b.run();
    assert_ne!(code, 0);
    assert!(err.contains("working directory"), "{err}");
}

#[test]
fn create_start_state_kill_delete() {
    let b = Bundle::new(&["/bin/sleep", "30"]);
    let (id, status, log) = b.create();
    assert!(status.success(), "{log}");
    let state = |id: &str| -> serde_json::Value { serde_json::from_slice(&b.runtime(&["state", id]).stdout).unwrap() };
    assert_eq!(state(&id)["status"], "created");
    let pid = state(&id)["pid"].as_i64().unwrap();
    assert!(pid > 0);
    // Before start, the host sees the init waiting (not yet the workload).
    let out = b.runtime(&["start", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(state(&id)["status"], "running");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        exe.ends_with("busybox"),
        "the workload was exec'd directly: {}",
        exe.display()
    );
    assert!(
        !b.runtime(&["delete", &id]).status.success(),
        "a running container is not deleted without --force"
    );
    assert!(b.runtime(&["kill", &id, "KILL"]).status.success());
    for _ in 0..100 {
        if state(&id)["status"] == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(state(&id)["status"], "stopped");
    assert!(b.runtime(&["delete", &id]).status.success());
    assert!(!b.runtime(&["state", &id]).status.success(), "gone after delete");
    assert!(
        b.cgroup_dirs().iter().all(|d| std::fs::read_dir(d)
            .unwrap()
            .filter_map(|e| e.ok())
            .all(|e| !e.path().is_dir() || !e.file_name().to_string_lossy().contains(&id))),
        "its cgroup is removed"
    );
}

/// Bundles written by `runc spec` deny every device and list ambient capabilities without
/// inheritable ones; runc runs them, and so must Slipway.
#[test]
fn runc_style_specs_run() {
    let mut b = Bundle::new(&["/bin/sh", "-c", "echo ok > /dev/null && grep CapAmb /proc/self/status"]);
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    b.spec["process"]["capabilities"] =
        json!({ "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps });
    b.spec["linux"]["resources"]["devices"] = json!([{ "allow": false, "access": "rwm" }]);
    let out = run(&b);
    assert_eq!(out.trim(), "CapAmb:\t0000000000000000");
}
