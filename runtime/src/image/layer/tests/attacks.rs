//! Hostile layers: each is refused, and nothing outside the target changes.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::super::{LayerError, unpack};
use super::{Sandbox, Tb, exists};

/// A name no test run has used, to look for in /etc, /tmp and around the target.
fn marker() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "slipway-escape-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Tb {
    fn raw(&mut self, kind: ::tar::EntryType, name: &str, link: &str, data: &[u8]) -> &mut Self {
        let mut h = ::tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        if matches!(kind, ::tar::EntryType::Char | ::tar::EntryType::Block) {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }
}

/// Unpacks `tar` into a fresh sandbox: it must fail as `expected` says, and nothing
/// outside the target may change: not the sandbox around it, not /etc or /tmp.
fn refused(m: &str, tar: &[u8], expected: fn(&LayerError) -> bool) -> LayerError {
    let sb = Sandbox::new();
    let before = sb.outside();
    let e = unpack(tar, &sb.target).expect_err("a hostile layer was accepted");
    assert!(expected(&e), "unexpected error: {e:?}");
    assert_untouched(&sb, &before, m);
    e
}

fn assert_untouched(sb: &Sandbox, before: &std::collections::BTreeMap<Vec<u8>, super::Node>, m: &str) {
    assert_eq!(&sb.outside(), before, "something changed beside the target");
    for dir in [
        Path::new("/etc"),
        Path::new("/tmp"),
        Path::new("/"),
        sb.tmp.path().parent().unwrap(),
    ] {
        assert!(!exists(dir.join(m)), "{m} appeared in {}", dir.display());
    }
}

fn unsafe_path(e: &LayerError) -> bool {
    matches!(e, LayerError::UnsafePath { .. })
}

#[test]
fn dotdot_and_absolute_names() {
    for name in [
        "../{m}",
        "/tmp/{m}",
        "a/../../{m}",
        "./../{m}",
        "a/b/../../../{m}",
        "//tmp/{m}",
    ] {
        let m = marker();
        let tar = Tb::new().file(&name.replace("{m}", &m), b"pwned").finish();
        let e = refused(&m, &tar, unsafe_path);
        assert!(e.to_string().contains("unsafe path"), "{e}");
    }
}

#[test]
fn dotdot_hidden_in_extended_headers() {
    // The name that counts is the PAX path, or the GNU long name: not the header's.
    let m = marker();
    let tar = Tb::new()
        .pax(&[("path", format!("../../{m}").as_bytes())])
        .file("innocent", b"x")
        .finish();
    refused(&m, &tar, unsafe_path);

    let m = marker();
    let long = format!("../{m}\0");
    let tar = Tb::new()
        .raw(::tar::EntryType::GNULongName, "././@LongLink", "", long.as_bytes())
        .file("innocent", b"x")
        .finish();
    refused(&m, &tar, unsafe_path);

    let m = marker();
    let tar = Tb::new()
        .pax(&[("linkpath", b"../../../etc/passwd")])
        .raw(::tar::EntryType::Link, &m, "innocent", b"")
        .finish();
    refused(&m, &tar, unsafe_path);
}

#[test]
fn symlinked_directories_are_never_followed() {
    type Case = Box<dyn Fn(&str) -> Vec<u8>>;
    let cases: Vec<Case> = vec![
        // evil -> / then evil/tmp/x
        Box::new(|m| {
            Tb::new()
                .symlink("evil", "/")
                .file(&format!("evil/tmp/{m}"), b"x")
                .finish()
        }),
        // An absolute symlink to a host directory, then a file through it.
        Box::new(|m| {
            Tb::new()
                .symlink("tmp", "/tmp")
                .file(&format!("tmp/{m}"), b"x")
                .finish()
        }),
        // The same one level down, and with ./ prefixes.
        Box::new(|m| {
            Tb::new()
                .dir("a/")
                .symlink("./a/b", "/tmp")
                .file(&format!("./a/b/{m}"), b"x")
                .finish()
        }),
        // lib -> /usr/lib, then lib/x (a valid layer elsewhere, refused here rather than
        // resolved on the host).
        Box::new(|m| {
            Tb::new()
                .symlink("lib", "/usr/lib")
                .file(&format!("lib/{m}"), b"x")
                .finish()
        }),
        // A directory, a whiteout and an opaque marker through a symlink.
        Box::new(|m| Tb::new().symlink("evil", "/tmp").dir(&format!("evil/{m}/")).finish()),
        Box::new(|m| {
            Tb::new()
                .symlink("evil", "/tmp")
                .file(&format!("evil/.wh.{m}"), b"")
                .finish()
        }),
        Box::new(|_| {
            Tb::new()
                .symlink("evil", "/tmp")
                .file("evil/.wh..wh..opq", b"")
                .finish()
        }),
        // A device node through a symlink.
        Box::new(|m| {
            Tb::new()
                .symlink("evil", "/tmp")
                .raw(::tar::EntryType::Char, &format!("evil/{m}"), "", b"")
                .finish()
        }),
        // A symlink made through a symlink.
        Box::new(|m| {
            Tb::new()
                .symlink("evil", "/tmp")
                .symlink(&format!("evil/{m}"), "/etc/passwd")
                .finish()
        }),
    ];
    for case in cases {
        let m = marker();
        let e = refused(&m, &case(&m), unsafe_path);
        assert!(e.to_string().contains("symlink"), "{e}");
    }
    assert!(xattr::get("/tmp", "trusted.overlay.opaque").unwrap().is_none());
}

#[test]
fn symlinks_climbing_out_are_refused_when_made() {
    for target in ["..", "../..", "../../../../../../etc", "a/../../x", "./.."] {
        let m = marker();
        let tar = Tb::new()
            .symlink("evil", target)
            .file(&format!("evil/{m}"), b"x")
            .finish();
        refused(
            &m,
            &tar,
            |e| matches!(e, LayerError::UnsafePath { reason, .. } if reason.contains("outside")),
        );
    }
    // One level down, `..` is fine; two are not.
    let sb = Sandbox::new();
    unpack(
        &Tb::new().dir("usr/").symlink("usr/up", "../bin").finish()[..],
        &sb.target,
    )
    .unwrap();
    let m = marker();
    refused(
        &m,
        &Tb::new().dir("usr/").symlink("usr/up", "../../bin").finish(),
        unsafe_path,
    );
}

#[test]
fn hardlinks_to_outside() {
    let nlink = |p: &str| std::os::unix::fs::MetadataExt::nlink(&std::fs::metadata(p).unwrap());
    let (passwd, shadow) = (nlink("/etc/passwd"), nlink("/etc/shadow"));
    for target in ["../../etc/shadow", "/etc/passwd", "a/../../../etc/passwd"] {
        let m = marker();
        let tar = Tb::new().hardlink(&m, target).finish();
        refused(&m, &tar, unsafe_path);
    }
    // Through a symlink the layer made.
    let m = marker();
    let tar = Tb::new().symlink("etc", "/etc").hardlink(&m, "etc/passwd").finish();
    refused(&m, &tar, unsafe_path);
    let m = marker();
    let tar = Tb::new().symlink("up", "/").hardlink(&m, "up/etc/shadow").finish();
    refused(&m, &tar, unsafe_path);
    assert_eq!((nlink("/etc/passwd"), nlink("/etc/shadow")), (passwd, shadow));
}

#[test]
fn a_file_over_a_symlink_replaces_the_link() {
    // Not an escape to refuse: tar's "later wins". The link is removed, not followed.
    let m = marker();
    let host = format!("/tmp/{m}");
    let sb = Sandbox::new();
    let before = sb.outside();
    let tar = Tb::new()
        .symlink("x", &host)
        .file("x", b"in the layer")
        .symlink("d", "/tmp")
        .dir("d/")
        .file(&format!("d/{m}"), b"also in the layer")
        .symlink("h", &host)
        .hardlink("h2", "h")
        .finish();
    unpack(&tar[..], &sb.target).unwrap();
    assert_untouched(&sb, &before, &m);
    assert!(std::fs::symlink_metadata(sb.target.join("x")).unwrap().is_file());
    assert_eq!(std::fs::read(sb.target.join("x")).unwrap(), b"in the layer");
    assert!(std::fs::symlink_metadata(sb.target.join("d")).unwrap().is_dir());
    assert!(sb.target.join("d").join(&m).is_file());
    // A hardlink to a symlink links the symlink itself.
    assert!(
        std::fs::symlink_metadata(sb.target.join("h2"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn deep_symlink_chains() {
    // l0 -> l1 -> ... -> l39 -> /tmp, then l0/x; and a loop.
    let m = marker();
    let mut tb = Tb::new();
    for i in 0..40 {
        let target = if i == 39 {
            "/tmp".to_string()
        } else {
            format!("l{}", i + 1)
        };
        tb.symlink(&format!("l{i}"), &target);
    }
    tb.file(&format!("l0/{m}"), b"x");
    refused(&m, &tb.finish(), unsafe_path);

    let m = marker();
    let tar = Tb::new()
        .symlink("a", "b")
        .symlink("b", "a")
        .file(&format!("a/{m}"), b"x")
        .finish();
    refused(&m, &tar, unsafe_path);
}

#[test]
fn whiteouts_of_odd_names_and_non_directories_at_the_root() {
    for tar in [
        Tb::new().file(".wh...", b"").finish(),
        Tb::new().file(".wh..", b"").finish(),
        Tb::new().file("../.wh.x", b"").finish(),
        Tb::new().symlink("./", "/").finish(),
        Tb::new().file(".", b"x").finish(),
    ] {
        let m = marker();
        refused(&m, &tar, unsafe_path);
    }
}

/// A reader that never ends: a header and then zeros for ever.
fn endless(head: Vec<u8>) -> impl Read {
    std::io::Cursor::new(head).chain(std::io::repeat(0))
}

#[test]
fn giant_extended_headers_are_refused_before_being_read() {
    for kind in [
        ::tar::EntryType::XHeader,
        ::tar::EntryType::GNULongName,
        ::tar::EntryType::XGlobalHeader,
    ] {
        let mut h = ::tar::Header::new_ustar();
        h.as_old_mut().name[..10].copy_from_slice(b"PaxHeaders");
        h.set_entry_type(kind);
        h.set_size(8 << 30);
        h.set_cksum();
        let sb = Sandbox::new();
        let started = Instant::now();
        let e = unpack(endless(h.as_bytes().to_vec()), &sb.target).unwrap_err();
        assert!(matches!(e, LayerError::Malformed { .. }), "{e}");
        assert!(e.to_string().contains("limit"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5), "it read the header");
    }
    // Gzip of such a header: small input, giant output, same answer.
    let mut h = ::tar::Header::new_ustar();
    h.set_entry_type(::tar::EntryType::XHeader);
    h.set_size(1 << 40);
    h.set_cksum();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, h.as_bytes()).unwrap();
    std::io::copy(&mut std::io::repeat(0).take(64 << 20), &mut gz).unwrap();
    let gz = gz.finish().unwrap();
    let sb = Sandbox::new();
    let e = unpack(&gz[..], &sb.target).unwrap_err();
    assert!(matches!(e, LayerError::Malformed { .. }), "{e}");
}

#[test]
fn header_only_types_carry_no_data_whatever_their_size_says() {
    // Go (Docker) reads no data after a symlink header even if its size field is set, so
    // the bytes after it are the next header: reading them as data would hide an entry
    // from Docker's view of the layer, or show one it does not have.
    let mut tb = Tb::new();
    let mut h = ::tar::Header::new_ustar();
    h.as_old_mut().name[..4].copy_from_slice(b"link");
    h.as_old_mut().linkname[..6].copy_from_slice(b"target");
    h.set_entry_type(::tar::EntryType::Symlink);
    h.set_size(512);
    h.set_cksum();
    tb.b.append(&h, &[][..]).unwrap();
    tb.file("visible", b"seen by docker");
    let tar = tb.finish();
    let sb = Sandbox::new();
    unpack(&tar[..], &sb.target).unwrap();
    assert_eq!(std::fs::read(sb.target.join("visible")).unwrap(), b"seen by docker");
}
