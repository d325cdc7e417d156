//! The device allow-list: OCI rules, Docker's defaults, and an emulation of the kernel's v1
//! devices cgroup (security/device_cgroup.c) that both back ends use.
//!
//! v1 semantics, which the emulation follows:
//! - a cgroup has a default behaviour (allow all or deny all) and a list of exceptions;
//! - a rule of type `a` resets: writing it to `devices.allow` means allow all, to
//!   `devices.deny` deny all, and either clears the exceptions (its major, minor and access
//!   are ignored, as the kernel ignores them);
//! - a rule whose verdict differs from the default adds an exception (merging access into an
//!   exception with the same type, major and minor);
//! - a rule whose verdict equals the default removes those access bits from the exception
//!   with exactly the same type, major and minor;
//! - an access is granted, in deny-all mode, when one exception matches the device and holds
//!   every requested access bit; in allow-all mode, it is refused when one exception matches
//!   the device and shares any requested bit.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

/// Access bits, with the values of the kernel's `BPF_DEVCG_ACC_*`.
pub(crate) const ACC_MKNOD: u32 = 1;
pub(crate) const ACC_READ: u32 = 2;
pub(crate) const ACC_WRITE: u32 = 4;
pub(crate) const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DevKind {
    All,
    Block,
    Char,
}

impl DevKind {
    fn letter(self) -> char {
        match self {
            DevKind::All => 'a',
            DevKind::Block => 'b',
            DevKind::Char => 'c',
        }
    }

    /// The kernel's `BPF_DEVCG_DEV_*` value.
    pub(crate) fn bpf_type(self) -> Option<u32> {
        match self {
            DevKind::All => None,
            DevKind::Block => Some(1),
            DevKind::Char => Some(2),
        }
    }
}

/// One rule after validation. `None` major/minor means any (`*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    pub allow: bool,
    pub kind: DevKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u32,
}

impl Rule {
    /// The v1 `devices.allow`/`devices.deny` line, e.g. `c 1:3 rwm` or `a`.
    pub(crate) fn v1_line(&self) -> String {
        if self.kind == DevKind::All {
            return "a".to_string();
        }
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |v| v.to_string());
        format!(
            "{} {}:{} {}",
            self.kind.letter(),
            num(self.major),
            num(self.minor),
            access_string(self.access)
        )
    }

    fn same_device(&self, other: &Rule) -> bool {
        self.kind == other.kind && self.major == other.major && self.minor == other.minor
    }

    #[cfg(test)]
    fn matches(&self, kind: DevKind, major: u32, minor: u32) -> bool {
        (self.kind == DevKind::All || self.kind == kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
    }
}

pub(crate) fn access_string(access: u32) -> String {
    let mut s = String::new();
    if access & ACC_READ != 0 {
        s.push('r');
    }
    if access & ACC_WRITE != 0 {
        s.push('w');
    }
    if access & ACC_MKNOD != 0 {
        s.push('m');
    }
    s
}

/// Validates one OCI rule. `Ok(None)` for rules that have no meaning for a devices cgroup
/// (type `p`, FIFOs), which runc skips too.
pub(crate) fn convert(rule: &LinuxDeviceCgroup) -> Result<Option<Rule>, String> {
    let kind = match rule.typ() {
        None | Some(LinuxDeviceType::A) => DevKind::All,
        Some(LinuxDeviceType::B) => DevKind::Block,
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => DevKind::Char,
        Some(LinuxDeviceType::P) => return Ok(None),
    };
    let num = |n: Option<i64>, what: &str| -> Result<Option<u32>, String> {
        match n {
            None => Ok(None),
            Some(v) if v < 0 => Ok(None), // -1 is the OCI spelling of "*"
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| format!("device rule {rule}: {what} {v} out of range")),
        }
    };
    let access = match rule.access().as_deref() {
        None | Some("") => ACC_ALL,
        Some(s) => {
            let mut a = 0;
            for ch in s.chars() {
                a |= match ch {
                    'r' => ACC_READ,
                    'w' => ACC_WRITE,
                    'm' => ACC_MKNOD,
                    _ => return Err(format!("device rule {rule}: bad access {s:?}")),
                };
            }
            a
        }
    };
    Ok(Some(Rule {
        allow: rule.allow(),
        kind,
        major: num(rule.major(), "major")?,
        minor: num(rule.minor(), "minor")?,
        access,
    }))
}

/// The state of a v1 devices cgroup after a sequence of rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceState {
    pub default_allow: bool,
    /// Each exception has `allow == !default_allow`.
    pub exceptions: Vec<Rule>,
}

impl DeviceState {
    /// A new cgroup under an allow-all parent.
    pub(crate) fn allow_all() -> DeviceState {
        DeviceState {
            default_allow: true,
            exceptions: Vec::new(),
        }
    }

    /// Applies OCI rules in order, starting from allow-all.
    pub(crate) fn from_oci(rules: &[LinuxDeviceCgroup]) -> Result<DeviceState, String> {
        let mut st = DeviceState::allow_all();
        for r in rules {
            if let Some(rule) = convert(r)? {
                st.apply(rule);
            }
        }
        Ok(st)
    }

    pub(crate) fn apply(&mut self, rule: Rule) {
        if rule.kind == DevKind::All {
            self.default_allow = rule.allow;
            self.exceptions.clear();
            return;
        }
        if rule.allow != self.default_allow {
            if let Some(ex) = self.exceptions.iter_mut().find(|e| e.same_device(&rule)) {
                ex.access |= rule.access;
            } else {
                self.exceptions.push(rule);
            }
        } else {
            for ex in self.exceptions.iter_mut().filter(|e| e.same_device(&rule)) {
                ex.access &= !rule.access;
            }
            self.exceptions.retain(|e| e.access != 0);
        }
    }

    /// Would the kernel grant `access` on this device? (The reference the BPF program is
    /// tested against.)
    #[cfg(test)]
    pub(crate) fn allows(&self, kind: DevKind, major: u32, minor: u32, access: u32) -> bool {
        let mut matching = self.exceptions.iter().filter(|e| e.matches(kind, major, minor));
        if self.default_allow {
            !matching.any(|e| e.access & access != 0)
        } else {
            matching.any(|e| access & !e.access == 0)
        }
    }

    /// The lines to write on v1: the reset (`a` to devices.allow or devices.deny), then each
    /// exception to the other file. Each item is (write to devices.allow?, line).
    pub(crate) fn v1_writes(&self) -> Vec<(bool, String)> {
        let mut out = vec![(self.default_allow, "a".to_string())];
        for ex in &self.exceptions {
            out.push((ex.allow, ex.v1_line()));
        }
        out
    }

    /// True if `devices.list` (v1) shows exactly this state. Only a deny-all state can be
    /// recognised: in allow-all mode the kernel prints `a *:* rwm` whatever the exceptions.
    pub(crate) fn matches_v1_list(&self, list: &str) -> bool {
        if self.default_allow {
            return false;
        }
        let mut want: Vec<String> = self.exceptions.iter().map(Rule::v1_line).collect();
        let mut have: Vec<String> = list
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(normalise_list_line)
            .collect();
        want.sort();
        have.sort();
        want == have
    }
}

/// devices.list prints access in "rwm" order already; just collapse whitespace.
fn normalise_list_line(l: &str) -> String {
    l.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn oci_rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow)
        .set_typ(Some(typ))
        .set_major(major)
        .set_minor(minor)
        .set_access(Some(access.to_string()));
    r
}

/// Docker's default device rules: deny all, then allow `c *:* m` and `b *:* m` (mknod, not
/// open), and rwm on null 1:3, zero 1:5, full 1:7, random 1:8, urandom 1:9, tty 5:0,
/// console 5:1, ptmx 5:2, pts 136:*, and tun 10:200.
/// The devices every container has whatever its spec says (OCI's default devices, the
/// console and pseudo-terminals), allowed after the spec's own rules as runc and crun do:
/// a spec that denies all devices still gets a working /dev/null.
pub fn runtime_default_devices() -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::C;
    [
        (1, Some(3)),
        (1, Some(5)),
        (1, Some(7)),
        (1, Some(8)),
        (1, Some(9)),
        (5, Some(0)),
        (5, Some(1)),
        (5, Some(2)),
        (136, None),
    ]
    .into_iter()
    .map(|(major, minor)| oci_rule(true, C, Some(major), minor, "rwm"))
    .collect()
}

pub fn docker_default_devices() -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{A, B, C};
    let mut rules = vec![
        oci_rule(false, A, None, None, "rwm"),
        oci_rule(true, C, None, None, "m"),
        oci_rule(true, B, None, None, "m"),
    ];
    for (major, minor) in [
        (Some(1), Some(3)),
        (Some(1), Some(5)),
        (Some(1), Some(7)),
        (Some(1), Some(8)),
        (Some(1), Some(9)),
        (Some(5), Some(0)),
        (Some(5), Some(1)),
        (Some(5), Some(2)),
        (Some(136), None),
        (Some(10), Some(200)),
    ] {
        rules.push(oci_rule(true, C, major, minor, "rwm"));
    }
    rules
}

#[cfg(test)]
mod unit {
    use super::*;

    fn st(rules: &[LinuxDeviceCgroup]) -> DeviceState {
        DeviceState::from_oci(rules).unwrap()
    }

    #[test]
    fn cgroups_devices_docker_defaults_emulated() {
        let s = st(&docker_default_devices());
        assert!(!s.default_allow);
        assert_eq!(s.exceptions.len(), 12);
        assert!(s.allows(DevKind::Char, 1, 3, ACC_READ | ACC_WRITE));
        assert!(s.allows(DevKind::Char, 136, 7, ACC_ALL));
        assert!(s.allows(DevKind::Char, 10, 200, ACC_READ));
        assert!(s.allows(DevKind::Block, 254, 0, ACC_MKNOD));
        assert!(!s.allows(DevKind::Block, 254, 0, ACC_READ));
        assert!(!s.allows(DevKind::Char, 1, 1, ACC_READ)); // /dev/mem
        assert!(!s.allows(DevKind::Char, 10, 229, ACC_READ | ACC_MKNOD)); // fuse
        let writes = s.v1_writes();
        assert_eq!(writes[0], (false, "a".to_string()));
        assert!(writes.contains(&(true, "c *:* m".to_string())));
        assert!(writes.contains(&(true, "c 136:* rwm".to_string())));
        let list = "c *:* m\nb *:* m\nc 1:3 rwm\nc 1:5 rwm\nc 1:7 rwm\nc 1:8 rwm\nc 1:9 rwm\n\
                    c 5:0 rwm\nc 5:1 rwm\nc 5:2 rwm\nc 136:* rwm\nc 10:200 rwm\n";
        assert!(s.matches_v1_list(list));
        assert!(!s.matches_v1_list("a *:* rwm\n"));
    }

    #[test]
    fn cgroups_devices_kernel_semantics() {
        use LinuxDeviceType::{A, B, C};
        // Deny in deny-all mode trims an allow exception with the same device.
        let s = st(&[
            oci_rule(false, A, None, None, "rwm"),
            oci_rule(true, C, Some(1), Some(3), "rwm"),
            oci_rule(false, C, Some(1), Some(3), "w"),
        ]);
        assert!(s.allows(DevKind::Char, 1, 3, ACC_READ));
        assert!(!s.allows(DevKind::Char, 1, 3, ACC_WRITE));
        // Allow-all with a deny exception: partial overlap denies.
        let s = st(&[oci_rule(false, B, Some(8), None, "w")]);
        assert!(s.default_allow);
        assert!(s.allows(DevKind::Block, 8, 0, ACC_READ));
        assert!(!s.allows(DevKind::Block, 8, 0, ACC_READ | ACC_WRITE));
        assert!(s.allows(DevKind::Char, 8, 0, ACC_WRITE));
        // A later "a" resets everything.
        let s = st(&[
            oci_rule(false, A, None, None, "rwm"),
            oci_rule(true, C, Some(1), Some(3), "rwm"),
            oci_rule(true, A, None, None, "rwm"),
        ]);
        assert_eq!(s, DeviceState::allow_all());
        // Exceptions merge access.
        let s = st(&[
            oci_rule(false, A, None, None, "rwm"),
            oci_rule(true, C, Some(1), Some(3), "r"),
            oci_rule(true, C, Some(1), Some(3), "w"),
        ]);
        assert_eq!(s.exceptions.len(), 1);
        assert_eq!(s.exceptions[0].v1_line(), "c 1:3 rw");
        // Bad access is an error; FIFO rules are skipped.
        assert!(DeviceState::from_oci(&[oci_rule(true, C, None, None, "rx")]).is_err());
        assert_eq!(
            st(&[oci_rule(false, LinuxDeviceType::P, None, None, "rwm")]),
            DeviceState::allow_all()
        );
    }
}
