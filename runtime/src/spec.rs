//! Docker's defaults as an OCI runtime spec: what `slipway runtime spec` writes and what the
//! engine starts from. Values follow moby's `daemon/pkg/oci/defaults.go` and
//! `caps/defaults.go` (read, not copied): where oci-spec's own defaults are weaker (three
//! capabilities, ten masked paths), Docker's win.

use std::collections::HashSet;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};

/// Docker's 14 default capabilities.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Paths Docker hides from containers: files get /dev/null bound over them, directories an
/// empty read-only tmpfs.
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only.
pub const READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's masked paths for this host: the fixed list plus every CPU's thermal_throttle
/// directory, which exists only on some machines.
pub fn masked_paths() -> Vec<String> {
    let mut paths: Vec<String> = MASKED_PATHS.iter().map(|p| p.to_string()).collect();
    if let Ok(entries) = std::fs::read_dir("/sys/devices/system/cpu") {
        let mut cpus: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.strip_prefix("cpu")
                    .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
            })
            .filter(|n| std::path::Path::new(&format!("/sys/devices/system/cpu/{n}/thermal_throttle")).exists())
            .collect();
        cpus.sort();
        paths.extend(
            cpus.into_iter()
                .map(|n| format!("/sys/devices/system/cpu/{n}/thermal_throttle")),
        );
    }
    paths
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
        .expect("a valid mount")
}

/// Docker's default mounts.
pub fn default_mounts() -> Vec<Mount> {
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        ),
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
    ]
}

/// Capabilities as the `caps` crate names them (the seccomp profile is resolved with them).
pub fn to_caps(set: &[Capability]) -> Vec<caps::Capability> {
    set.iter()
        .filter_map(|c| serde_json::to_value(c).ok())
        .filter_map(|v| v.as_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// A complete spec with Docker's defaults, running `args`, with the root at `rootfs`
/// (relative to the bundle).
pub fn docker_default(args: &[&str], terminal: bool) -> Spec {
    let caps: HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .expect("capabilities");
    let process = ProcessBuilder::default()
        .terminal(terminal)
        .user(UserBuilder::default().uid(0u32).gid(0u32).build().expect("user"))
        .args(args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
        .env(vec![DEFAULT_PATH.to_string(), "TERM=xterm".to_string()])
        .cwd("/")
        .capabilities(capabilities)
        // runc's portable value: raising a hard limit needs CAP_SYS_RESOURCE, which a
        // runtime may not have (this project's machines do not).
        .rlimits(vec![
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .hard(1024u64)
                .soft(1024u64)
                .build()
                .expect("rlimit"),
        ])
        .no_new_privileges(false)
        .build()
        .expect("process");
    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ]
    .into_iter()
    .map(|t| LinuxNamespaceBuilder::default().typ(t).build().expect("namespace"))
    .collect::<Vec<_>>();
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(masked_paths())
        .readonly_paths(READONLY_PATHS.iter().map(|p| p.to_string()).collect::<Vec<_>>())
        .resources(
            LinuxResourcesBuilder::default()
                .devices(crate::cgroups::docker_default_devices())
                .build()
                .expect("resources"),
        )
        .seccomp(crate::seccomp::docker_default(&to_caps(&DEFAULT_CAPABILITIES)))
        .build()
        .expect("linux");
    SpecBuilder::default()
        .version("1.1.0")
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(false)
                .build()
                .expect("root"),
        )
        .process(process)
        .hostname("slipway")
        .mounts(default_mounts())
        .linux(linux)
        .build()
        .expect("spec")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_dockers() {
        let spec = docker_default(&["sh"], true);
        let process = spec.process().as_ref().unwrap();
        let caps = process.capabilities().as_ref().unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert_eq!(caps.effective(), caps.permitted());
        assert!(caps.inheritable().as_ref().unwrap().is_empty());
        assert!(caps.ambient().as_ref().unwrap().is_empty());
        let linux = spec.linux().as_ref().unwrap();
        let masked = linux.masked_paths().as_ref().unwrap();
        for p in MASKED_PATHS {
            assert!(masked.iter().any(|m| m == p), "{p}");
        }
        assert_eq!(linux.readonly_paths().as_ref().unwrap().len(), 5);
        assert_eq!(spec.mounts().as_ref().unwrap().len(), 7);
        assert!(linux.seccomp().is_some());
        assert_eq!(to_caps(&DEFAULT_CAPABILITIES).len(), 14);
        // It survives a round trip through config.json.
        let json = serde_json::to_string(&spec).unwrap();
        let back: Spec = serde_json::from_str(&json).unwrap();
        assert_eq!(back.process().as_ref().unwrap().args(), process.args());
    }
}
