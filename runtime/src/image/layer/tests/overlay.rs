//! Real overlayfs mounts (in a private mount namespace of a forked child) over unpacked
//! layers, and a real overlay upper dir packed into a layer.

use std::path::Path;

use nix::mount::{MsFlags, mount};

use super::super::{pack, unpack};
use super::{Tb, exists, in_private_mount_ns};

fn base_layer() -> Vec<u8> {
    Tb::new()
        .file("keep.txt", b"keep")
        .file("gone.txt", b"gone")
        .dir("gonedir/")
        .file("gonedir/x", b"x")
        .dir("opq/")
        .file("opq/old.txt", b"old")
        .dir("plain/")
        .file("plain/a.txt", b"a")
        .finish()
}

fn mount_overlay(opts: &str, on: &Path) -> Result<(), String> {
    mount(Some("overlay"), on, Some("overlay"), MsFlags::empty(), Some(opts)).map_err(|e| format!("mount {opts}: {e}"))
}

/// What a merged view shows of the test paths: "name=0|1" for each.
fn look(root: &Path) -> String {
    [
        "keep.txt",
        "gone.txt",
        "gonedir",
        "opq/old.txt",
        "opq/new.txt",
        "opq/fresh.txt",
        "plain/a.txt",
        "plain/b.txt",
    ]
    .iter()
    .map(|p| format!("{p}={}", exists(root.join(p)) as u8))
    .collect::<Vec<_>>()
    .join(" ")
}

#[test]
fn whiteouts_and_opaque_dirs_hide_lower_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let (l1, l2, mnt) = (tmp.path().join("l1"), tmp.path().join("l2"), tmp.path().join("mnt"));
    for d in [&l1, &l2, &mnt] {
        std::fs::create_dir(d).unwrap();
    }
    unpack(&base_layer()[..], &l1).unwrap();
    let top = Tb::new()
        .file(".wh.gone.txt", b"")
        .file(".wh.gonedir", b"")
        .dir("opq/")
        .file("opq/.wh..wh..opq", b"")
        .file("opq/new.txt", b"new")
        .dir("plain/")
        .file("plain/b.txt", b"b")
        .finish();
    let stats = unpack(&top[..], &l2).unwrap();
    assert_eq!(stats.whiteouts, 3);
    assert_eq!(
        xattr::get(l2.join("opq"), "trusted.overlay.opaque").unwrap().as_deref(),
        Some(&b"y"[..])
    );

    let opts = format!("lowerdir={}:{}", l2.display(), l1.display());
    let seen = in_private_mount_ns(|| {
        mount_overlay(&opts, &mnt)?;
        Ok(look(&mnt))
    })
    .unwrap();
    assert_eq!(
        seen,
        "keep.txt=1 gone.txt=0 gonedir=0 opq/old.txt=0 opq/new.txt=1 opq/fresh.txt=0 plain/a.txt=1 plain/b.txt=1"
    );
    // The child's mount died with its namespace.
    assert!(!exists(mnt.join("keep.txt")));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(mnt.to_str().unwrap()));
}

#[test]
fn a_real_upper_dir_packs_into_a_layer_that_shows_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let [l1, upper, work, mnt, l2, mnt2] = ["l1", "upper", "work", "mnt", "l2", "mnt2"].map(|d| tmp.path().join(d));
    for d in [&l1, &upper, &work, &mnt, &l2, &mnt2] {
        std::fs::create_dir(d).unwrap();
    }
    unpack(&base_layer()[..], &l1).unwrap();

    // A "container" changes the merged view; the kernel records it in the upper dir.
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        l1.display(),
        upper.display(),
        work.display()
    );
    let in_container = in_private_mount_ns(|| {
        mount_overlay(&opts, &mnt)?;
        let io = |r: std::io::Result<()>| r.map_err(|e| e.to_string());
        io(std::fs::remove_file(mnt.join("gone.txt")))?;
        io(std::fs::remove_file(mnt.join("plain/a.txt")))?;
        io(std::fs::write(mnt.join("plain/b.txt"), b"b"))?;
        io(std::fs::remove_dir_all(mnt.join("gonedir")))?;
        io(std::fs::remove_dir_all(mnt.join("opq")))?;
        io(std::fs::create_dir(mnt.join("opq")))?;
        io(std::fs::write(mnt.join("opq/fresh.txt"), b"fresh"))?;
        Ok(look(&mnt))
    })
    .unwrap();
    assert_eq!(
        in_container,
        "keep.txt=1 gone.txt=0 gonedir=0 opq/old.txt=0 opq/new.txt=0 opq/fresh.txt=1 plain/a.txt=0 plain/b.txt=1"
    );

    let mut tar = Vec::new();
    pack(&upper, &mut tar).unwrap();
    let mut names = Vec::new();
    for entry in ::tar::Archive::new(&tar[..]).entries().unwrap() {
        names.push(String::from_utf8_lossy(&entry.unwrap().path_bytes()).into_owned());
    }
    assert_eq!(
        names,
        [
            ".wh.gone.txt",
            ".wh.gonedir",
            "opq/",
            "opq/.wh..wh..opq",
            "opq/fresh.txt",
            "plain/",
            "plain/.wh.a.txt",
            "plain/b.txt"
        ]
    );

    // That layer over the same lower shows what the container saw.
    unpack(&tar[..], &l2).unwrap();
    let opts = format!("lowerdir={}:{}", l2.display(), l1.display());
    let from_layers = in_private_mount_ns(|| {
        mount_overlay(&opts, &mnt2)?;
        Ok(look(&mnt2))
    })
    .unwrap();
    assert_eq!(from_layers, in_container);
}
