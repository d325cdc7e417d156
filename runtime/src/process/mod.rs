//! Starting a container's init process: a fork-like clone into new namespaces, from a
//! single-threaded process (the CLI or the per-container monitor, never the tokio server).
//! The child runs [`init`] until it execs the workload directly.

pub mod caps;
pub mod console;
pub mod exec;
pub mod init;
pub mod sync;
pub mod workload;

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::sys::resource::Resource;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxDevice, LinuxNamespaceType, Mount, Spec};

use crate::error::RuntimeError;
use crate::rootfs::{CgroupFs, Overlay};
use caps::CapSets;
use console::WinSize;
use sync::Channel;

/// Where the container's standard streams come from.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stdio {
    pub stdin: Option<RawFd>,
    pub stdout: Option<RawFd>,
    pub stderr: Option<RawFd>,
}

/// Everything the init needs, worked out before the fork: the child only acts on it.
pub struct InitConfig {
    pub rootfs: PathBuf,
    pub overlay: Option<Overlay>,
    pub bundle: PathBuf,
    pub mounts: Vec<Mount>,
    pub devices: Vec<LinuxDevice>,
    pub propagation: nix::mount::MsFlags,
    pub cgroup_fs: CgroupFs,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub sysctl: HashMap<String, String>,
    pub readonly_root: bool,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// Namespaces created by the clone.
    pub clone_flags: CloneFlags,
    /// Namespaces joined by path (network of another container, say), with their type.
    pub join: Vec<(OwnedFd, CloneFlags)>,
    /// A new cgroup namespace, made after the init has joined its cgroup.
    pub new_cgroupns: bool,
    pub new_netns: bool,
    /// Kill the init if the runtime dies before START (not for `create`, whose caller
    /// exits while the init waits).
    pub die_with_parent: bool,
    pub process: ProcessConfig,
}

/// The process to exec and how: shared by a container's init and by `exec`.
pub struct ProcessConfig {
    pub terminal: Option<Option<WinSize>>,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    /// The directories of $PATH, to find args[0] when it has no slash.
    pub path: Vec<String>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub caps: CapSets,
    pub last_cap: u8,
    pub no_new_privileges: bool,
    pub rlimits: Vec<(Resource, u64, u64)>,
    pub oom_score_adj: Option<i32>,
    pub seccomp: Option<crate::seccomp::Filter>,
    /// For `--init`: a sealed copy of a tiny init (tini) to exec as PID 1 in front of args.
    pub init_exe: Option<OwnedFd>,
}

impl ProcessConfig {
    /// Reads an OCI process.
    pub fn from_process(process: &oci_spec::runtime::Process) -> Result<ProcessConfig, RuntimeError> {
        let env: Vec<String> = process.env().clone().unwrap_or_default();
        let path = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .split(':')
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        let cstr = |s: &str, what: &str| {
            CString::new(s).map_err(|_| RuntimeError::InvalidSpec(format!("{what} holds a NUL byte")))
        };
        let args = process.args().clone().unwrap_or_default();
        if args.is_empty() {
            return Err(RuntimeError::InvalidSpec("process.args is empty".into()));
        }
        let rlimits = process
            .rlimits()
            .iter()
            .flatten()
            .map(|r| rlimit_resource(r.typ()).map(|res| (res, r.soft(), r.hard())))
            .collect::<Result<Vec<_>, _>>()?;
        let user = process.user();
        Ok(ProcessConfig {
            terminal: process.terminal().unwrap_or(false).then(|| {
                process.console_size().as_ref().map(|b| WinSize {
                    rows: b.height() as u16,
                    cols: b.width() as u16,
                })
            }),
            args: args.iter().map(|a| cstr(a, "an argument")).collect::<Result<_, _>>()?,
            env: env
                .iter()
                .map(|e| cstr(e, "an environment variable"))
                .collect::<Result<_, _>>()?,
            path,
            cwd: process.cwd().clone(),
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask(),
            caps: process
                .capabilities()
                .as_ref()
                .map(CapSets::from_spec)
                .unwrap_or_else(CapSets::none),
            last_cap: caps::last_cap(),
            no_new_privileges: process.no_new_privileges().unwrap_or(false),
            rlimits,
            oom_score_adj: process.oom_score_adj(),
            seccomp: None,
            init_exe: None,
        })
    }
}

impl InitConfig {
    /// Reads what the init needs out of an OCI spec. `rootfs` is the host path of the root.
    pub fn from_spec(spec: &Spec, bundle: PathBuf, rootfs: PathBuf) -> Result<InitConfig, RuntimeError> {
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| RuntimeError::InvalidSpec("no process".into()))?;
        let linux = spec.linux().as_ref();
        let mut clone_flags = CloneFlags::empty();
        let mut join = Vec::new();
        let mut new_cgroupns = false;
        let mut new_netns = false;
        for ns in linux.and_then(|l| l.namespaces().as_ref()).into_iter().flatten() {
            let flag = namespace_flag(ns.typ())?;
            match ns.path() {
                Some(path) => {
                    if flag == CloneFlags::CLONE_NEWPID || flag == CloneFlags::CLONE_NEWNS {
                        return Err(RuntimeError::Unsupported(format!(
                            "joining a {:?} namespace by path",
                            ns.typ()
                        )));
                    }
                    let fd = nix::fcntl::open(
                        path,
                        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                        nix::sys::stat::Mode::empty(),
                    )
                    .map_err(RuntimeError::os(format!("opening namespace {}", path.display())))?;
                    join.push((fd, flag));
                }
                None if flag == CloneFlags::CLONE_NEWCGROUP => new_cgroupns = true,
                None => {
                    if flag == CloneFlags::CLONE_NEWNET {
                        new_netns = true;
                    }
                    clone_flags |= flag;
                }
            }
        }
        if !clone_flags.contains(CloneFlags::CLONE_NEWNS) {
            return Err(RuntimeError::InvalidSpec(
                "a container needs its own mount namespace".into(),
            ));
        }
        Ok(InitConfig {
            rootfs,
            overlay: None,
            bundle,
            mounts: spec.mounts().clone().unwrap_or_default(),
            devices: linux.and_then(|l| l.devices().clone()).unwrap_or_default(),
            propagation: match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
                Some("private") | Some("rprivate") => nix::mount::MsFlags::MS_PRIVATE,
                Some("shared") | Some("rshared") => nix::mount::MsFlags::MS_SHARED,
                Some("unbindable") | Some("runbindable") => nix::mount::MsFlags::MS_UNBINDABLE,
                _ => nix::mount::MsFlags::MS_SLAVE,
            },
            cgroup_fs: CgroupFs::detect(),
            masked_paths: linux.and_then(|l| l.masked_paths().clone()).unwrap_or_default(),
            readonly_paths: linux.and_then(|l| l.readonly_paths().clone()).unwrap_or_default(),
            sysctl: linux.and_then(|l| l.sysctl().clone()).unwrap_or_default(),
            readonly_root: spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false),
            hostname: spec.hostname().clone(),
            domainname: spec.domainname().clone(),
            clone_flags,
            join,
            new_cgroupns,
            new_netns,
            die_with_parent: true,
            process: ProcessConfig::from_process(process)?,
        })
    }
}

/// The clone flag of an OCI namespace type; the kinds the runtime does not offer are errors.
pub fn namespace_flag(t: LinuxNamespaceType) -> Result<CloneFlags, RuntimeError> {
    Ok(match t {
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::User => return Err(RuntimeError::Unsupported("user namespaces".into())),
        LinuxNamespaceType::Time => return Err(RuntimeError::Unsupported("time namespaces".into())),
    })
}

fn rlimit_resource(t: oci_spec::runtime::PosixRlimitType) -> Result<Resource, RuntimeError> {
    use oci_spec::runtime::PosixRlimitType as T;
    Ok(match t {
        T::RlimitCpu => Resource::RLIMIT_CPU,
        T::RlimitFsize => Resource::RLIMIT_FSIZE,
        T::RlimitData => Resource::RLIMIT_DATA,
        T::RlimitStack => Resource::RLIMIT_STACK,
        T::RlimitCore => Resource::RLIMIT_CORE,
        T::RlimitRss => Resource::RLIMIT_RSS,
        T::RlimitNproc => Resource::RLIMIT_NPROC,
        T::RlimitNofile => Resource::RLIMIT_NOFILE,
        T::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        T::RlimitAs => Resource::RLIMIT_AS,
        T::RlimitLocks => Resource::RLIMIT_LOCKS,
        T::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        T::RlimitNice => Resource::RLIMIT_NICE,
        T::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        T::RlimitRttime => Resource::RLIMIT_RTTIME,
    })
}

/// Waits until a process being set up reports READY; returns its console's master if it
/// has one.
pub fn await_ready(channel: &Channel) -> Result<Option<OwnedFd>, RuntimeError> {
    let mut console = None;
    loop {
        match channel
            .recv()
            .map_err(RuntimeError::os("waiting for the container process"))?
        {
            sync::Message::Byte(sync::READY) => return Ok(console),
            sync::Message::Console(fd) => console = Some(fd),
            sync::Message::Error(e) => return Err(RuntimeError::Init(e)),
            sync::Message::Closed => return Err(RuntimeError::Init("the process exited during set-up".into())),
            sync::Message::Byte(b) => return Err(RuntimeError::Init(format!("unexpected message {b}"))),
            sync::Message::Pid(_) => return Err(RuntimeError::Init("unexpected PID message".into())),
        }
    }
}

/// Sends START and waits for the exec: end-of-file means the workload runs.
pub fn release(channel: &Channel) -> Result<(), RuntimeError> {
    channel
        .send(sync::START)
        .map_err(RuntimeError::os("starting the workload"))?;
    match channel.recv().map_err(RuntimeError::os("waiting for exec"))? {
        sync::Message::Closed => Ok(()),
        sync::Message::Error(e) => Err(RuntimeError::Init(e)),
        _ => Err(RuntimeError::Init("unexpected message at exec".into())),
    }
}

/// The init, started and stopped before its set-up: the runtime joins it to its cgroup,
/// then sends GO.
pub struct Spawned {
    pub pid: Pid,
    pub channel: Channel,
}

/// Forks the init into its namespaces.
///
/// # Safety
/// The calling process must be single-threaded.
pub unsafe fn spawn(config: &InitConfig, stdio: Stdio) -> Result<Spawned, RuntimeError> {
    let (parent, child) = sync::pair().map_err(|e| RuntimeError::Os {
        what: "creating the sync channel".into(),
        errno: e,
    })?;
    match unsafe { crate::linux::fork_into(config.clone_flags) } {
        Err(e) => Err(RuntimeError::Os {
            what: "cloning the init into its namespaces".into(),
            errno: e,
        }),
        Ok(None) => {
            drop(parent);
            init::run(config, stdio, &child)
        }
        Ok(Some(pid)) => {
            drop(child);
            Ok(Spawned { pid, channel: parent })
        }
    }
}
