//! Capabilities, set in every set: bounding, then effective, permitted and inheritable in
//! one capset(2) call (they constrain each other, so setting them one by one can fail
//! halfway), then ambient.

use nix::errno::Errno;
use oci_spec::runtime::LinuxCapabilities;

use crate::spec::to_caps;

/// The five sets as bit masks, worked out before the init forks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

fn mask(set: &Option<std::collections::HashSet<oci_spec::runtime::Capability>>) -> u64 {
    let list: Vec<_> = set.as_ref().map(|s| s.iter().copied().collect()).unwrap_or_default();
    to_caps(&list).iter().fold(0u64, |m, c| m | (1u64 << c.index()))
}

impl CapSets {
    pub fn from_spec(caps: &LinuxCapabilities) -> CapSets {
        CapSets {
            bounding: mask(caps.bounding()),
            effective: mask(caps.effective()),
            permitted: mask(caps.permitted()),
            inheritable: mask(caps.inheritable()),
            ambient: mask(caps.ambient()),
        }
    }

    /// No capabilities at all (a spec with no `capabilities` object).
    pub fn none() -> CapSets {
        CapSets::default()
    }
}

/// The highest capability this kernel knows.
pub fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drops from the bounding set every capability not in `sets.bounding`. Needs CAP_SETPCAP,
/// so it runs before the user changes.
pub fn drop_bounding(sets: &CapSets, last: u8) -> Result<(), Errno> {
    for cap in 0..=last {
        if sets.bounding & (1u64 << cap) == 0 {
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            // EINVAL: a capability this kernel does not have.
            if r != 0 && Errno::last() != Errno::EINVAL {
                return Err(Errno::last());
            }
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Sets effective, permitted and inheritable, then the ambient set.
pub fn apply(sets: &CapSets) -> Result<(), Errno> {
    let header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: sets.effective as u32,
            permitted: sets.permitted as u32,
            inheritable: sets.inheritable as u32,
        },
        CapData {
            effective: (sets.effective >> 32) as u32,
            permitted: (sets.permitted >> 32) as u32,
            inheritable: (sets.inheritable >> 32) as u32,
        },
    ];
    let r = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    Errno::result(r)?;
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    Errno::result(r)?;
    // The kernel raises an ambient capability only if it is permitted and inheritable;
    // runc's own spec lists ambient ones without inheritable, and runc skips those too.
    let ambient = sets.ambient & sets.permitted & sets.inheritable;
    for cap in 0..64u32 {
        if ambient & (1u64 << cap) != 0 {
            let r = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap as libc::c_ulong,
                    0,
                    0,
                )
            };
            Errno::result(r)?;
        }
    }
    Ok(())
}
