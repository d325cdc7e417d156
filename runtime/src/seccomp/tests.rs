//! Tests that load filters for real: each filter is installed in a forked child, which
//! makes raw syscalls and reports their results to the parent through a pipe.
//!
//! The child only makes async-signal-safe calls (the test harness is multi-threaded):
//! every probe is a plain `Call` prepared before the fork, results go into a
//! fixed array on the stack, and it leaves with `_exit`.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use caps::Capability as C;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Act, LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompFilterFlag,
    LinuxSeccompOperator as Op, LinuxSyscall,
};
use sha2::Digest as _;

use super::profile::KernelVersion;
use super::*;

pub(crate) const DOCKER_DEFAULT_CAPS: [C; 14] = [
    C::CAP_CHOWN,
    C::CAP_DAC_OVERRIDE,
    C::CAP_FSETID,
    C::CAP_FOWNER,
    C::CAP_MKNOD,
    C::CAP_NET_RAW,
    C::CAP_SETGID,
    C::CAP_SETUID,
    C::CAP_SETFCAP,
    C::CAP_SETPCAP,
    C::CAP_NET_BIND_SERVICE,
    C::CAP_SYS_CHROOT,
    C::CAP_KILL,
    C::CAP_AUDIT_WRITE,
];

// ---------------------------------------------------------------------------------------
// The child harness.

/// A probe's syscall: returns the syscall's result, or -errno.
type Call = fn() -> i64;

const MAX_PROBES: usize = 64;
const AF_VSOCK: libc::c_int = 40;
/// Linux 6.8+; the same number on x86_64 and aarch64 (unknown to libseccomp 2.5.4).
const SYS_STATMOUNT: libc::c_long = 457;

/// A syscall's result as the probes report it: the return value, or -errno.
#[allow(clippy::useless_conversion)] // c_long is i32 on 32-bit targets
fn ret(r: libc::c_long) -> i64 {
    if r < 0 {
        -i64::from(Errno::last_raw())
    } else {
        i64::from(r)
    }
}

/// What a child reported, and how it ended.
struct ChildRun {
    /// `None` if the child died before reporting.
    results: Option<Vec<i64>>,
    status: WaitStatus,
}

/// Forks a child that sets no_new_privs, installs `filter` (if any), runs `probes` and
/// writes their results to a pipe.
fn run_in_child(filter: Option<&Filter>, probes: &[Call]) -> ChildRun {
    assert!(probes.len() <= MAX_PROBES);
    let (read_end, write_end): (OwnedFd, OwnedFd) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2");
    // SAFETY: the child only makes async-signal-safe calls and leaves with _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let mut out = [0i64; MAX_PROBES + 1];
            // SAFETY: plain syscalls on memory we own.
            unsafe {
                let no_core = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::setrlimit(libc::RLIMIT_CORE, &no_core);
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    out[0] = -i64::from(Errno::last_raw());
                }
            }
            if out[0] == 0
                && let Some(filter) = filter
                && let Err(e) = filter.install()
            {
                out[0] = -(e as i64);
            }
            if out[0] == 0 {
                for (slot, probe) in out[1..].iter_mut().zip(probes) {
                    *slot = probe();
                }
            }
            // SAFETY: writing our own buffer (well under PIPE_BUF, so in one piece).
            unsafe {
                libc::write(write_end.as_raw_fd(), out.as_ptr().cast(), std::mem::size_of_val(&out));
                libc::_exit(0);
            }
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut bytes = Vec::new();
            let mut file = std::fs::File::from(read_end);
            let size = (MAX_PROBES + 1) * 8;
            // Read until we have a report or EOF (a child forked concurrently by another
            // test may hold a copy of the write end, so don't wait for EOF otherwise).
            let mut buf = [0u8; 1024];
            while bytes.len() < size {
                match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => bytes.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => panic!("reading the child's report: {e}"),
                }
            }
            let status = waitpid(child, None).expect("waitpid");
            let results = (bytes.len() >= size).then(|| {
                let all: Vec<i64> = bytes[..size]
                    .chunks_exact(8)
                    .map(|c| i64::from_ne_bytes(c.try_into().unwrap()))
                    .collect();
                assert_eq!(all[0], 0, "child setup failed: {}", Errno::from_raw(-all[0] as i32));
                all[1..=probes.len()].to_vec()
            });
            ChildRun { results, status }
        }
    }
}

/// Runs the probes under `filter`; panics unless the child reported normally.
fn results_under(filter: Option<&Filter>, probes: &[Call]) -> Vec<i64> {
    let run = run_in_child(filter, probes);
    assert_eq!(
        run.status,
        WaitStatus::Exited(run_pid(&run.status), 0),
        "child did not exit cleanly"
    );
    run.results.expect("child report")
}

fn run_pid(status: &WaitStatus) -> nix::unistd::Pid {
    status.pid().expect("a child pid")
}

#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Success (a return value >= 0).
    Ok,
    /// This exact return value.
    Value(i64),
    /// Failure with this errno.
    Fails(Errno),
    /// Anything but this errno.
    Not(Errno),
}

impl Expect {
    fn check(self, got: i64) -> bool {
        match self {
            Expect::Ok => got >= 0,
            Expect::Value(v) => got == v,
            Expect::Fails(e) => got == -(e as i64),
            Expect::Not(e) => got != -(e as i64),
        }
    }
}

fn show(value: i64) -> String {
    if value < 0 {
        format!("{} ({value})", Errno::from_raw(-value as i32))
    } else {
        format!("{value}")
    }
}

struct Probe {
    name: &'static str,
    call: Call,
    expect: Expect,
    /// Whether the kernel itself may answer EPERM without a filter (a sysctl can turn
    /// the feature off), so the baseline proves nothing for this probe.
    host_may_refuse: bool,
}

const fn probe(name: &'static str, call: Call, expect: Expect) -> Probe {
    Probe {
        name,
        call,
        expect,
        host_may_refuse: false,
    }
}

const fn probe_sysctl(name: &'static str, call: Call, expect: Expect) -> Probe {
    Probe {
        name,
        call,
        expect,
        host_may_refuse: true,
    }
}

/// Runs `probes` without a filter (the baseline) and under `filter`, checks every
/// expectation, and checks that each EPERM expected under the filter comes from the
/// filter: without it the same call must not fail with EPERM.
fn check_probes(filter: &Filter, probes: &[Probe]) {
    let calls: Vec<Call> = probes.iter().map(|p| p.call).collect();
    let baseline = results_under(None, &calls);
    let filtered = results_under(Some(filter), &calls);
    let mut failures = Vec::new();
    for ((p, &base), &got) in probes.iter().zip(&baseline).zip(&filtered) {
        eprintln!("{:<34} filtered: {:<22} unfiltered: {}", p.name, show(got), show(base));
        if !p.expect.check(got) {
            failures.push(format!("{}: expected {:?}, got {}", p.name, p.expect, show(got)));
        }
        if matches!(p.expect, Expect::Fails(Errno::EPERM)) && base == -(Errno::EPERM as i64) && !p.host_may_refuse {
            failures.push(format!("{}: EPERM even without the filter", p.name));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---------------------------------------------------------------------------------------
// Probes: raw syscalls, async-signal-safe.

fn p_getpid() -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_getpid) })
}

/// The `Seccomp:` field of /proc/self/status (0 none, 1 strict, 2 filter).
fn p_seccomp_mode() -> i64 {
    let mut buf = [0u8; 8192];
    let mut len = 0usize;
    // SAFETY: reading into our stack buffer.
    unsafe {
        let fd = libc::open(c"/proc/self/status".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return -i64::from(Errno::last_raw());
        }
        loop {
            let n = libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len);
            if n <= 0 {
                break;
            }
            len += n as usize;
        }
        libc::close(fd);
    }
    let key = b"\nSeccomp:\t";
    let text = &buf[..len];
    match text.windows(key.len()).position(|w| w == key) {
        Some(at) => text.get(at + key.len()).map_or(-1, |b| i64::from(b.wrapping_sub(b'0'))),
        None => -1,
    }
}

/// A raw clone with `flags` (plus SIGCHLD), fork-like (no new stack). The new process
/// leaves at once; the caller reaps it and reports its pid.
fn clone_with(flags: libc::c_long) -> i64 {
    // SAFETY: without CLONE_VM the child runs on a copy of our memory and only _exits.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags | libc::SIGCHLD as libc::c_long, 0, 0, 0, 0) };
    if pid == 0 {
        unsafe { libc::_exit(0) };
    }
    if pid > 0 {
        unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0) };
    }
    ret(pid)
}

fn p_clone_plain() -> i64 {
    clone_with(0)
}
fn p_clone_newns() -> i64 {
    clone_with(libc::CLONE_NEWNS as libc::c_long)
}
fn p_clone_newuser() -> i64 {
    clone_with(libc::CLONE_NEWUSER as libc::c_long)
}
fn p_clone_newpid() -> i64 {
    clone_with(libc::CLONE_NEWPID as libc::c_long)
}
fn p_clone_newnet() -> i64 {
    clone_with(libc::CLONE_NEWNET as libc::c_long)
}
fn p_clone3_null() -> i64 {
    // A NULL, zero-sized clone_args: the kernel says EINVAL; the profile ENOSYS first.
    ret(unsafe { libc::syscall(libc::SYS_clone3, 0usize, 0usize) })
}
fn p_unshare_uts() -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUTS) })
}
fn p_mount_null() -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_mount, 0usize, 0usize, 0usize, 0usize, 0usize) })
}
fn p_umount2_missing() -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_umount2, c"/nonexistent-slipway".as_ptr(), 0) })
}
fn p_setns_bad_fd() -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_setns, -1, 0) })
}
fn socket_of(family: libc::c_int, kind: libc::c_int) -> i64 {
    let fd = unsafe { libc::socket(family, kind | libc::SOCK_CLOEXEC, 0) };
    let r = ret(fd as libc::c_long);
    if fd >= 0 {
        unsafe { libc::close(fd) };
    }
    r
}
fn p_socket_alg() -> i64 {
    socket_of(libc::AF_ALG, libc::SOCK_SEQPACKET)
}
fn p_socket_vsock() -> i64 {
    socket_of(AF_VSOCK, libc::SOCK_STREAM)
}
fn p_socket_inet() -> i64 {
    socket_of(libc::AF_INET, libc::SOCK_DGRAM)
}
fn p_socket_unix() -> i64 {
    socket_of(libc::AF_UNIX, libc::SOCK_STREAM)
}
fn p_socket_netlink() -> i64 {
    socket_of(libc::AF_NETLINK, libc::SOCK_RAW)
}
fn p_personality_query() -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffff_u64) })
}
fn p_personality_linux() -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_personality, 0u64) })
}
fn p_personality_read_implies_exec() -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_personality, 0x0040_0000_u64) })
}
fn p_keyctl() -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_keyctl, 9999, 0, 0, 0, 0) })
}
fn p_add_key() -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_add_key, 0usize, 0usize, 0usize, 0usize, 0) })
}
fn p_io_uring_setup() -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_io_uring_setup, 0, 0usize) })
}
fn p_kexec_load() -> i64 {
    // An unknown flag bit: the kernel answers EINVAL, loads nothing.
    ret(unsafe { libc::syscall(libc::SYS_kexec_load, 0usize, 0usize, 0usize, 0x100usize) })
}
fn p_init_module() -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_init_module, 0usize, 0usize, c"".as_ptr()) })
}
fn p_finit_module() -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_finit_module, -1, c"".as_ptr(), 0) })
}
fn p_bpf() -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_bpf, 9999, 0usize, 0) })
}
fn p_ptrace_invalid() -> i64 {
    // An unknown request on pid 0: the kernel answers ESRCH.
    ret(unsafe { libc::syscall(libc::SYS_ptrace, 0x7fff, 0, 0usize, 0usize) })
}
fn p_reboot_bad_magic() -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_reboot, 0, 0, 0, 0usize) })
}
fn p_chroot_empty() -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_chroot, c"".as_ptr()) })
}
fn p_clock_settime_bad() -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_clock_settime, 9999, 0usize) })
}
fn p_open_by_handle_at() -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_open_by_handle_at, -1, 0usize, 0) })
}
fn p_syslog_size() -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_syslog, 10, 0usize, 0) })
}
fn p_statmount() -> i64 {
    ret(unsafe { libc::syscall(SYS_STATMOUNT, 0usize, 0usize, 0usize, 0) })
}
fn p_uname() -> i64 {
    let mut uts = std::mem::MaybeUninit::<libc::utsname>::uninit();
    ret(unsafe { libc::syscall(libc::SYS_uname, uts.as_mut_ptr()) })
}

fn ptrace_expectation() -> Expect {
    // The profile allows ptrace from Linux 4.8 on; the kernel then says ESRCH.
    if KernelVersion::running().is_some_and(|k| k >= KernelVersion::new(4, 8)) {
        Expect::Fails(Errno::ESRCH)
    } else {
        Expect::Fails(Errno::EPERM)
    }
}

fn docker_filter(caps: &[C]) -> Filter {
    compile(&docker_default(caps), None).expect("compile Docker's profile")
}

// ---------------------------------------------------------------------------------------
// Docker's profile, loaded for real.

#[test]
fn docker_profile_with_default_caps_behaves_like_docker() {
    use Expect::{Fails, Not, Ok, Value};
    let eperm = Fails(Errno::EPERM);
    let probes = [
        probe("getpid", p_getpid, Ok),
        probe("/proc/self/status Seccomp", p_seccomp_mode, Value(2)),
        probe("uname", p_uname, Value(0)),
        probe("clone3(NULL, 0)", p_clone3_null, Fails(Errno::ENOSYS)),
        probe("clone(SIGCHLD)", p_clone_plain, Ok),
        probe("clone(CLONE_NEWNS)", p_clone_newns, eperm),
        probe("clone(CLONE_NEWUSER)", p_clone_newuser, eperm),
        probe("clone(CLONE_NEWPID)", p_clone_newpid, eperm),
        probe("clone(CLONE_NEWNET)", p_clone_newnet, eperm),
        probe("unshare(CLONE_NEWUTS)", p_unshare_uts, eperm),
        probe("mount(NULL...)", p_mount_null, eperm),
        probe("umount2(missing)", p_umount2_missing, eperm),
        probe("setns(-1, 0)", p_setns_bad_fd, eperm),
        probe("socket(AF_ALG)", p_socket_alg, eperm),
        probe("socket(AF_VSOCK)", p_socket_vsock, eperm),
        probe("socket(AF_INET)", p_socket_inet, Ok),
        probe("socket(AF_UNIX)", p_socket_unix, Ok),
        probe("socket(AF_NETLINK)", p_socket_netlink, Ok),
        probe("personality(0xffffffff)", p_personality_query, Ok),
        probe("personality(PER_LINUX)", p_personality_linux, Ok),
        probe("personality(READ_IMPLIES_EXEC)", p_personality_read_implies_exec, eperm),
        probe("keyctl", p_keyctl, eperm),
        probe("add_key", p_add_key, eperm),
        probe_sysctl("io_uring_setup", p_io_uring_setup, eperm),
        probe_sysctl("kexec_load", p_kexec_load, eperm),
        probe_sysctl("init_module", p_init_module, eperm),
        probe_sysctl("finit_module", p_finit_module, eperm),
        probe_sysctl("bpf", p_bpf, eperm),
        probe("ptrace", p_ptrace_invalid, ptrace_expectation()),
        probe("reboot (no CAP_SYS_BOOT)", p_reboot_bad_magic, eperm),
        probe("chroot (CAP_SYS_CHROOT)", p_chroot_empty, Fails(Errno::ENOENT)),
        probe("clock_settime (no CAP_SYS_TIME)", p_clock_settime_bad, eperm),
        probe("open_by_handle_at", p_open_by_handle_at, eperm),
        probe_sysctl("syslog", p_syslog_size, eperm),
        // Newer than libseccomp 2.5.4: ENOSYS (the stub), or allowed by a newer one.
        probe("statmount", p_statmount, Not(Errno::EPERM)),
    ];
    check_probes(&docker_filter(&DOCKER_DEFAULT_CAPS), &probes);
}

#[test]
fn docker_profile_with_sys_admin_allows_namespaces() {
    use Expect::{Fails, Not, Ok, Value};
    let mut caps = DOCKER_DEFAULT_CAPS.to_vec();
    caps.push(C::CAP_SYS_ADMIN);
    let probes = [
        probe("/proc/self/status Seccomp", p_seccomp_mode, Value(2)),
        // The kernel's own answer to a NULL clone_args, not the profile's ENOSYS.
        probe("clone3(NULL, 0)", p_clone3_null, Fails(Errno::EINVAL)),
        probe("unshare(CLONE_NEWUTS)", p_unshare_uts, Value(0)),
        probe("clone(CLONE_NEWNS)", p_clone_newns, Ok),
        probe("clone(CLONE_NEWUSER)", p_clone_newuser, Ok),
        probe("mount(NULL...)", p_mount_null, Not(Errno::EPERM)),
        probe("setns(-1, 0)", p_setns_bad_fd, Fails(Errno::EBADF)),
        probe("bpf", p_bpf, Not(Errno::EPERM)),
        // Still refused: not part of CAP_SYS_ADMIN's group.
        probe("socket(AF_ALG)", p_socket_alg, Fails(Errno::EPERM)),
        probe("keyctl", p_keyctl, Fails(Errno::EPERM)),
        probe_sysctl("kexec_load", p_kexec_load, Fails(Errno::EPERM)),
    ];
    check_probes(&docker_filter(&caps), &probes);
}

#[test]
fn syscalls_newer_than_the_spec_get_enosys() {
    // Allow write (the report), exit_group (_exit) and getpid; everything else EPERM,
    // except syscalls numbered above the highest of these three: ENOSYS.
    let allowed = ["write", "exit_group", "getpid"];
    let spec = spec_with(Act::ScmpActErrno, vec![rule(&allowed, Act::ScmpActAllow, None, vec![])]);
    let highest = allowed
        .iter()
        .map(|n| i32::from(libseccomp::ScmpSyscall::from_name(n).unwrap()))
        .max()
        .unwrap();
    let probes: [(&str, Call); 5] = [
        ("gettid", || ret(unsafe { libc::syscall(libc::SYS_gettid) })),
        ("getppid", || ret(unsafe { libc::syscall(libc::SYS_getppid) })),
        ("uname", p_uname),
        ("getrandom", || {
            let mut b = [0u8; 4];
            ret(unsafe { libc::syscall(libc::SYS_getrandom, b.as_mut_ptr(), 4usize, 0) })
        }),
        ("statx", || {
            ret(unsafe { libc::syscall(libc::SYS_statx, -1, 0usize, 0, 0, 0usize) })
        }),
    ];
    let filter = compile(&spec, None).unwrap();
    let calls: Vec<Call> = probes.iter().map(|p| p.1).collect();
    let got = results_under(Some(&filter), &calls);
    let (mut saw_enosys, mut saw_eperm) = (false, false);
    for ((name, _), got) in probes.iter().zip(got) {
        let nr = i32::from(libseccomp::ScmpSyscall::from_name(name).unwrap());
        let want = if nr > highest { Errno::ENOSYS } else { Errno::EPERM };
        saw_enosys |= want == Errno::ENOSYS;
        saw_eperm |= want == Errno::EPERM;
        assert_eq!(got, -(want as i64), "{name} (nr {nr}, highest {highest})");
    }
    assert!(saw_enosys && saw_eperm);
}

/// A syscall through the i386 ABI (`int 0x80`) from this 64-bit process: the filter sees
/// AUDIT_ARCH_I386 and the i386 syscall numbers.
#[cfg(target_arch = "x86_64")]
fn int80(nr: u32, a: u32, b: u32, c: u32) -> i64 {
    let mut eax = nr;
    // SAFETY: a plain syscall; rbx is reserved by LLVM, so the first argument is swapped
    // in and out around the trap. The kernel clobbers r8-r11 on this path.
    unsafe {
        std::arch::asm!(
            "xchg rbx, {a}",
            "int 0x80",
            "xchg rbx, {a}",
            a = inout(reg) u64::from(a) => _,
            inout("eax") eax,
            in("ecx") b,
            in("edx") c,
            lateout("r8") _,
            lateout("r9") _,
            lateout("r10") _,
            lateout("r11") _,
        );
    }
    i64::from(eax as i32)
}

/// i386 socketcall(SYS_SOCKET, [family, SOCK_STREAM, 0]); the argument block must sit
/// below 4 GiB for the 32-bit ABI.
#[cfg(target_arch = "x86_64")]
fn i386_socketcall_socket(family: u32) -> i64 {
    // SAFETY: an anonymous private mapping we own, unmapped before returning.
    unsafe {
        let page = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        );
        if page == libc::MAP_FAILED {
            return -i64::from(Errno::last_raw());
        }
        let args = page.cast::<u32>();
        *args = family;
        *args.add(1) = libc::SOCK_STREAM as u32;
        *args.add(2) = 0;
        let fd = int80(102, 1, page as usize as u32, 0);
        if fd >= 0 {
            libc::close(fd as i32);
        }
        libc::munmap(page, 4096);
        fd
    }
}

#[cfg(target_arch = "x86_64")]
const X32: libc::c_long = 0x4000_0000;

#[cfg(target_arch = "x86_64")]
#[test]
fn docker_profile_covers_i386_and_x32_processes() {
    use Expect::{Fails, Not, Ok};
    // i386: getpid 20, unshare 310, socket 359, personality 136.
    let probes = [
        probe("i386 getpid", || int80(20, 0, 0, 0), Ok),
        probe(
            "i386 unshare(CLONE_NEWUTS)",
            || int80(310, libc::CLONE_NEWUTS as u32, 0, 0),
            Fails(Errno::EPERM),
        ),
        probe(
            "i386 socket(AF_VSOCK)",
            || int80(359, AF_VSOCK as u32, libc::SOCK_STREAM as u32, 0),
            Fails(Errno::EPERM),
        ),
        probe(
            "i386 socket(AF_UNIX)",
            || int80(359, libc::AF_UNIX as u32, libc::SOCK_STREAM as u32, 0),
            Ok,
        ),
        probe(
            "i386 personality(READ_IMPLIES_EXEC)",
            || int80(136, 0x0040_0000, 0, 0),
            Fails(Errno::EPERM),
        ),
        // socketcall cannot be filtered on its arguments (they are in memory), and Docker's
        // profile allows it: a 32-bit process reaches AF_VSOCK this way, as under Docker.
        probe(
            "i386 socketcall(SOCKET, AF_VSOCK)",
            || i386_socketcall_socket(AF_VSOCK as u32),
            Ok,
        ),
        // x32 (this kernel may lack the x32 ABI: then allowed calls say ENOSYS).
        probe(
            "x32 getpid",
            || ret(unsafe { libc::syscall(X32 | 39) }),
            Not(Errno::EPERM),
        ),
        probe(
            "x32 unshare",
            || ret(unsafe { libc::syscall(X32 | 272, libc::CLONE_NEWUTS) }),
            Fails(Errno::EPERM),
        ),
    ];
    check_probes(&docker_filter(&DOCKER_DEFAULT_CAPS), &probes);
}

// ---------------------------------------------------------------------------------------
// Custom specs.

fn spec_with(default: Act, syscalls: Vec<LinuxSyscall>) -> LinuxSeccomp {
    let mut spec = LinuxSeccomp::default();
    spec.set_default_action(default);
    spec.set_syscalls(Some(syscalls));
    spec
}

fn rule(names: &[&str], action: Act, errno: Option<u32>, args: Vec<LinuxSeccompArg>) -> LinuxSyscall {
    let mut r = LinuxSyscall::default();
    r.set_names(names.iter().map(|n| (*n).to_owned()).collect());
    r.set_action(action);
    r.set_errno_ret(errno);
    if !args.is_empty() {
        r.set_args(Some(args));
    }
    r
}

fn arg(index: usize, op: Op, value: u64, value_two: Option<u64>) -> LinuxSeccompArg {
    let a = LinuxSeccompArgBuilder::default().index(index).op(op).value(value);
    match value_two {
        Some(v) => a.value_two(v),
        None => a,
    }
    .build()
    .unwrap()
}

/// getpid(a0, a1): the kernel ignores the arguments, the filter sees them.
fn getpid_args(a0: u64, a1: u64) -> i64 {
    ret(unsafe { libc::syscall(libc::SYS_getpid, a0, a1) })
}

#[test]
fn every_operator_compares_as_the_oci_spec_says() {
    const E: i64 = -(Errno::EDOM as i64);
    // getpid(x) for x = 5, 10, 15, 0x13, 0x23: which calls the rule refuses with EDOM.
    let calls: [Call; 5] = [
        || getpid_args(5, 0),
        || getpid_args(10, 0),
        || getpid_args(15, 0),
        || getpid_args(0x13, 0),
        || getpid_args(0x23, 0),
    ];
    let cases = [
        (Op::ScmpCmpNe, 10, None, [true, false, true, true, true]),
        (Op::ScmpCmpLt, 10, None, [true, false, false, false, false]),
        (Op::ScmpCmpLe, 10, None, [true, true, false, false, false]),
        (Op::ScmpCmpEq, 10, None, [false, true, false, false, false]),
        (Op::ScmpCmpGe, 10, None, [false, true, true, true, true]),
        (Op::ScmpCmpGt, 10, None, [false, false, true, true, true]),
        // (x & 0xf0) == 0x10
        (
            Op::ScmpCmpMaskedEq,
            0xf0,
            Some(0x10),
            [false, false, false, true, false],
        ),
    ];
    for (op, value, value_two, refused) in cases {
        let spec = spec_with(
            Act::ScmpActAllow,
            vec![rule(
                &["getpid"],
                Act::ScmpActErrno,
                Some(Errno::EDOM as u32),
                vec![arg(0, op, value, value_two)],
            )],
        );
        let got = results_under(Some(&compile(&spec, None).unwrap()), &calls);
        let want: Vec<bool> = refused.to_vec();
        let seen: Vec<bool> = got.iter().map(|&r| r == E).collect();
        assert_eq!(seen, want, "{op:?} {value:#x} {value_two:?}: {got:?}");
        assert!(got.iter().all(|&r| r == E || r > 0));
    }
}

#[test]
fn comparisons_on_one_argument_are_ored_on_different_ones_anded() {
    const E: i64 = -(Errno::EDOM as i64);
    let calls: [Call; 4] = [
        || getpid_args(1, 0),
        || getpid_args(2, 0),
        || getpid_args(1, 2),
        || getpid_args(3, 2),
    ];
    let errno = Some(Errno::EDOM as u32);
    let same = spec_with(
        Act::ScmpActAllow,
        vec![rule(
            &["getpid"],
            Act::ScmpActErrno,
            errno,
            vec![arg(0, Op::ScmpCmpEq, 1, None), arg(0, Op::ScmpCmpEq, 2, None)],
        )],
    );
    let got = results_under(Some(&compile(&same, None).unwrap()), &calls);
    assert_eq!(
        got.iter().map(|&r| r == E).collect::<Vec<_>>(),
        [true, true, true, false]
    );

    let different = spec_with(
        Act::ScmpActAllow,
        vec![rule(
            &["getpid"],
            Act::ScmpActErrno,
            errno,
            vec![arg(0, Op::ScmpCmpEq, 1, None), arg(1, Op::ScmpCmpEq, 2, None)],
        )],
    );
    let got = results_under(Some(&compile(&different, None).unwrap()), &calls);
    assert_eq!(
        got.iter().map(|&r| r == E).collect::<Vec<_>>(),
        [false, false, true, false]
    );
}

#[test]
fn errno_log_and_trace_actions() {
    let spec = spec_with(
        Act::ScmpActAllow,
        vec![
            rule(&["getppid"], Act::ScmpActErrno, Some(77), vec![]),
            rule(&["gettid"], Act::ScmpActErrno, None, vec![]),
            rule(&["getpid"], Act::ScmpActLog, None, vec![]),
            // Without a tracer, SCMP_ACT_TRACE makes the syscall fail with ENOSYS.
            rule(&["getuid"], Act::ScmpActTrace, Some(5), vec![]),
        ],
    );
    let calls: [Call; 4] = [
        || ret(unsafe { libc::syscall(libc::SYS_getppid) }),
        || ret(unsafe { libc::syscall(libc::SYS_gettid) }),
        p_getpid,
        || ret(unsafe { libc::syscall(libc::SYS_getuid) }),
    ];
    let got = results_under(Some(&compile(&spec, None).unwrap()), &calls);
    assert_eq!(got[0], -77);
    assert_eq!(got[1], -(Errno::EPERM as i64), "ERRNO without errnoRet is EPERM");
    assert!(got[2] > 0);
    assert_eq!(got[3], -(Errno::ENOSYS as i64));
}

#[test]
fn kill_and_trap_actions_end_the_child_with_sigsys() {
    for action in [
        Act::ScmpActKillProcess,
        Act::ScmpActKill,
        Act::ScmpActKillThread,
        Act::ScmpActTrap,
    ] {
        let spec = spec_with(Act::ScmpActAllow, vec![rule(&["getppid"], action, None, vec![])]);
        let filter = compile(&spec, None).unwrap();
        let run = run_in_child(Some(&filter), &[|| ret(unsafe { libc::syscall(libc::SYS_getppid) })]);
        assert!(run.results.is_none(), "{action}: the child reported");
        match run.status {
            WaitStatus::Signaled(_, Signal::SIGSYS, _) => {}
            other => panic!("{action}: {other:?}"),
        }
    }
}

#[test]
fn flags_are_passed_to_the_kernel() {
    let mut spec = spec_with(
        Act::ScmpActAllow,
        vec![rule(&["getppid"], Act::ScmpActErrno, Some(77), vec![])],
    );
    spec.set_flags(Some(vec![
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync,
        LinuxSeccompFilterFlag::SeccompFilterFlagLog,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow,
    ]));
    let filter = compile(&spec, None).unwrap();
    assert_eq!(filter.flags(), 0b111);
    let got = results_under(Some(&filter), &[|| ret(unsafe { libc::syscall(libc::SYS_getppid) })]);
    assert_eq!(got, [-77]);
}

// ---------------------------------------------------------------------------------------
// Compile-time errors and quirks.

#[test]
fn notify_is_refused_at_compile_time() {
    let spec = spec_with(
        Act::ScmpActErrno,
        vec![rule(&["getpid"], Act::ScmpActNotify, None, vec![])],
    );
    let err = compile(&spec, None).unwrap_err();
    assert!(
        matches!(&err, SeccompError::UnsupportedAction { what, action: Act::ScmpActNotify, .. } if what == "syscalls[0]"),
        "{err:?}"
    );
    assert!(err.to_string().contains("SCMP_ACT_NOTIFY"), "{err}");

    let spec = spec_with(Act::ScmpActNotify, vec![]);
    assert!(matches!(
        compile(&spec, None),
        Err(SeccompError::UnsupportedAction { .. })
    ));
}

#[test]
fn wait_killable_recv_flag_is_refused() {
    let mut spec = spec_with(Act::ScmpActAllow, vec![]);
    spec.set_flags(Some(vec![LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv]));
    assert!(matches!(
        compile(&spec, None),
        Err(SeccompError::UnsupportedFlag(
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv
        ))
    ));
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let known = spec_with(
        Act::ScmpActErrno,
        vec![rule(&["getpid"], Act::ScmpActAllow, None, vec![])],
    );
    let unknown = spec_with(
        Act::ScmpActErrno,
        vec![rule(&["getpid", "no_such_syscall_42"], Act::ScmpActAllow, None, vec![])],
    );
    let a = compile(&known, None).unwrap();
    let b = compile(&unknown, None).unwrap();
    assert_eq!(a.len(), b.len());
}

#[test]
fn bad_argument_index_and_errno_are_refused() {
    let spec = spec_with(
        Act::ScmpActErrno,
        vec![rule(
            &["getpid"],
            Act::ScmpActAllow,
            None,
            vec![arg(6, Op::ScmpCmpEq, 1, None)],
        )],
    );
    assert!(matches!(
        compile(&spec, None),
        Err(SeccompError::InvalidArgIndex { rule: 0, index: 6 })
    ));
    let spec = spec_with(
        Act::ScmpActAllow,
        vec![rule(&["getpid"], Act::ScmpActErrno, Some(70000), vec![])],
    );
    assert!(matches!(
        compile(&spec, None),
        Err(SeccompError::InvalidErrno { value: 70000, .. })
    ));
}

#[test]
fn a_rule_repeating_the_default_action_is_dropped() {
    let spec = spec_with(
        Act::ScmpActErrno,
        vec![
            rule(&["getpid"], Act::ScmpActErrno, None, vec![]),
            rule(&["getppid"], Act::ScmpActErrno, Some(1), vec![]),
            rule(&["gettid"], Act::ScmpActErrno, Some(2), vec![]),
        ],
    );
    compile(&spec, None).unwrap();
}

#[test]
fn unsupported_architectures_are_refused() {
    let version = libseccomp::ScmpVersion::current().unwrap();
    let mut spec = spec_with(Act::ScmpActAllow, vec![]);
    spec.set_architectures(Some(vec![Arch::ScmpArchLoongarch64]));
    let result = compile(&spec, None);
    if (version.major, version.minor) < (2, 6) {
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                SeccompError::BadArch {
                    arch: Arch::ScmpArchLoongarch64,
                    ..
                }
            ),
            "{err:?}"
        );
        eprintln!("{err}");
    } else {
        result.unwrap();
    }
}

#[test]
fn compiling_is_deterministic_and_fits_the_kernel() {
    let spec = docker_default(&DOCKER_DEFAULT_CAPS);
    let (a, _) = compile_with(&spec, None, false).unwrap();
    let (b, origin) = compile_with(&spec, None, false).unwrap();
    assert_eq!(origin, Origin::Compiled);
    assert_eq!(
        compile::instruction_bytes(&a.program),
        compile::instruction_bytes(&b.program)
    );
    assert!(a.len() > 100 && a.len() < compile::MAX_INSTRUCTIONS, "{}", a.len());
    assert_eq!(a.flags(), 0);
    assert!(!a.is_empty());
}

// ---------------------------------------------------------------------------------------
// Caches.

#[test]
fn filters_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<Filter>();
}

#[test]
fn memory_cache_returns_the_same_program() {
    let spec = spec_with(
        Act::ScmpActErrno,
        vec![rule(&["getpid", "read"], Act::ScmpActAllow, None, vec![])],
    );
    let a = compile(&spec, None).unwrap();
    let b = compile(&spec, None).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a.program, &b.program));
    let (_, origin) = compile_with(&spec, None, true).unwrap();
    assert_eq!(origin, Origin::Memory);
}

#[test]
fn disk_cache_is_read_back_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("seccomp"); // created on demand
    let spec = docker_default(&DOCKER_DEFAULT_CAPS);
    let path = cache::file_path(&cache_dir, &cache::key(&spec).unwrap());
    let expected_name = format!(
        "{}.bpf",
        hex::encode(sha2::Sha256::digest(serde_json::to_vec(&spec).unwrap()))
    );
    assert_eq!(path.file_name().unwrap().to_str().unwrap(), expected_name);

    let (first, origin) = compile_with(&spec, Some(&cache_dir), false).unwrap();
    assert_eq!(origin, Origin::Compiled);
    assert!(path.is_file());
    let (second, origin) = compile_with(&spec, Some(&cache_dir), false).unwrap();
    assert_eq!(origin, Origin::Disk);
    assert_eq!(
        compile::instruction_bytes(&first.program),
        compile::instruction_bytes(&second.program)
    );
    assert_eq!(first.flags(), second.flags());

    let good = std::fs::read(&path).unwrap();
    let mut flipped = good.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x40;
    let corruptions: [(&str, Vec<u8>); 5] = [
        ("flipped bit", flipped),
        ("truncated", good[..good.len() - 8].to_vec()),
        ("empty", Vec::new()),
        ("garbage", b"not a filter at all".to_vec()),
        ("other revision", {
            let mut v = good.clone();
            v[8] ^= 0xff;
            v
        }),
    ];
    for (what, bytes) in corruptions {
        std::fs::write(&path, &bytes).unwrap();
        let (filter, origin) = compile_with(&spec, Some(&cache_dir), false).unwrap();
        assert_eq!(origin, Origin::Compiled, "{what}");
        assert_eq!(filter.len(), first.len(), "{what}");
        assert_eq!(std::fs::read(&path).unwrap(), good, "{what}: file rewritten");
        let (_, origin) = compile_with(&spec, Some(&cache_dir), false).unwrap();
        assert_eq!(origin, Origin::Disk, "{what}");
    }

    // Only the cache file: no temporary file left behind.
    let names: Vec<_> = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from(expected_name)]);

    // And a program read from disk loads and filters.
    let got = results_under(Some(&second), &[p_clone3_null, p_socket_alg]);
    assert_eq!(got, [-(Errno::ENOSYS as i64), -(Errno::EPERM as i64)]);
}

#[test]
fn unwritable_cache_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let spec = spec_with(
        Act::ScmpActAllow,
        vec![rule(&["getppid"], Act::ScmpActErrno, Some(9), vec![])],
    );
    let err = compile_with(&spec, Some(&not_a_dir), false).unwrap_err();
    assert!(matches!(err, SeccompError::Cache { .. }), "{err:?}");
}

/// Prints the numbers the brief asks for (run with `--nocapture` to see them).
#[test]
fn timings_of_compile_and_cache() {
    let dir = tempfile::tempdir().unwrap();
    let spec = docker_default(&DOCKER_DEFAULT_CAPS);
    compile_with(&spec, None, false).unwrap(); // warm up libseccomp

    let runs = 20u32;
    let start = Instant::now();
    for _ in 0..runs {
        compile_with(&spec, None, false).unwrap();
    }
    let compile_time = start.elapsed() / runs;

    let (filter, _) = compile_with(&spec, Some(dir.path()), false).unwrap();
    let start = Instant::now();
    for _ in 0..runs {
        let (_, origin) = compile_with(&spec, Some(dir.path()), false).unwrap();
        assert_eq!(origin, Origin::Disk);
    }
    let disk_time = start.elapsed() / runs;

    let start = Instant::now();
    for _ in 0..runs {
        compile(&spec, None).unwrap();
    }
    let memory_time = start.elapsed() / runs;

    let start = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(docker_default(&DOCKER_DEFAULT_CAPS));
    }
    let resolve_time = start.elapsed() / runs;

    let mut admin = DOCKER_DEFAULT_CAPS.to_vec();
    admin.push(C::CAP_SYS_ADMIN);
    let admin_len = compile(&docker_default(&admin), None).unwrap().len();
    eprintln!(
        "docker_default: {resolve_time:?}; compile: {compile_time:?}; disk cache load: {disk_time:?}; \
         memory cache: {memory_time:?}; instructions: {} (with CAP_SYS_ADMIN: {admin_len}); libseccomp {}",
        filter.len(),
        compile::libseccomp_version()
    );
}
