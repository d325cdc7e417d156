//! slipway-probe: a tiny static program placed in test root filesystems, as crun's tests
//! place theirs. Each subcommand reports one thing the container sees, or tries one thing
//! the container must not be able to do, and prints the result for the test to compare.
//!
//! Built by tests/build.rs with rustc alone (std only, statically linked), so it runs in a
//! root filesystem that holds nothing else. System calls the standard library does not
//! wrap are made directly (x86_64).

use std::io::Write;

#[cfg(target_arch = "x86_64")]
unsafe fn syscall6(n: i64, a: [i64; 6]) -> i64 {
    let ret: i64;
    unsafe {
        std::arch::asm!("syscall",
            inlateout("rax") n => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2], in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

const SYS_READ: i64 = 0;
const SYS_SOCKET: i64 = 41;
const SYS_CLONE: i64 = 56;
const SYS_FORK: i64 = 57;
const SYS_EXIT: i64 = 60;
const SYS_WAIT4: i64 = 61;
const SYS_KILL: i64 = 62;
const SYS_PTRACE: i64 = 101;
const SYS_PERSONALITY: i64 = 135;
const SYS_MOUNT: i64 = 165;
const SYS_UNSHARE: i64 = 272;
const SYS_ADD_KEY: i64 = 248;
const SYS_KEYCTL: i64 = 250;
const SYS_MKNOD: i64 = 133;
const SYS_IO_URING_SETUP: i64 = 425;
const SYS_CLONE3: i64 = 435;
const SYS_BPF: i64 = 321;
const SYS_SETNS: i64 = 308;
const SYS_CHROOT: i64 = 161;
const SYS_OPEN_BY_HANDLE_AT: i64 = 304;
const SYS_REBOOT: i64 = 169;

fn result(r: i64) -> String {
    if r < 0 { format!("errno {}", -r) } else { "ok".to_string() }
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// Tries one system call that a container's profile decides on.
fn try_syscall(name: &str) -> String {
    unsafe {
        match name {
            "clone3" => {
                // A bad (zero-sized) argument: EINVAL if allowed, the filter's errno if not.
                result(syscall6(SYS_CLONE3, [0, 0, 0, 0, 0, 0]))
            }
            "clone-newns" => {
                // CLONE_NEWNS|SIGCHLD; if allowed the child exits at once.
                let r = syscall6(SYS_CLONE, [0x0002_0000 | 17, 0, 0, 0, 0, 0]);
                if r == 0 {
                    syscall6(SYS_EXIT, [0, 0, 0, 0, 0, 0]);
                }
                if r > 0 {
                    syscall6(SYS_WAIT4, [r, 0, 0, 0, 0, 0]);
                }
                result(r)
            }
            "clone-plain" => {
                let r = syscall6(SYS_CLONE, [17, 0, 0, 0, 0, 0]);
                if r == 0 {
                    syscall6(SYS_EXIT, [0, 0, 0, 0, 0, 0]);
                }
                if r > 0 {
                    syscall6(SYS_WAIT4, [r, 0, 0, 0, 0, 0]);
                }
                result(r)
            }
            "unshare" => result(syscall6(SYS_UNSHARE, [0x0002_0000, 0, 0, 0, 0, 0])),
            "setns" => result(syscall6(SYS_SETNS, [-1, 0, 0, 0, 0, 0])),
            "mount" => {
                let src = cstr("none");
                let dst = cstr("/tmp");
                let t = cstr("tmpfs");
                result(syscall6(SYS_MOUNT, [src.as_ptr() as i64, dst.as_ptr() as i64, t.as_ptr() as i64, 0, 0, 0]))
            }
            "socket-alg" => result(syscall6(SYS_SOCKET, [38, 5, 0, 0, 0, 0])),
            "socket-vsock" => result(syscall6(SYS_SOCKET, [40, 1, 0, 0, 0, 0])),
            "socket-inet" => result(syscall6(SYS_SOCKET, [2, 1, 0, 0, 0, 0])),
            "socket-unix" => result(syscall6(SYS_SOCKET, [1, 1, 0, 0, 0, 0])),
            "keyctl" => result(syscall6(SYS_KEYCTL, [0, 0, 0, 0, 0, 0])),
            "add_key" => result(syscall6(SYS_ADD_KEY, [0, 0, 0, 0, 0, 0])),
            "io_uring_setup" => result(syscall6(SYS_IO_URING_SETUP, [1, 0, 0, 0, 0, 0])),
            "bpf" => result(syscall6(SYS_BPF, [0, 0, 0, 0, 0, 0])),
            "ptrace" => result(syscall6(SYS_PTRACE, [0x4206, 1, 0, 0, 0, 0])),
            "personality-query" => result(syscall6(SYS_PERSONALITY, [0xffff_ffff, 0, 0, 0, 0, 0])),
            "personality-exec" => result(syscall6(SYS_PERSONALITY, [0x0040_0000, 0, 0, 0, 0, 0])),
            "chroot" => {
                let p = cstr("/");
                result(syscall6(SYS_CHROOT, [p.as_ptr() as i64, 0, 0, 0, 0, 0]))
            }
            "open_by_handle_at" => result(syscall6(SYS_OPEN_BY_HANDLE_AT, [-1, 0, 0, 0, 0, 0])),
            "reboot" => result(syscall6(SYS_REBOOT, [0, 0, 0, 0, 0, 0])),
            "mknod-block" => {
                // A block device node for the host's first virtio disk (254:0).
                let p = cstr("/tmp/probe-blk");
                let dev = (254i64 << 8) | 0;
                let r = syscall6(SYS_MKNOD, [p.as_ptr() as i64, 0o060600, dev, 0, 0, 0]);
                if r < 0 {
                    return result(r);
                }
                match std::fs::File::open("/tmp/probe-blk") {
                    Ok(_) => "opened".to_string(),
                    Err(e) => format!("mknod ok, open errno {}", e.raw_os_error().unwrap_or(0)),
                }
            }
            other => format!("unknown syscall {other}"),
        }
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("error: {e}"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut out = std::io::stdout();
    let cmd = args.get(1).map(String::as_str).unwrap_or("help");
    let code = match cmd {
        "status" => {
            let _ = write!(out, "{}", read("/proc/self/status"));
            0
        }
        "mounts" => {
            let _ = write!(out, "{}", read("/proc/self/mountinfo"));
            0
        }
        "cgroup" => {
            let _ = write!(out, "{}", read("/proc/self/cgroup"));
            0
        }
        "cwd" => {
            let _ = writeln!(out, "{}", std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_else(|e| format!("error: {e}")));
            0
        }
        "fds" => {
            let mut entries: Vec<(u32, String)> = std::fs::read_dir("/proc/self/fd")
                .map(|d| {
                    d.flatten()
                        .filter_map(|e| {
                            let n: u32 = e.file_name().to_string_lossy().parse().ok()?;
                            let target = std::fs::read_link(e.path()).map(|p| p.display().to_string()).unwrap_or_default();
                            Some((n, target))
                        })
                        .collect()
                })
                .unwrap_or_default();
            entries.sort();
            for (n, t) in entries {
                let _ = writeln!(out, "{n} {t}");
            }
            0
        }
        "ns" => {
            for ns in ["cgroup", "ipc", "mnt", "net", "pid", "uts", "user"] {
                let t = std::fs::read_link(format!("/proc/self/ns/{ns}")).map(|p| p.display().to_string()).unwrap_or_default();
                let _ = writeln!(out, "{ns} {t}");
            }
            0
        }
        "pid" => {
            let _ = writeln!(out, "{}", std::process::id());
            0
        }
        "hostname" => {
            let _ = write!(out, "{}", read("/proc/sys/kernel/hostname"));
            0
        }
        "env" => {
            for (k, v) in std::env::vars() {
                let _ = writeln!(out, "{k}={v}");
            }
            0
        }
        "echo" => {
            let _ = writeln!(out, "{}", args[2..].join(" "));
            0
        }
        "exit" => args.get(2).and_then(|c| c.parse().ok()).unwrap_or(0),
        "sleep" => {
            let secs: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1.0);
            std::thread::sleep(std::time::Duration::from_secs_f64(secs));
            0
        }
        "syscall" => {
            for name in &args[2..] {
                let _ = writeln!(out, "{name} {}", try_syscall(name));
            }
            0
        }
        "read" => {
            let _ = write!(out, "{}", read(&args[2]));
            0
        }
        "write" => match std::fs::write(&args[2], args.get(3).map(String::as_str).unwrap_or("")) {
            Ok(()) => {
                let _ = writeln!(out, "ok");
                0
            }
            Err(e) => {
                let _ = writeln!(out, "errno {}", e.raw_os_error().unwrap_or(0));
                1
            }
        },
        "ls" => {
            let mut names: Vec<String> = std::fs::read_dir(&args[2])
                .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            names.sort();
            for n in names {
                let _ = writeln!(out, "{n}");
            }
            0
        }
        "forkbomb" => {
            // Fork until the kernel refuses, report how many, then let the children go.
            let mut children = Vec::new();
            let mut refused = 0;
            for _ in 0..100_000 {
                let r = unsafe { syscall6(SYS_FORK, [0, 0, 0, 0, 0, 0]) };
                if r == 0 {
                    let mut b = [0u8; 1];
                    unsafe { syscall6(SYS_READ, [0, b.as_mut_ptr() as i64, 0, 0, 0, 0]) };
                    unsafe { syscall6(SYS_EXIT, [0, 0, 0, 0, 0, 0]) };
                }
                if r < 0 {
                    refused = -r;
                    break;
                }
                children.push(r);
                // Children sleep so they stay counted.
            }
            let _ = writeln!(out, "forked {} then errno {refused}", children.len());
            let _ = out.flush();
            for c in &children {
                unsafe { syscall6(SYS_KILL, [*c, 9, 0, 0, 0, 0]) };
            }
            for c in &children {
                unsafe { syscall6(SYS_WAIT4, [*c, 0, 0, 0, 0, 0]) };
            }
            0
        }
        "membomb" => {
            // Touch memory a MiB at a time until killed (or the amount asked for).
            let mib: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(usize::MAX);
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            for i in 0..mib {
                let mut v = vec![0u8; 1 << 20];
                for j in (0..v.len()).step_by(4096) {
                    v[j] = (i + j) as u8;
                }
                hoard.push(v);
            }
            let _ = writeln!(out, "allocated {} MiB", hoard.len());
            0
        }
        "mknod-open" => {
            // Make a block device node for MAJOR:MINOR and try to open it: CAP_MKNOD allows
            // the node; the device cgroup must refuse the open.
            let major: i64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(254);
            let minor: i64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
            let p = cstr("/tmp/probe-blk");
            let dev = ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & !0xff) << 12);
            let r = unsafe { syscall6(SYS_MKNOD, [p.as_ptr() as i64, 0o060600, dev, 0, 0, 0]) };
            let _ = if r < 0 {
                writeln!(out, "mknod {}", result(r))
            } else {
                match std::fs::File::open("/tmp/probe-blk") {
                    Ok(_) => writeln!(out, "mknod ok, open ok"),
                    Err(e) => writeln!(out, "mknod ok, open errno {}", e.raw_os_error().unwrap_or(0)),
                }
            };
            0
        }
        "exe-write" => {
            // CVE-2019-5736: try to open other processes' /proc/PID/exe for writing.
            let mut report = Vec::new();
            for pid in args[2..].iter() {
                let path = format!("/proc/{pid}/exe");
                let r = std::fs::OpenOptions::new().write(true).open(&path);
                report.push(format!("{pid}: {}", match r {
                    Ok(_) => "writable".to_string(),
                    Err(e) => format!("errno {}", e.raw_os_error().unwrap_or(0)),
                }));
            }
            let _ = writeln!(out, "{}", report.join(", "));
            0
        }
        _ => {
            let _ = writeln!(out, "usage: slipway-probe status|mounts|cgroup|cwd|fds|ns|pid|hostname|env|echo|exit N|sleep S|syscall NAMES...|read P|write P C|ls D|forkbomb|membomb MIB|exe-write PIDS...");
            2
        }
    };
    let _ = out.flush();
    std::process::exit(code);
}
