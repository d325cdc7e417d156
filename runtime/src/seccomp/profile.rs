//! Docker's default seccomp profile, resolved for one container.
//!
//! Credit: the syscall lists, actions, argument filters, conditions and architecture map
//! in `profile_table.rs` are taken from moby's default seccomp profile
//! (`seccomp/default.json` in github.com/moby/profiles, Copyright The Moby Authors,
//! licensed under the Apache License 2.0), translated into a Rust table. The profile is
//! data about which syscalls a container needs; the code here is Slipway's own.
//!
//! Docker resolves the profile against the container before writing `config.json`:
//! - `archMap` picks the running architecture and its sub-architectures (x86_64 also
//!   covers x86 and x32 processes; aarch64 also covers 32-bit arm);
//! - a rule group is dropped when the running architecture is in `excludes.arches`, when
//!   the container's bounding set holds any capability of `excludes.caps`, or when the
//!   kernel is at least `excludes.minKernel`;
//! - a rule group is kept only when the running architecture is in `includes.arches` (if
//!   given), when the container holds *every* capability of `includes.caps`, and when the
//!   kernel is at least `includes.minKernel` (compared on `major.minor` only).

use std::sync::OnceLock;

use caps::Capability;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompOperator, LinuxSyscall,
};

use super::profile_table::{ARCH_MAP, RULES};

/// A kernel version as Docker compares it: `major.minor`, the rest ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KernelVersion {
    pub(crate) major: u32,
    pub(crate) minor: u32,
}

impl KernelVersion {
    pub(crate) const fn new(major: u32, minor: u32) -> Self {
        KernelVersion { major, minor }
    }

    /// Parses a kernel release such as `6.18.44-fc-v595` or `3.12-1-amd64`.
    pub(crate) fn parse(release: &str) -> Option<Self> {
        let (major, rest) = release.split_once('.')?;
        let minor_digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .map_or(rest, |end| &rest[..end]);
        Some(KernelVersion::new(
            major.trim().parse().ok()?,
            minor_digits.parse().ok()?,
        ))
    }

    /// The running kernel's version (from uname), read once per process.
    pub(crate) fn running() -> Option<Self> {
        static RUNNING: OnceLock<Option<KernelVersion>> = OnceLock::new();
        *RUNNING.get_or_init(|| {
            let release = uname_release()?;
            let parsed = KernelVersion::parse(&release);
            if parsed.is_none() {
                tracing::warn!(%release, "cannot parse the kernel release; seccomp rules with a minimum kernel are left out");
            }
            parsed
        })
    }
}

fn uname_release() -> Option<String> {
    let mut uts = std::mem::MaybeUninit::<libc::utsname>::zeroed();
    // SAFETY: uname fills the struct we own; on failure we don't read it.
    if unsafe { libc::uname(uts.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: uname succeeded, so the struct is initialised and `release` is NUL-terminated.
    let uts = unsafe { uts.assume_init() };
    let release = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) };
    Some(release.to_string_lossy().into_owned())
}

/// What a matching rule group does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RuleAction {
    Allow,
    Errno(u32),
}

/// One argument comparison of a rule group (OCI semantics: for `MASKED_EQ`, `value` is
/// the mask and `value_two` the expected result; 0 means "absent").
#[derive(Clone, Copy, Debug)]
pub(crate) struct ArgCmp {
    pub(crate) index: usize,
    pub(crate) value: u64,
    pub(crate) value_two: u64,
    pub(crate) op: LinuxSeccompOperator,
}

/// An `includes` or `excludes` condition. Architectures use Docker's names
/// (`amd64`, `x86`, `x32`, `arm`, `arm64`, `s390x`, ...).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cond {
    pub(crate) caps: &'static [Capability],
    pub(crate) arches: &'static [&'static str],
    pub(crate) min_kernel: Option<KernelVersion>,
}

/// The empty condition.
pub(crate) const ANY: Cond = Cond {
    caps: &[],
    arches: &[],
    min_kernel: None,
};

/// One entry of the profile's `syscalls` list.
#[derive(Debug)]
pub(crate) struct RuleGroup {
    pub(crate) names: &'static [&'static str],
    pub(crate) action: RuleAction,
    pub(crate) args: &'static [ArgCmp],
    pub(crate) includes: Cond,
    pub(crate) excludes: Cond,
}

/// One entry of the profile's `archMap`.
#[derive(Debug)]
pub(crate) struct ArchMapEntry {
    pub(crate) arch: Arch,
    pub(crate) sub_arches: &'static [Arch],
}

/// The running architecture, named as Docker's profile names it.
pub(crate) fn running_arch_name() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "amd64"
    } else if cfg!(target_arch = "x86") {
        "x86"
    } else if cfg!(target_arch = "aarch64") {
        "arm64"
    } else if cfg!(target_arch = "arm") {
        "arm"
    } else if cfg!(target_arch = "riscv64") {
        "riscv64"
    } else if cfg!(target_arch = "s390x") {
        "s390x"
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        "ppc64le"
    } else if cfg!(target_arch = "powerpc64") {
        "ppc64"
    } else if cfg!(target_arch = "powerpc") {
        "ppc"
    } else if cfg!(all(target_arch = "mips64", target_endian = "little")) {
        "mipsel64"
    } else if cfg!(target_arch = "mips64") {
        "mips64"
    } else if cfg!(all(target_arch = "mips", target_endian = "little")) {
        "mipsel"
    } else if cfg!(target_arch = "loongarch64") {
        "loongarch64"
    } else {
        "unknown"
    }
}

/// Docker's architecture name → the seccomp architecture of a native filter.
fn seccomp_arch_for(arch_name: &str) -> Option<Arch> {
    Some(match arch_name {
        "amd64" => Arch::ScmpArchX86_64,
        "x86" => Arch::ScmpArchX86,
        "arm64" => Arch::ScmpArchAarch64,
        "arm" => Arch::ScmpArchArm,
        "riscv64" => Arch::ScmpArchRiscv64,
        "s390x" => Arch::ScmpArchS390x,
        "s390" => Arch::ScmpArchS390,
        "ppc64le" => Arch::ScmpArchPpc64le,
        "ppc64" => Arch::ScmpArchPpc64,
        "ppc" => Arch::ScmpArchPpc,
        "mips64" => Arch::ScmpArchMips64,
        "mipsel64" => Arch::ScmpArchMipsel64,
        "mipsel" => Arch::ScmpArchMipsel,
        "loongarch64" => Arch::ScmpArchLoongarch64,
        _ => return None,
    })
}

fn kernel_at_least(kernel: Option<KernelVersion>, min: KernelVersion) -> Option<bool> {
    kernel.map(|k| k >= min)
}

impl RuleGroup {
    /// Whether Docker keeps this group for a container with `caps` on `arch` and `kernel`.
    pub(crate) fn applies(&self, caps: &[Capability], arch: &str, kernel: Option<KernelVersion>) -> bool {
        let ex = &self.excludes;
        if ex.arches.contains(&arch) || ex.caps.iter().any(|c| caps.contains(c)) {
            return false;
        }
        // An unknown kernel version never satisfies a kernel condition.
        if let Some(min) = ex.min_kernel
            && kernel_at_least(kernel, min) == Some(true)
        {
            return false;
        }
        let inc = &self.includes;
        if !inc.arches.is_empty() && !inc.arches.contains(&arch) {
            return false;
        }
        if !inc.caps.iter().all(|c| caps.contains(c)) {
            return false;
        }
        if let Some(min) = inc.min_kernel
            && kernel_at_least(kernel, min) != Some(true)
        {
            return false;
        }
        true
    }

    fn to_oci(&self) -> LinuxSyscall {
        let mut rule = LinuxSyscall::default();
        rule.set_names(self.names.iter().map(|n| (*n).to_owned()).collect());
        match self.action {
            RuleAction::Allow => {
                rule.set_action(LinuxSeccompAction::ScmpActAllow);
            }
            RuleAction::Errno(errno) => {
                rule.set_action(LinuxSeccompAction::ScmpActErrno);
                rule.set_errno_ret(Some(errno));
            }
        }
        if !self.args.is_empty() {
            let args = self
                .args
                .iter()
                .map(|a| {
                    let arg = LinuxSeccompArgBuilder::default().index(a.index).value(a.value).op(a.op);
                    let arg = if a.value_two != 0 {
                        arg.value_two(a.value_two)
                    } else {
                        arg
                    };
                    arg.build().expect("every field of the argument is set")
                })
                .collect();
            rule.set_args(Some(args));
        }
        rule
    }
}

/// Resolves Docker's default profile for `caps` on the architecture Docker calls `arch`
/// and the given kernel version (see the module documentation for the rules).
pub(crate) fn resolve(caps: &[Capability], arch: &str, kernel: Option<KernelVersion>) -> LinuxSeccomp {
    let mut seccomp = LinuxSeccomp::default();
    seccomp.set_default_action(LinuxSeccompAction::ScmpActErrno);
    seccomp.set_default_errno_ret(Some(libc::EPERM as u32));

    let architectures: Vec<Arch> = seccomp_arch_for(arch)
        .and_then(|native| ARCH_MAP.iter().find(|e| e.arch == native))
        .map(|e| std::iter::once(e.arch).chain(e.sub_arches.iter().copied()).collect())
        .unwrap_or_default();
    if !architectures.is_empty() {
        seccomp.set_architectures(Some(architectures));
    }

    let syscalls = RULES
        .iter()
        .filter(|group| group.applies(caps, arch, kernel))
        .map(RuleGroup::to_oci)
        .collect();
    seccomp.set_syscalls(Some(syscalls));
    seccomp
}

/// Every rule group of the profile (for tests and tools).
#[cfg(test)]
pub(crate) fn rule_groups() -> &'static [RuleGroup] {
    RULES
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::tests::DOCKER_DEFAULT_CAPS;
    use caps::Capability as C;

    fn rules_naming<'a>(s: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        s.syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|r| r.names().iter().any(|n| n == name))
            .collect()
    }

    #[test]
    fn kernel_release_parsing_matches_docker() {
        assert_eq!(KernelVersion::parse("6.18.44-fc-v595"), Some(KernelVersion::new(6, 18)));
        assert_eq!(KernelVersion::parse("3.12-1-amd64"), Some(KernelVersion::new(3, 12)));
        assert_eq!(KernelVersion::parse("4.8"), Some(KernelVersion::new(4, 8)));
        assert_eq!(KernelVersion::parse("garbage"), None);
        assert!(KernelVersion::new(4, 10) > KernelVersion::new(4, 8));
        assert!(KernelVersion::running().is_some());
    }

    #[test]
    fn table_has_the_shape_of_mobys_profile() {
        let groups = rule_groups();
        assert_eq!(groups.len(), 33);
        assert_eq!(groups[0].names.len(), 361);
        let mut all: Vec<&str> = groups.iter().flat_map(|g| g.names.iter().copied()).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 426);
        let sys_admin: Vec<_> = groups
            .iter()
            .filter(|g| g.includes.caps == [C::CAP_SYS_ADMIN])
            .collect();
        assert_eq!(sys_admin.len(), 1);
        assert_eq!(sys_admin[0].names.len(), 26);
        assert_eq!(ARCH_MAP.len(), 9);
    }

    #[test]
    fn default_caps_on_amd64() {
        let s = resolve(&DOCKER_DEFAULT_CAPS, "amd64", Some(KernelVersion::new(6, 18)));
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(s.default_errno_ret(), Some(1));
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        // base list, ptrace (>= 4.8), 3 socket, 5 personality, arch_prctl, modify_ldt,
        // clone (masked), clone3 (ENOSYS), chroot (CAP_SYS_CHROOT is a default cap).
        assert_eq!(s.syscalls().as_ref().unwrap().len(), 15);

        let clone3 = rules_naming(&s, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3[0].errno_ret(), Some(38));

        let clone = rules_naming(&s, "clone");
        assert_eq!(clone.len(), 1);
        let arg = clone[0].args().as_ref().unwrap()[0];
        assert_eq!(
            (arg.index(), arg.value(), arg.op()),
            (0, 0x7E02_0000, LinuxSeccompOperator::ScmpCmpMaskedEq)
        );
        assert_eq!(arg.value_two(), None);

        assert_eq!(rules_naming(&s, "ptrace").len(), 1);
        assert_eq!(rules_naming(&s, "chroot").len(), 1);
        assert_eq!(rules_naming(&s, "arch_prctl").len(), 1);
        assert_eq!(rules_naming(&s, "modify_ldt").len(), 1);
        for refused in [
            "mount",
            "unshare",
            "setns",
            "bpf",
            "keyctl",
            "add_key",
            "io_uring_setup",
            "kexec_load",
            "init_module",
            "reboot",
            "open_by_handle_at",
            "breakpoint",
        ] {
            assert!(rules_naming(&s, refused).is_empty(), "{refused} must not be allowed");
        }
        assert_eq!(rules_naming(&s, "socket").len(), 3);
        assert_eq!(rules_naming(&s, "personality").len(), 5);
    }

    #[test]
    fn json_matches_what_docker_writes() {
        let s = resolve(&DOCKER_DEFAULT_CAPS, "amd64", Some(KernelVersion::new(6, 18)));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(json["defaultErrnoRet"], 1);
        assert_eq!(
            json["architectures"],
            serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let socket = json["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["names"] == serde_json::json!(["socket"]))
            .unwrap();
        assert_eq!(
            socket["args"],
            serde_json::json!([{"index": 0, "value": 38, "op": "SCMP_CMP_LT"}])
        );
        assert!(socket.get("errnoRet").is_none());
    }

    #[test]
    fn old_kernels_do_not_get_ptrace() {
        let s = resolve(&DOCKER_DEFAULT_CAPS, "amd64", Some(KernelVersion::new(4, 4)));
        assert!(rules_naming(&s, "ptrace").is_empty());
        let s = resolve(&DOCKER_DEFAULT_CAPS, "amd64", None);
        assert!(rules_naming(&s, "ptrace").is_empty());
        let s = resolve(&DOCKER_DEFAULT_CAPS, "amd64", Some(KernelVersion::new(4, 8)));
        assert_eq!(rules_naming(&s, "ptrace").len(), 1);
    }

    #[test]
    fn sys_admin_unlocks_its_group_and_drops_the_clone_guards() {
        let mut caps = DOCKER_DEFAULT_CAPS.to_vec();
        caps.push(C::CAP_SYS_ADMIN);
        let s = resolve(&caps, "amd64", Some(KernelVersion::new(6, 18)));
        let clone3 = rules_naming(&s, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActAllow);
        let clone = rules_naming(&s, "clone");
        assert_eq!(clone.len(), 1);
        assert!(clone[0].args().is_none());
        for name in ["mount", "unshare", "setns", "bpf", "umount2", "syslog"] {
            assert_eq!(rules_naming(&s, name).len(), 1, "{name}");
        }
    }

    #[test]
    fn other_caps_unlock_their_groups() {
        let s = resolve(
            &[C::CAP_SYS_PTRACE, C::CAP_SYS_MODULE, C::CAP_DAC_READ_SEARCH],
            "amd64",
            Some(KernelVersion::new(6, 18)),
        );
        assert_eq!(rules_naming(&s, "ptrace").len(), 2);
        assert_eq!(rules_naming(&s, "init_module").len(), 1);
        assert_eq!(rules_naming(&s, "open_by_handle_at").len(), 1);
        // Without CAP_SYS_CHROOT there is no chroot rule.
        assert!(rules_naming(&s, "chroot").is_empty());
    }

    #[test]
    fn arm64_and_s390x_get_their_own_rules() {
        let s = resolve(&DOCKER_DEFAULT_CAPS, "arm64", Some(KernelVersion::new(6, 1)));
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
        );
        assert_eq!(rules_naming(&s, "set_tls").len(), 1);
        assert!(rules_naming(&s, "arch_prctl").is_empty());

        let s = resolve(&DOCKER_DEFAULT_CAPS, "s390x", Some(KernelVersion::new(6, 1)));
        let clone = rules_naming(&s, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0].args().as_ref().unwrap()[0].index(), 1);
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchS390x, Arch::ScmpArchS390][..])
        );

        // No archMap entry: no architectures list (the runtime's native arch only).
        let s = resolve(&DOCKER_DEFAULT_CAPS, "ppc64le", Some(KernelVersion::new(6, 1)));
        assert!(s.architectures().is_none());
        assert_eq!(rules_naming(&s, "swapcontext").len(), 1);
    }
}
