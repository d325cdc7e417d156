//! pack → unpack → pack gives back the same tree and the same bytes.

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::sys::stat::{Mode, SFlag, UtimensatFlags, makedev, mknod, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchownat};
use sha2::Digest;

use super::super::{LayerError, pack, unpack};
use super::{Tb, os, snapshot};

fn chown(p: &Path, uid: u32, gid: u32) {
    fchownat(
        nix::fcntl::AT_FDCWD,
        p,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

fn write(p: &Path, data: &[u8], mode: u32, uid: u32, gid: u32) {
    std::fs::write(p, data).unwrap();
    chown(p, uid, gid);
    chmod(p, mode);
}

/// Gives every node a whole-second mtime (tar keeps seconds), deepest first.
fn set_times(dir: &Path, t: i64) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            set_times(&p, t + 7);
        }
        let ts = TimeSpec::new(t, 0);
        utimensat(nix::fcntl::AT_FDCWD, &p, &ts, &ts, UtimensatFlags::NoFollowSymlink).unwrap();
    }
}

/// A tree with every kind of node a layer carries.
fn build_tree(root: &Path) {
    let j = |p: &str| root.join(p);
    write(&j("file.txt"), b"hello\n", 0o644, 0, 0);
    write(&j("setuid"), b"#!/bin/sh\n", 0o4755, 0, 0);
    write(&j("setgid"), b"x", 0o2755, 1000, 50);
    write(&j("owned"), b"mine", 0o600, 1234, 5678);
    write(&j("big-ids"), b"ids", 0o640, 3_000_000, 4_000_000);
    write(&j("no-perms"), b"", 0o000, 0, 0);
    write(&j("world-writable"), b"w", 0o666, 0, 0);
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    write(&j("big.bin"), &big, 0o644, 0, 0);
    // A file capability (VFS_CAP_REVISION_2, effective, cap_net_bind_service permitted).
    write(&j("ping"), b"\x7fELF", 0o755, 0, 0);
    let mut cap = Vec::new();
    for word in [0x0200_0001u32, 1 << 10, 0, 0, 0] {
        cap.extend_from_slice(&word.to_le_bytes());
    }
    xattr::set(j("ping"), "security.capability", &cap).unwrap();
    write(&j("with-xattrs"), b"x", 0o644, 0, 0);
    xattr::set(j("with-xattrs"), "user.text", b"value").unwrap();
    xattr::set(j("with-xattrs"), "user.binary", b"\x00\x01\xff\n=").unwrap();

    std::fs::create_dir(j("sticky")).unwrap();
    chmod(&j("sticky"), 0o1777);
    std::fs::create_dir(j("setgid-dir")).unwrap();
    chown(&j("setgid-dir"), 0, 100);
    chmod(&j("setgid-dir"), 0o2775);
    write(&j("setgid-dir/f"), b"f", 0o664, 0, 100);
    std::fs::create_dir(j("read-only")).unwrap();
    write(&j("read-only/inside"), b"in a 0555 dir", 0o444, 0, 0);
    std::fs::create_dir(j("read-only/sub")).unwrap();
    chmod(&j("read-only/sub"), 0o500);
    chmod(&j("read-only"), 0o555);
    std::fs::create_dir(j("owned-dir")).unwrap();
    chown(&j("owned-dir"), 33, 33);
    chmod(&j("owned-dir"), 0o750);
    xattr::set(j("owned-dir"), "user.dir", b"attr").unwrap();

    // Long names: a path over 100 bytes, a 200-byte component, a long symlink target.
    let mut deep = root.to_path_buf();
    for i in 0..8 {
        deep.push(format!("level-{i}-with-a-rather-long-directory-name"));
    }
    std::fs::create_dir_all(&deep).unwrap();
    write(&deep.join("x".repeat(200)), b"deep", 0o644, 0, 0);
    std::os::unix::fs::symlink("t".repeat(150), j("long-target")).unwrap();
    std::fs::create_dir(j("names")).unwrap();
    write(&j("names/spaces and ünïcödé"), b"u", 0o644, 0, 0);
    write(&j("names").join(os(b"not-utf8-\xff\xfe")), b"b", 0o644, 0, 0);

    // Hardlinks: three names for one inode, another pair.
    std::fs::create_dir(j("links")).unwrap();
    write(&j("links/a"), b"linked", 0o640, 7, 8);
    std::fs::hard_link(j("links/a"), j("links/b")).unwrap();
    std::fs::hard_link(j("links/a"), j("zz-last-link")).unwrap();
    write(&j("links/c"), b"pair", 0o644, 0, 0);
    std::fs::hard_link(j("links/c"), j("links/d")).unwrap();

    // Symlinks: absolute, relative, dangling, to a directory.
    std::os::unix::fs::symlink("/usr/lib", j("lib")).unwrap();
    std::os::unix::fs::symlink("../file.txt", j("links/rel")).unwrap();
    std::os::unix::fs::symlink("nowhere", j("dangling")).unwrap();
    std::os::unix::fs::symlink("sticky", j("to-dir")).unwrap();
    chown(&j("lib"), 5, 6);

    // Devices and a fifo.
    std::fs::create_dir(j("dev")).unwrap();
    mknod(
        &j("dev/null"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        makedev(1, 3),
    )
    .unwrap();
    chmod(&j("dev/null"), 0o666);
    mknod(
        &j("dev/loop0"),
        SFlag::S_IFBLK,
        Mode::from_bits_truncate(0o660),
        makedev(7, 0),
    )
    .unwrap();
    chmod(&j("dev/loop0"), 0o660);
    chown(&j("dev/loop0"), 0, 6);
    mknod(
        &j("dev/big"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o600),
        makedev(4095, 1_048_575),
    )
    .unwrap();
    mknod(&j("dev/fifo"), SFlag::S_IFIFO, Mode::from_bits_truncate(0o644), 0).unwrap();
    chmod(&j("dev/fifo"), 0o620);

    // Overlay whiteouts and opaque directories.
    mknod(&j("gone"), SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).unwrap();
    mknod(&j("dev/gone-too"), SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).unwrap();
    std::fs::create_dir(j("opaque")).unwrap();
    xattr::set(j("opaque"), "trusted.overlay.opaque", b"y").unwrap();
    write(&j("opaque/kept"), b"k", 0o644, 0, 0);
    std::fs::create_dir(j("opaque-user")).unwrap();
    xattr::set(j("opaque-user"), "user.overlay.opaque", b"y").unwrap();
    // Overlay's private bookkeeping does not travel.
    std::fs::create_dir(j("impure")).unwrap();
    xattr::set(j("impure"), "trusted.overlay.impure", b"y").unwrap();
    xattr::set(j("impure"), "trusted.other", b"host policy").unwrap();

    set_times(root, 1_650_000_000);
}

#[test]
fn every_kind_of_node_survives_a_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&dst).unwrap();
    build_tree(&src);

    let mut tar1 = Vec::new();
    let packed = pack(&src, &mut tar1).unwrap();
    assert_eq!(packed.size, tar1.len() as u64);
    assert_eq!(&packed.diff_id[..], &sha2::Sha256::digest(&tar1)[..]);

    let unpacked = unpack(&tar1[..], &dst).unwrap();
    assert_eq!(unpacked.diff_id, packed.diff_id);
    assert_eq!(unpacked.size, packed.size);
    assert_eq!(unpacked.whiteouts, 4, "two whiteouts, two opaque dirs");

    let (before, after) = (snapshot(&src), snapshot(&dst));
    // A tar says nothing of trusted.other; the rest must match exactly.
    let mut expected = before;
    expected.nodes.get_mut(&b"impure"[..]).unwrap().xattrs.clear();
    for (path, node) in &expected.nodes {
        assert_eq!(Some(node), after.nodes.get(path), "{}", String::from_utf8_lossy(path));
    }
    assert_eq!(expected, after);
    assert_eq!(after.links.len(), 2);

    let regular: u64 = expected
        .nodes
        .values()
        .filter(|n| n.kind == "file")
        .map(|n| n.size)
        .sum();
    let doubles = 2 * 6 + 4; // the extra names of links/a ("linked") and links/c ("pair")
    assert_eq!(unpacked.bytes, regular - doubles);
    let non_whiteouts = expected
        .nodes
        .values()
        .filter(|n| !(n.kind == "char" && n.rdev == 0))
        .count();
    assert_eq!(unpacked.files, non_whiteouts as u64);

    // Deterministic, and unpack loses nothing pack wrote.
    let mut tar2 = Vec::new();
    let repacked = pack(&dst, &mut tar2).unwrap();
    assert_eq!(repacked, packed);
    assert!(tar1 == tar2);
}

#[test]
fn packed_tars_read_as_docker_layers() {
    let tmp = tempfile::tempdir().unwrap();
    build_tree(tmp.path());
    let mut tar = Vec::new();
    pack(tmp.path(), &mut tar).unwrap();

    let mut archive = ::tar::Archive::new(&tar[..]);
    let mut seen = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        if path == b"links/b" || path == b"zz-last-link" {
            assert_eq!(kind, ::tar::EntryType::Link);
            assert_eq!(&*entry.link_name_bytes().unwrap(), b"links/a");
        }
        if path == b"ping" {
            let caps = entry
                .pax_extensions()
                .unwrap()
                .unwrap()
                .map(|r| r.unwrap())
                .find(|r| r.key_bytes() == b"SCHILY.xattr.security.capability");
            assert!(caps.is_some());
        }
        if path.ends_with(b"/") {
            assert_eq!(kind, ::tar::EntryType::Directory);
        }
        let mut sink = Vec::new();
        entry.read_to_end(&mut sink).unwrap();
        seen.push(String::from_utf8_lossy(&path).into_owned());
    }
    // Sorted, depth first, directories before their contents; opaque markers right
    // after their directory; whiteouts as empty regular files.
    for want in [
        ".wh.gone",
        "dev/.wh.gone-too",
        "opaque/.wh..wh..opq",
        "opaque-user/.wh..wh..opq",
    ] {
        assert!(seen.iter().any(|s| s == want), "{want} in {seen:?}");
    }
    let at = |s: &str| seen.iter().position(|x| x == s).unwrap();
    assert_eq!(at("opaque/.wh..wh..opq"), at("opaque/") + 1);
    assert!(at("dev/") < at("dev/big") && at("dev/big") < at("dev/fifo"));
    assert!(!seen.iter().any(|s| s == "gone" || s.contains("PaxHeaders")));
}

#[test]
fn gzip_layers_are_detected_and_hashed_uncompressed() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&dst).unwrap();
    build_tree(&src);
    let mut tar = Vec::new();
    let packed = pack(&src, &mut tar).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();

    let unpacked = unpack(&gz[..], &dst).unwrap();
    assert_eq!(unpacked.diff_id, packed.diff_id);
    assert_eq!(unpacked.size, tar.len() as u64);
    let mut expected = snapshot(&src);
    expected.nodes.get_mut(&b"impure"[..]).unwrap().xattrs.clear();
    assert_eq!(snapshot(&dst), expected);
}

#[test]
fn other_compressions_and_bad_targets_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let zstd = [0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0];
    let e = unpack(&zstd[..], tmp.path()).unwrap_err();
    assert!(matches!(e, LayerError::UnsupportedCompression("zstd")), "{e}");
    assert!(e.to_string().contains("zstd"));

    std::fs::write(tmp.path().join("x"), b"").unwrap();
    let e = unpack(&Tb::new().file("a", b"a").finish()[..], tmp.path()).unwrap_err();
    assert!(matches!(e, LayerError::Target { .. }), "{e}");
    let e = unpack(&[][..], &tmp.path().join("missing")).unwrap_err();
    assert!(matches!(e, LayerError::Target { .. }), "{e}");

    // Not a tar at all, and a truncated one.
    let target = tmp.path().join("t");
    std::fs::create_dir(&target).unwrap();
    let e = unpack(&[b'x'; 1024][..], &target).unwrap_err();
    assert!(matches!(e, LayerError::Malformed { .. }), "{e}");
    let std_tar = Tb::new().file("f", &[7u8; 5000]).finish();
    let target = tmp.path().join("t2");
    std::fs::create_dir(&target).unwrap();
    let e = unpack(&std_tar[..3000], &target).unwrap_err();
    assert!(matches!(e, LayerError::Malformed { .. }), "{e}");
}

#[test]
fn later_entries_replace_earlier_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Tb::new()
        .file("f", b"first")
        .file("f", b"second")
        // A file replaced by a directory, and a directory (with contents) by a file.
        .file("was-file", b"x")
        .dir("was-file/")
        .file("was-file/in", b"in")
        .dir("was-dir/")
        .file("was-dir/sub", b"sub")
        .file("was-dir", b"now a file")
        // A directory over a directory merges.
        .dir("merge/")
        .file("merge/one", b"1")
        .dir("merge/")
        .file("merge/two", b"2")
        // A symlink replaced by a file: the file is written in place of the link.
        .symlink("link", "/etc/hostname")
        .file("link", b"plain")
        // A file replaced by a symlink, and whiteouts that meet entries of their layer.
        .file("to-link", b"x")
        .symlink("to-link", "f")
        .file("both", b"this layer's")
        .file(".wh.both", b"")
        .file(".wh.later", b"")
        .file("later", b"wins too")
        .finish();
    let stats = unpack(&tar[..], tmp.path()).unwrap();
    let read = |p: &str| std::fs::read(tmp.path().join(p)).unwrap();
    assert_eq!(read("f"), b"second");
    assert!(tmp.path().join("was-file").is_dir());
    assert_eq!(read("was-file/in"), b"in");
    assert_eq!(read("was-dir"), b"now a file");
    assert_eq!(read("merge/one"), b"1");
    assert_eq!(read("merge/two"), b"2");
    assert!(std::fs::symlink_metadata(tmp.path().join("link")).unwrap().is_file());
    assert_eq!(read("link"), b"plain");
    assert_eq!(
        std::fs::read_link(tmp.path().join("to-link"))
            .unwrap()
            .as_os_str()
            .as_bytes(),
        b"f"
    );
    assert_eq!(read("both"), b"this layer's");
    assert_eq!(read("later"), b"wins too");
    // `.wh.both` met this layer's `both` and was dropped; `.wh.later` was made, then
    // replaced by `later`.
    assert_eq!(stats.whiteouts, 1);
}

#[test]
fn hardlinks_need_an_earlier_entry_of_the_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Tb::new()
        .file("a", b"data")
        .hardlink("b", "a")
        .hardlink("./c", "./a")
        .finish();
    unpack(&tar[..], tmp.path()).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(tmp.path().join("c")).unwrap().nlink(), 3);

    for (tar, what) in [
        (
            Tb::new().hardlink("b", "later").file("later", b"x").finish(),
            "not yet seen",
        ),
        (Tb::new().dir("d/").hardlink("b", "d").finish(), "a directory"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let e = unpack(&tar[..], tmp.path()).unwrap_err();
        assert!(matches!(e, LayerError::Hardlink { .. }), "{what}: {e}");
    }
}

#[test]
fn implied_directories_and_the_root_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Tb::new().dir("./").file("./a/b/c/file", b"deep").dir("a/b/").finish();
    let stats = unpack(&tar[..], tmp.path()).unwrap();
    assert_eq!(stats.files, 2);
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| std::fs::metadata(tmp.path().join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("a"), 0o755);
    assert_eq!(mode("a/b/c"), 0o755);
    assert_eq!(std::fs::read(tmp.path().join("a/b/c/file")).unwrap(), b"deep");
}
