//! Finding the cgroup hierarchies in /proc/self/mountinfo (proc(5)).
//!
//! A line is: `id parent major:minor root mount-point mount-options [optional fields...] -
//! fstype source super-options`. For a v1 cgroup, the super options name the controllers of
//! the hierarchy (`rw,cpu,cpuacct`) or a named hierarchy (`rw,name=systemd`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{CgroupError, Hierarchy};

/// Controllers of cgroup v1 (kernel `SUBSYS` names). Anything else in the super options is
/// a mount flag (`noprefix`, `clone_children`, `xattr`, `release_agent=...`, ...).
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "debug",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

struct Mount {
    root: String,
    point: PathBuf,
}

pub(crate) fn parse(text: &str) -> Result<Hierarchy, CgroupError> {
    let mut v1: BTreeMap<String, Mount> = BTreeMap::new();
    let mut v2: Option<Mount> = None;
    for (idx, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let syntax = || CgroupError::MountinfoSyntax {
            line: idx + 1,
            text: line.to_string(),
        };
        let (head, tail) = line.split_once(" - ").ok_or_else(syntax)?;
        let head: Vec<&str> = head.split(' ').collect();
        let tail: Vec<&str> = tail.split(' ').collect();
        if head.len() < 6 || tail.len() < 3 {
            return Err(syntax());
        }
        let mount = Mount {
            root: unescape(head[3]),
            point: PathBuf::from(unescape(head[4])),
        };
        match tail[0] {
            "cgroup2" if better(v2.as_ref(), &mount) => v2 = Some(mount),
            "cgroup" => {
                for opt in tail[2].split(',') {
                    let is_name = opt.starts_with("name=") && opt.len() > 5;
                    if !is_name && !V1_CONTROLLERS.contains(&opt) {
                        continue;
                    }
                    if better(v1.get(opt), &mount) {
                        v1.insert(
                            opt.to_string(),
                            Mount {
                                root: mount.root.clone(),
                                point: mount.point.clone(),
                            },
                        );
                    }
                }
            }
            _ => {}
        }
    }
    let has_real_v1 = v1.keys().any(|k| !k.starts_with("name="));
    if has_real_v1 {
        Ok(Hierarchy::V1 {
            mounts: v1.into_iter().map(|(k, m)| (k, m.point)).collect(),
            unified: v2.map(|m| m.point),
        })
    } else if let Some(m) = v2 {
        Ok(Hierarchy::V2 { root: m.point })
    } else {
        Err(CgroupError::NoCgroupMounts)
    }
}

/// The first mount wins, unless a later one mounts the hierarchy's root and the kept one does
/// not (a bind mount of a sub-cgroup seen first).
fn better(kept: Option<&Mount>, new: &Mount) -> bool {
    match kept {
        None => true,
        Some(k) => k.root != "/" && new.root == "/",
    }
}

/// Undoes the octal escapes (`\040` for space, `\011`, `\012`, `\134`) of mountinfo fields.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod unit {
    use super::*;
    use std::path::Path;

    const HYBRID_HERE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    // A systemd host on cgroup v2 only (Debian 12 default).
    const PURE_V2: &str = "\
21 26 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
22 26 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw
26 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
27 21 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
28 21 0:25 / /sys/fs/pstore rw,nosuid,nodev,noexec,relatime shared:10 - pstore pstore rw
";

    // An older systemd host: v1 with comounted cpu,cpuacct and net_cls,net_prio, a named
    // systemd hierarchy with xattr, an optional field, and an escaped mount point.
    const V1_NAMED: &str = "\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,net_cls,net_prio
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpuset,clone_children
33 25 0:30 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
34 25 0:31 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,freezer
35 25 0:32 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,devices
36 25 0:33 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:20 - cgroup cgroup rw,blkio
37 25 0:34 / /sys/fs/cgroup/hugetlb rw,nosuid,nodev,noexec,relatime shared:21 - cgroup cgroup rw,hugetlb
38 25 0:35 / /sys/fs/cgroup/perf_event rw,nosuid,nodev,noexec,relatime shared:22 - cgroup cgroup rw,perf_event
90 60 0:28 /docker/abc /var/lib/x/rootfs/sys/fs/cgroup/memory ro,relatime - cgroup cgroup rw,memory
91 60 0:40 /sub /mnt/my\\040cgroups rw,relatime - cgroup cgroup rw,rdma
";

    #[test]
    fn cgroups_mountinfo_hybrid_like_this_host() {
        let h = parse(HYBRID_HERE).unwrap();
        let Hierarchy::V1 { mounts, unified } = h else {
            panic!("expected v1: {h:?}")
        };
        assert_eq!(unified.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
        assert_eq!(mounts["memory"], Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(mounts["cpu"], Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!(mounts["cpuacct"], Path::new("/sys/fs/cgroup/cpuacct"));
        assert_eq!(mounts["name=systemd"], Path::new("/sys/fs/cgroup/systemd"));
        assert!(!mounts.contains_key("rw"));
        assert_eq!(mounts.len(), 9);
    }

    #[test]
    fn cgroups_mountinfo_pure_v2() {
        let h = parse(PURE_V2).unwrap();
        assert_eq!(
            h,
            Hierarchy::V2 {
                root: PathBuf::from("/sys/fs/cgroup")
            }
        );
        assert!(h.is_v2());
    }

    #[test]
    fn cgroups_mountinfo_v1_named_and_comounted() {
        let h = parse(V1_NAMED).unwrap();
        let Hierarchy::V1 { mounts, unified } = h else {
            panic!("expected v1: {h:?}")
        };
        assert_eq!(unified, None);
        let cc = Path::new("/sys/fs/cgroup/cpu,cpuacct");
        assert_eq!(mounts["cpu"], cc);
        assert_eq!(mounts["cpuacct"], cc);
        assert_eq!(mounts["net_prio"], Path::new("/sys/fs/cgroup/net_cls,net_prio"));
        assert_eq!(mounts["name=systemd"], Path::new("/sys/fs/cgroup/systemd"));
        // The host mount of memory comes first and is kept over a container's bind.
        assert_eq!(mounts["memory"], Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(mounts["rdma"], Path::new("/mnt/my cgroups"));
        for flag in ["xattr", "clone_children", "rw", "ro"] {
            assert!(!mounts.contains_key(flag), "{flag}");
        }
        assert!(!mounts.keys().any(|k| k.starts_with("release_agent")));
    }

    #[test]
    fn cgroups_mountinfo_prefers_root_mounts_and_edge_cases() {
        let text = "\
1 0 0:28 /docker/abc /c/memory rw - cgroup cgroup rw,memory
2 0 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        let Hierarchy::V1 { mounts, .. } = parse(text).unwrap() else {
            panic!()
        };
        assert_eq!(mounts["memory"], Path::new("/sys/fs/cgroup/memory"));

        // Only a named v1 hierarchy next to cgroup2: the host is v2.
        let text = "\
1 0 0:24 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
2 0 0:25 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
";
        assert!(parse(text).unwrap().is_v2());

        assert!(matches!(
            parse("1 0 0:1 / / rw - ext4 /dev/vda rw\n"),
            Err(CgroupError::NoCgroupMounts)
        ));
        assert!(matches!(
            parse("garbage line\n"),
            Err(CgroupError::MountinfoSyntax { line: 1, .. })
        ));
    }

    #[test]
    fn cgroups_mountinfo_detect_on_this_host() {
        // Whatever the host is, detection must succeed and name existing directories.
        let h = Hierarchy::detect().unwrap();
        match &h {
            Hierarchy::V1 { mounts, .. } => {
                assert!(mounts.values().all(|p| p.is_dir()));
            }
            Hierarchy::V2 { root } => assert!(root.join("cgroup.controllers").exists()),
        }
    }
}
