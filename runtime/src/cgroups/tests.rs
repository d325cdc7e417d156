//! Tests on the real machine, as root. Every cgroup is named `slipway-test-<unique>` and is
//! destroyed by a guard even when the test fails. Children are forked with nix; between fork
//! and `_exit` they make raw syscalls only (no allocation, no locks, no panics), because the
//! test harness is multi-threaded.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, pipe2};
use oci_spec::runtime::{LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxPids, LinuxResources};

use super::*;

// ---------- environment ----------

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The host's v1 hierarchy (with its cgroup2 twin), or None (test skipped) elsewhere.
fn v1_host() -> Option<Hierarchy> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return None;
    }
    match Hierarchy::detect().expect("detect") {
        h @ Hierarchy::V1 { .. } => Some(h),
        Hierarchy::V2 { .. } => {
            eprintln!("skipped: host is not cgroup v1");
            None
        }
    }
}

/// The host's cgroup2 mount as a v2 hierarchy (the hybrid host's `unified` mount here).
fn v2_host() -> Option<Hierarchy> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return None;
    }
    match Hierarchy::detect().expect("detect") {
        Hierarchy::V1 { unified: Some(u), .. } => Some(Hierarchy::v2_at(u)),
        Hierarchy::V1 { unified: None, .. } => {
            eprintln!("skipped: no cgroup2 mount");
            None
        }
        h @ Hierarchy::V2 { .. } => Some(h),
    }
}

fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "slipway-test-{tag}-{:x}-{:x}-{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Destroys the cgroup (subtree) on drop and reaps whatever of ours was in it.
struct Guard {
    cg: Cgroup,
}

impl Guard {
    fn new(h: &Hierarchy, path: &str) -> Guard {
        Guard {
            cg: Cgroup::new(h, path).unwrap(),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let pids = self.cg.all_procs().unwrap_or_default();
        if let Err(e) = self.cg.destroy() {
            eprintln!("cleanup of {} failed: {e}", self.cg.path());
        }
        for p in pids {
            reap(p, Duration::from_secs(2));
        }
    }
}

/// Reaps `pid` if it is our child, waiting at most `within`.
fn reap(pid: i32, within: Duration) -> Option<WaitStatus> {
    let start = Instant::now();
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(st) => return Some(st),
            Err(_) => return None, // not our child, or already reaped
        }
        if start.elapsed() > within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------- children ----------

/// A forked child. It waits for [`Child::go`] before running its body, so that the parent can
/// place it in a cgroup first; it can tell the parent it reached a point with `signal`.
struct Child {
    pid: i32,
    go_w: Option<OwnedFd>,
    done_r: OwnedFd,
    reaped: bool,
}

/// What the child body may use: raw fds only.
#[derive(Clone, Copy)]
struct Ctx {
    done_w: i32,
}

impl Ctx {
    fn signal(&self) {
        let b = 1u8;
        // SAFETY: write(2) on our pipe fd from a valid one-byte buffer.
        unsafe { libc::write(self.done_w, &b as *const u8 as *const libc::c_void, 1) };
    }
}

fn spawn<F: FnOnce(Ctx) -> i32>(body: F) -> Child {
    let (go_r, go_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let (done_r, done_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    // SAFETY: the child only makes raw syscalls (read, write, mmap, clone, open, mknod...)
    // and leaves with _exit; it never allocates, locks or unwinds.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let mut b = 0u8;
            // SAFETY: read(2) into a valid one-byte buffer.
            let n = unsafe { libc::read(go_r.as_raw_fd(), &mut b as *mut u8 as *mut libc::c_void, 1) };
            let code = if n == 1 {
                body(Ctx {
                    done_w: done_w.as_raw_fd(),
                })
            } else {
                99
            };
            // SAFETY: _exit never returns and runs no destructors or atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => Child {
            pid: child.as_raw(),
            go_w: Some(go_w),
            done_r,
            reaped: false,
        },
    }
}

impl Child {
    fn go(&mut self) {
        let fd = self.go_w.take().unwrap();
        nix::unistd::write(&fd, &[1]).unwrap();
    }

    /// Waits for the child's `signal` (false if it died first).
    fn wait_signal(&self) -> bool {
        let mut b = [0u8; 1];
        matches!(nix::unistd::read(&self.done_r, &mut b), Ok(1))
    }

    fn wait(&mut self) -> WaitStatus {
        let st = waitpid(Pid::from_raw(self.pid), None).unwrap();
        self.reaped = true;
        st
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: kill(2); harmless if already gone.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            // A v1-frozen child dies only once thawed: the cgroup guard does that, so do not
            // block here.
            reap(self.pid, Duration::from_secs(1));
        }
    }
}

// Child helpers: async-signal-safe.

/// Touches `bytes` of fresh anonymous memory, page by page. Returns false if mmap failed.
fn touch(bytes: usize) -> bool {
    // SAFETY: anonymous private mapping; we only write inside it.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return false;
        }
        let p = p as *mut u8;
        let mut off = 0;
        while off < bytes {
            std::ptr::write_volatile(p.add(off), 1);
            off += 4096;
        }
    }
    true
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime into a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn spin(ms: u64) {
    let end = now_ns() + ms * 1_000_000;
    while now_ns() < end {
        std::hint::spin_loop();
    }
}

fn sleep_ms(ms: u64) {
    let ts = libc::timespec {
        tv_sec: (ms / 1000) as libc::time_t,
        tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
    };
    // SAFETY: nanosleep with a valid timespec.
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}

fn pause_forever() -> ! {
    loop {
        // SAFETY: pause(2) has no preconditions.
        unsafe { libc::pause() };
    }
}

/// A raw fork whose new process becomes a child of *our parent* (the test process), so the
/// test can reap it. Returns the pid (0 in the new process), or -errno.
fn clone_sibling() -> i64 {
    // SAFETY: a plain fork-like clone without CLONE_VM; the new process only makes raw
    // syscalls.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_long,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if r < 0 {
        // SAFETY: errno is thread-local and readable after a failed syscall.
        -(unsafe { *libc::__errno_location() }) as i64
    } else {
        r as i64
    }
}

fn errno() -> i32 {
    // SAFETY: reading errno.
    unsafe { *libc::__errno_location() }
}

/// A page of memory shared with children forked later.
struct Shared(*mut AtomicU64);

impl Shared {
    fn new() -> Shared {
        // SAFETY: anonymous shared mapping of one page, never unmapped while in use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        Shared(p as *mut AtomicU64)
    }
    fn counter(&self) -> &AtomicU64 {
        // SAFETY: the page is mapped, zeroed and suitably aligned for AtomicU64.
        unsafe { &*self.0 }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: unmapping the page we mapped.
        unsafe { libc::munmap(self.0 as *mut libc::c_void, 4096) };
    }
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref())
        .unwrap_or_else(|e| panic!("read {}: {e}", p.as_ref().display()))
        .trim()
        .to_string()
}

/// A block device (major, minor) that root can open outside any restricting cgroup: the root
/// disk from mountinfo if it opens, else the first of /sys/dev/block that does. (Here the
/// root disk, /dev/vda 254:0, refuses even root with EPERM, so the test uses zram0 or a loop
/// device.) The probe node is made, opened and removed in `dir`.
fn openable_block_device(dir: &Path) -> (u32, u32) {
    let mut candidates = Vec::new();
    for line in read("/proc/self/mountinfo").lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() > 4
            && f[4] == "/"
            && let Some((ma, mi)) = f[2].split_once(':')
        {
            candidates.push((ma.parse().unwrap(), mi.parse().unwrap()));
        }
    }
    let mut sys: Vec<(u32, u32)> = std::fs::read_dir("/sys/dev/block")
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().to_string();
            let (ma, mi) = name.split_once(':')?;
            Some((ma.parse().ok()?, mi.parse().ok()?))
        })
        .collect();
    sys.sort();
    candidates.extend(sys);
    let node = CString::new(dir.join("probe").as_os_str().as_encoded_bytes()).unwrap();
    for (ma, mi) in candidates {
        if ma == 0 {
            continue;
        }
        // SAFETY: mknod/open/close/unlink on a valid C string.
        let ok = unsafe {
            libc::unlink(node.as_ptr());
            if libc::mknod(node.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(ma, mi)) != 0 {
                false
            } else {
                let fd = libc::open(node.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd >= 0 {
                    libc::close(fd);
                }
                libc::unlink(node.as_ptr());
                fd >= 0
            }
        };
        if ok {
            return (ma, mi);
        }
        eprintln!("block device {ma}:{mi} does not open even outside the cgroup; next");
    }
    panic!("no block device on this host opens for root");
}

fn resources() -> LinuxResources {
    LinuxResources::default()
}

fn memory(limit: i64, swap: Option<i64>, reservation: Option<i64>) -> LinuxResources {
    let mut m = LinuxMemory::default();
    m.set_limit(Some(limit)).set_swap(swap).set_reservation(reservation);
    let mut r = resources();
    r.set_memory(Some(m));
    r
}

fn pids(limit: i64) -> LinuxResources {
    let mut p = LinuxPids::default();
    p.set_limit(limit);
    let mut r = resources();
    r.set_pids(Some(p));
    r
}

fn devices(rules: Vec<LinuxDeviceCgroup>) -> LinuxResources {
    let mut r = resources();
    r.set_devices(Some(rules));
    r
}

fn allow_all_devices() -> Vec<LinuxDeviceCgroup> {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(true)
        .set_typ(Some(LinuxDeviceType::A))
        .set_access(Some("rwm".to_string()));
    vec![r]
}

fn expect_killed(st: WaitStatus) {
    assert!(
        matches!(st, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
        "expected SIGKILL, got {st:?}"
    );
}

// ---------- pure API checks ----------

#[test]
fn cgroups_new_validates_paths() {
    let h = Hierarchy::v2_at(PathBuf::from("/sys/fs/cgroup"));
    for bad in ["", "/abs", "a/../b", "..", "./a", "a//b", "a\nb", "/"] {
        let e = Cgroup::new(&h, bad).unwrap_err();
        assert!(matches!(e, CgroupError::InvalidPath { .. }), "{bad:?}: {e}");
    }
    let c = Cgroup::new(&h, "slipway/pg-1/node1/").unwrap();
    assert_eq!(c.path(), "slipway/pg-1/node1");
    assert_eq!(
        c.dir("memory"),
        Some(PathBuf::from("/sys/fs/cgroup/slipway/pg-1/node1"))
    );
    let v1 = Hierarchy::V1 {
        mounts: [
            ("cpu".to_string(), PathBuf::from("/cg/cpu,cpuacct")),
            ("cpuacct".to_string(), PathBuf::from("/cg/cpu,cpuacct")),
            ("memory".to_string(), PathBuf::from("/cg/memory")),
        ]
        .into_iter()
        .collect(),
        unified: None,
    };
    let c = Cgroup::new(&v1, "a/b").unwrap();
    assert_eq!(c.dir("cpuacct"), Some(PathBuf::from("/cg/cpu,cpuacct/a/b")));
    assert_eq!(c.dir("pids"), None);
    assert_eq!(c.all_dirs().len(), 2, "comounted hierarchies count once");
}

// ---------- cgroup v1, for real ----------

#[test]
fn cgroups_v1_create_apply_procs_stats_destroy() {
    let Some(h) = v1_host() else { return };
    let top = unique("v1");
    let guard = Guard::new(&h, &top);
    let cg = Cgroup::new(&h, &format!("{top}/c1")).unwrap();
    cg.create().unwrap();

    for c in [
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "pids", "blkio",
    ] {
        if let Some(d) = cg.dir(c) {
            assert!(d.is_dir(), "{c}: {} missing", d.display());
        }
    }
    let cpuset = cg.dir("cpuset").unwrap();
    assert!(
        !read(cpuset.join("cpuset.cpus")).is_empty(),
        "cpus copied from the parent"
    );
    assert!(
        !read(cpuset.join("cpuset.mems")).is_empty(),
        "mems copied from the parent"
    );

    let mut r = memory(64 << 20, Some(64 << 20), Some(32 << 20));
    let mut cpu = LinuxCpu::default();
    cpu.set_shares(Some(512))
        .set_quota(Some(50_000))
        .set_period(Some(100_000))
        .set_cpus(Some("0".to_string()))
        .set_mems(Some("0".to_string()));
    r.set_cpu(Some(cpu));
    r.set_pids(*pids(32).pids());
    cg.apply(&r).unwrap();

    let mem = cg.dir("memory").unwrap();
    assert_eq!(read(mem.join("memory.limit_in_bytes")), (64u64 << 20).to_string());
    assert_eq!(read(mem.join("memory.soft_limit_in_bytes")), (32u64 << 20).to_string());
    if mem.join("memory.memsw.limit_in_bytes").exists() {
        assert_eq!(read(mem.join("memory.memsw.limit_in_bytes")), (64u64 << 20).to_string());
    }
    assert_eq!(read(cg.dir("pids").unwrap().join("pids.max")), "32");
    let cpud = cg.dir("cpu").unwrap();
    assert_eq!(read(cpud.join("cpu.shares")), "512");
    assert_eq!(read(cpud.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(cpud.join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(cpuset.join("cpuset.cpus")), "0");

    // Raising the limit later must order memsw and limit writes correctly.
    cg.apply(&memory(128 << 20, Some(256 << 20), None)).unwrap();
    assert_eq!(read(mem.join("memory.limit_in_bytes")), (128u64 << 20).to_string());
    cg.apply(&memory(48 << 20, Some(48 << 20), None)).unwrap();
    assert_eq!(read(mem.join("memory.limit_in_bytes")), (48u64 << 20).to_string());

    let mut child = spawn(|ctx| {
        if !touch(8 << 20) {
            return 2;
        }
        spin(150);
        ctx.signal();
        pause_forever()
    });
    cg.add_process(child.pid).unwrap();
    assert_eq!(cg.procs().unwrap(), vec![child.pid]);
    assert_eq!(cg.all_procs().unwrap(), vec![child.pid]);
    let parent = Cgroup::new(&h, &top).unwrap();
    assert_eq!(parent.procs().unwrap(), Vec::<i32>::new());
    assert_eq!(parent.all_procs().unwrap(), vec![child.pid]);
    let own = read(format!("/proc/{}/cgroup", child.pid));
    assert!(
        own.lines()
            .any(|l| l.contains(":memory:") && l.ends_with(&format!("/{top}/c1"))),
        "{own}"
    );
    child.go();
    assert!(child.wait_signal(), "child died early");

    let s = cg.stats().unwrap();
    eprintln!("v1 stats: {s:?}");
    assert!(s.cpu.usage_ns.unwrap() >= 50_000_000, "{:?}", s.cpu);
    assert!(s.cpu.user_ns.unwrap() > 0);
    assert!(s.cpu.per_cpu_ns.as_ref().is_some_and(|v| !v.is_empty()));
    assert!(s.cpu.nr_periods.unwrap() > 0, "quota set, so CFS periods elapse");
    assert!(s.memory.usage.unwrap() >= 8 << 20, "{:?}", s.memory);
    assert!(s.memory.rss.unwrap() >= 8 << 20, "{:?}", s.memory);
    assert_eq!(s.memory.limit, Some(48 << 20));
    assert!(s.memory.max_usage.unwrap() >= 8 << 20);
    assert_eq!(s.memory.oom_kills, Some(0));
    assert_eq!(s.pids.current, Some(1));
    assert_eq!(s.pids.limit, Some(32));
    assert!(s.io.read_bytes.is_some());
    serde_json::to_string(&s).unwrap();

    // A limit below the usage is refused by the kernel with EBUSY, as an Io error.
    let e = cg.apply(&memory(1 << 20, Some(1 << 20), None)).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EBUSY), "{e}");
    assert!(e.to_string().contains("memory."), "{e}");

    let dirs = cg.all_dirs();
    parent.destroy().unwrap();
    expect_killed(child.wait());
    for d in dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    assert!(!parent.exists());
    assert!(matches!(cg.stats(), Err(CgroupError::NotFound { .. })));
    parent.destroy().unwrap(); // a second destroy is fine
    drop(guard);
}

#[test]
fn cgroups_v1_freeze_thaw() {
    let Some(h) = v1_host() else { return };
    let guard = Guard::new(&h, &unique("freeze"));
    let cg = &guard.cg;
    cg.create().unwrap();
    let shared = Shared::new();
    let counter = shared.counter();
    let mut child = spawn(|_| {
        loop {
            counter.fetch_add(1, Ordering::Relaxed);
            std::hint::spin_loop();
        }
    });
    cg.add_process(child.pid).unwrap();
    child.go();
    while counter.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!cg.is_frozen().unwrap());
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    let a = counter.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    let b = counter.load(Ordering::Relaxed);
    assert_eq!(a, b, "a frozen child must not run");
    assert_eq!(read(cg.dir("freezer").unwrap().join("freezer.state")), "FROZEN");
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());
    std::thread::sleep(Duration::from_millis(100));
    assert!(counter.load(Ordering::Relaxed) > b, "a thawed child runs again");

    // Destroying a frozen cgroup still kills and removes it.
    cg.freeze().unwrap();
    cg.destroy().unwrap();
    expect_killed(child.wait());
    assert!(!cg.exists());
}

#[test]
fn cgroups_v1_oom_kill_is_counted() {
    let Some(h) = v1_host() else { return };
    let guard = Guard::new(&h, &unique("oom"));
    let cg = &guard.cg;
    cg.create().unwrap();
    cg.apply(&memory(16 << 20, Some(16 << 20), None)).unwrap();
    assert_eq!(cg.oom_kills().unwrap(), 0);
    let mut child = spawn(|_| {
        // Far past the 16 MiB limit; the OOM killer must stop us.
        if !touch(256 << 20) {
            return 2;
        }
        0
    });
    cg.add_process(child.pid).unwrap();
    child.go();
    let st = child.wait();
    expect_killed(st);
    let kills = cg.oom_kills().unwrap();
    assert!(kills >= 1, "oom_kill = {kills}");
    let s = cg.stats().unwrap();
    assert!(s.memory.oom_kills.unwrap() >= 1);
    // memory.failcnt stays 0 here: with memsw == limit the memsw counter fails first.
    assert!(s.memory.failcnt.is_some());
    assert!(s.memory.max_usage.unwrap() >= 12 << 20, "{:?}", s.memory);
    eprintln!(
        "oom_control: {}",
        read(cg.dir("memory").unwrap().join("memory.oom_control"))
    );
}

#[test]
fn cgroups_v1_pids_max_stops_a_fork_loop() {
    let Some(h) = v1_host() else { return };
    let guard = Guard::new(&h, &unique("pids"));
    let cg = &guard.cg;
    cg.create().unwrap();
    cg.apply(&pids(4)).unwrap();
    let mut child = spawn(|_| {
        // The siblings we make become children of the test process, which reaps them.
        let mut made = 0;
        for _ in 0..32 {
            match clone_sibling() {
                0 => pause_forever(),
                r if r == -(libc::EAGAIN as i64) => return 100 + made,
                r if r < 0 => return 3,
                _ => made += 1,
            }
        }
        1
    });
    cg.add_process(child.pid).unwrap();
    child.go();
    let st = child.wait();
    // The child itself is one of the 4; it made 3 more before fork said EAGAIN.
    assert_eq!(st, WaitStatus::Exited(Pid::from_raw(child.pid), 103));
    let s = cg.stats().unwrap();
    assert_eq!(s.pids.limit, Some(4));
    assert_eq!(s.pids.current, Some(3));
    assert_eq!(cg.procs().unwrap().len(), 3);
    drop(guard); // kills and reaps the three siblings
}

#[test]
fn cgroups_v1_docker_default_devices() {
    let Some(h) = v1_host() else { return };
    let guard = Guard::new(&h, &unique("dev"));
    let cg = &guard.cg;
    cg.create().unwrap();
    cg.apply(&devices(docker_default_devices())).unwrap();
    let list = read(cg.dir("devices").unwrap().join("devices.list"));
    assert!(list.contains("c 1:3 rwm") && list.contains("b *:* m"), "{list}");
    assert!(!list.contains("a *:* rwm"), "{list}");
    // Re-applying the same rules is a no-op (no transient deny-all).
    cg.apply(&devices(docker_default_devices())).unwrap();

    let (mut child, _tmp) = device_probe_child();
    cg.add_process(child.pid).unwrap();
    child.go();
    let st = child.wait();
    assert_eq!(
        st,
        WaitStatus::Exited(Pid::from_raw(child.pid), 0),
        "{}",
        probe_meaning(&st)
    );
    drop(guard);
}

/// A child that checks Docker's defaults from inside: /dev/null opens, a block device node it
/// makes itself (mknod allowed by `b *:* m`) does not open (EPERM), nor does /dev/mem (1:1).
/// Exit 0 when all holds.
fn device_probe_child() -> (Child, tempfile::TempDir) {
    let tmp = tempfile::tempdir_in("/tmp").unwrap();
    let (maj, min) = openable_block_device(tmp.path());
    let blk = CString::new(tmp.path().join("blk").as_os_str().as_encoded_bytes()).unwrap();
    let mem = CString::new(tmp.path().join("mem").as_os_str().as_encoded_bytes()).unwrap();
    let null = c"/dev/null";
    let child = spawn(move |_| {
        // SAFETY: raw syscalls on C strings prepared before fork.
        unsafe {
            let fd = libc::open(null.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            if fd < 0 {
                return 10;
            }
            libc::close(fd);
            if libc::mknod(blk.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(maj, min)) != 0 {
                return 20;
            }
            let fd = libc::open(blk.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd >= 0 {
                return 30;
            }
            if errno() != libc::EPERM {
                return 31;
            }
            if libc::mknod(mem.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 1)) != 0 {
                return 40;
            }
            let fd = libc::open(mem.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd >= 0 {
                return 50;
            }
            if errno() != libc::EPERM {
                return 51;
            }
        }
        0
    });
    (child, tmp)
}

fn probe_meaning(st: &WaitStatus) -> &'static str {
    match st {
        WaitStatus::Exited(_, 10) => "/dev/null did not open",
        WaitStatus::Exited(_, 20) => "mknod of a block device was refused",
        WaitStatus::Exited(_, 30) => "the block device opened",
        WaitStatus::Exited(_, 31) => "the block device failed with an errno other than EPERM",
        WaitStatus::Exited(_, 40) => "mknod of /dev/mem was refused",
        WaitStatus::Exited(_, 50) => "/dev/mem opened",
        WaitStatus::Exited(_, 51) => "/dev/mem failed with an errno other than EPERM",
        _ => "",
    }
}

#[test]
fn cgroups_v1_kill_all_with_freezer_stops_a_forking_child() {
    let Some(Hierarchy::V1 { mounts, .. }) = v1_host() else {
        return;
    };
    // No cgroup2 twin: force the freeze + SIGKILL path rather than cgroup.kill.
    let h = Hierarchy::V1 { mounts, unified: None };
    let guard = Guard::new(&h, &unique("kill"));
    let cg = &guard.cg;
    cg.create().unwrap();
    cg.apply(&pids(200)).unwrap(); // a safety net: zombies count too
    let mut child = spawn(|ctx| {
        // SAFETY: setpgid(0, 0): a process group of our own, so the test can reap the
        // siblings we make by group.
        unsafe { libc::setpgid(0, 0) };
        ctx.signal();
        for _ in 0..20_000 {
            if clone_sibling() == 0 {
                // SAFETY: _exit in the new process.
                unsafe { libc::_exit(0) };
            }
            sleep_ms(1);
        }
        1
    });
    cg.add_process(child.pid).unwrap();
    child.go();
    assert!(child.wait_signal());
    std::thread::sleep(Duration::from_millis(100));
    assert!(!cg.all_procs().unwrap().is_empty());
    let start = Instant::now();
    cg.kill_all().unwrap();
    eprintln!("kill_all took {:?}", start.elapsed());
    assert!(cg.all_procs().unwrap().is_empty());
    assert!(!cg.is_frozen().unwrap(), "kill_all thaws again");
    expect_killed(child.wait());
    // Reap the short-lived siblings by process group.
    let mut reaped = 0;
    while let Ok(st) = waitpid(Pid::from_raw(-child.pid), Some(WaitPidFlag::WNOHANG)) {
        if st == WaitStatus::StillAlive {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        reaped += 1;
    }
    eprintln!("reaped {reaped} siblings");
    assert!(reaped > 0);
    cg.destroy().unwrap();
    assert!(!cg.exists());
}

#[test]
fn cgroups_v1_destroy_keeps_parent_and_siblings() {
    let Some(h) = v1_host() else { return };
    let top = unique("tree");
    let _guard = Guard::new(&h, &top);
    let a = Cgroup::new(&h, &format!("{top}/a")).unwrap();
    let b = Cgroup::new(&h, &format!("{top}/b/deep")).unwrap();
    a.create().unwrap();
    b.create().unwrap();
    a.destroy().unwrap();
    assert!(!a.exists());
    assert!(b.exists());
    assert!(Cgroup::new(&h, &top).unwrap().exists());
    // Destroying a parent takes its descendants with it.
    let bp = Cgroup::new(&h, &format!("{top}/b")).unwrap();
    bp.destroy().unwrap();
    assert!(!b.exists() && !bp.exists());
}

#[test]
fn cgroups_v1_missing_controller_is_reported() {
    let Some(Hierarchy::V1 { mut mounts, unified }) = v1_host() else {
        return;
    };
    mounts.remove("pids");
    let h = Hierarchy::V1 { mounts, unified };
    let guard = Guard::new(&h, &unique("nopids"));
    guard.cg.create().unwrap();
    let e = guard.cg.apply(&pids(10)).unwrap_err();
    assert!(
        matches!(&e, CgroupError::ControllerNotAvailable { controller, .. } if controller == "pids"),
        "{e}"
    );
    assert!(guard.cg.apply(&pids(-1)).is_ok(), "lifting a limit needs no controller");
    let s = guard.cg.stats().unwrap();
    assert_eq!(s.pids, PidsStats::default());
}

// ---------- cgroup v2 (this host's cgroup2 mount), for real ----------

#[test]
fn cgroups_v2_create_procs_freeze_thaw_kill() {
    let Some(h) = v2_host() else { return };
    let top = unique("v2");
    let guard = Guard::new(&h, &top);
    let cg = Cgroup::new(&h, &format!("{top}/leaf")).unwrap();
    cg.create().unwrap();
    assert!(cg.is_v2());
    let dir = cg.dir("anything").unwrap();
    assert!(dir.join("cgroup.procs").exists());

    let shared = Shared::new();
    let counter = shared.counter();
    let mut child = spawn(|_| {
        loop {
            counter.fetch_add(1, Ordering::Relaxed);
            std::hint::spin_loop();
        }
    });
    cg.add_process(child.pid).unwrap();
    child.go();
    assert_eq!(cg.procs().unwrap(), vec![child.pid]);
    let own = read(format!("/proc/{}/cgroup", child.pid));
    assert!(
        own.lines()
            .any(|l| l.starts_with("0::") && l.ends_with(&format!("/{top}/leaf"))),
        "{own}"
    );
    while counter.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }

    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    let a = counter.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a, counter.load(Ordering::Relaxed), "a frozen child must not run");
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());
    std::thread::sleep(Duration::from_millis(100));
    assert!(counter.load(Ordering::Relaxed) > a);

    // Freezing a parent freezes the leaf.
    let parent = Cgroup::new(&h, &top).unwrap();
    parent.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    parent.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());

    assert!(dir.join("cgroup.kill").exists(), "kernel 5.14+ has cgroup.kill");
    let s = cg.stats().unwrap();
    assert!(s.cpu.usage_ns.unwrap() > 0, "cpu.stat is a core file: {:?}", s.cpu);
    cg.kill_all().unwrap();
    expect_killed(child.wait());
    assert!(cg.procs().unwrap().is_empty());
    parent.destroy().unwrap();
    assert!(!cg.exists() && !parent.exists());
    drop(guard);
}

#[test]
fn cgroups_v2_missing_controllers_give_none_and_errors() {
    let Some(h) = v2_host() else { return };
    let guard = Guard::new(&h, &unique("v2ctl"));
    let cg = &guard.cg;
    assert!(matches!(cg.stats(), Err(CgroupError::NotFound { .. })));
    cg.create().unwrap();
    let offered = read(cg.dir("").unwrap().join("cgroup.controllers"));
    eprintln!("cgroup.controllers of a new v2 cgroup here: {offered:?}");
    let s = cg.stats().unwrap();
    if !offered.split_whitespace().any(|c| c == "memory") {
        assert_eq!(s.memory, MemoryStats::default());
        let e = cg.apply(&memory(16 << 20, None, None)).unwrap_err();
        assert!(
            matches!(&e, CgroupError::ControllerNotAvailable { controller, .. } if controller == "memory"),
            "{e}"
        );
        assert!(e.is_controller_not_available());
        assert!(e.to_string().contains("controller memory is not available"), "{e}");
        assert!(matches!(
            cg.oom_kills(),
            Err(CgroupError::ControllerNotAvailable { .. })
        ));
    }
    if !offered.split_whitespace().any(|c| c == "pids") {
        assert_eq!(s.pids, PidsStats::default());
        assert!(cg.apply(&pids(10)).unwrap_err().is_controller_not_available());
    }
    if !offered.split_whitespace().any(|c| c == "cpu") {
        let mut cpu = LinuxCpu::default();
        cpu.set_shares(Some(512));
        let mut r = resources();
        r.set_cpu(Some(cpu));
        assert!(cg.apply(&r).unwrap_err().is_controller_not_available());
        assert_eq!(s.cpu.nr_periods, None);
    }
    assert!(s.cpu.usage_ns.is_some());
    // Nothing restricting: fine everywhere.
    cg.apply(&pids(-1)).unwrap();
    cg.apply(&resources()).unwrap();
}

#[test]
fn cgroups_v2_bpf_device_filter() {
    let Some(h) = v2_host() else { return };
    let guard = Guard::new(&h, &unique("v2dev"));
    let cg = &guard.cg;
    cg.create().unwrap();
    let dir = cg.dir("").unwrap();
    cg.apply(&devices(docker_default_devices())).unwrap();
    assert_eq!(bpf::attached_count(&dir), 1);
    // Applying again replaces the program instead of stacking another.
    cg.apply(&devices(docker_default_devices())).unwrap();
    assert_eq!(bpf::attached_count(&dir), 1);

    let (mut child, _tmp) = device_probe_child();
    cg.add_process(child.pid).unwrap();
    child.go();
    let st = child.wait();
    assert_eq!(
        st,
        WaitStatus::Exited(Pid::from_raw(child.pid), 0),
        "{}",
        probe_meaning(&st)
    );

    // Allow-all detaches the filter: the same probe now opens the block device (exit 30).
    cg.apply(&devices(allow_all_devices())).unwrap();
    assert_eq!(bpf::attached_count(&dir), 0);
    let (mut child, _tmp) = device_probe_child();
    cg.add_process(child.pid).unwrap();
    child.go();
    let st = child.wait();
    assert_eq!(
        st,
        WaitStatus::Exited(Pid::from_raw(child.pid), 30),
        "{}",
        probe_meaning(&st)
    );
    drop(guard);
}

#[test]
fn cgroups_v2_refuses_to_kill_the_caller() {
    let Some(h) = v2_host() else { return };
    let Hierarchy::V2 { root } = &h else { unreachable!() };
    // Where we are now in the cgroup2 hierarchy, to go back afterwards.
    let home = read("/proc/self/cgroup")
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        .unwrap();
    let home = root.join(home.trim_start_matches('/'));
    struct GoHome(PathBuf);
    impl Drop for GoHome {
        fn drop(&mut self) {
            let _ = std::fs::write(self.0.join("cgroup.procs"), std::process::id().to_string());
        }
    }
    let guard = Guard::new(&h, &unique("self"));
    guard.cg.create().unwrap();
    {
        let _home = GoHome(home);
        guard.cg.add_process(std::process::id() as i32).unwrap();
        let e = guard.cg.kill_all().unwrap_err();
        assert!(matches!(e, CgroupError::ContainsCaller { .. }), "{e}");
    }
    assert!(guard.cg.procs().unwrap().is_empty());
}

#[test]
fn cgroups_hybrid_twin_and_cgroup_kill() {
    // On a hybrid host, create() also makes the cgroup2 twin and kill_all uses cgroup.kill.
    let Some(h) = v1_host() else { return };
    let Hierarchy::V1 { unified: Some(_), .. } = &h else {
        eprintln!("skipped: not a hybrid host");
        return;
    };
    let guard = Guard::new(&h, &unique("twin"));
    let cg = &guard.cg;
    cg.create().unwrap();
    let twin = cg.unified_dir().unwrap();
    assert!(twin.is_dir());
    let mut child = spawn(|_| pause_forever());
    cg.add_process(child.pid).unwrap();
    child.go();
    assert_eq!(read(twin.join("cgroup.procs")), child.pid.to_string());
    cg.kill_all().unwrap();
    expect_killed(child.wait());
    cg.destroy().unwrap();
    assert!(!twin.exists() && !cg.exists());
}
