//! A playground's storage quota: its directory (every node's writable layer, its Engine
//! API socket, its files) is an ext4 filesystem of its own, in a sparse image file on a
//! loop device. A learner who fills it gets ENOSPC from their own filesystem; the host's
//! disk and the other playgrounds do not notice.
//!
//! Made with `mkfs.ext4` and `mount -o loop` (e2fsprogs and util-linux): lazy
//! initialisation makes a 5 GiB filesystem in a few milliseconds, and the loop device is
//! released by the unmount (autoclear).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!("{:?} failed: {}", cmd, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Mounts a fresh filesystem of `size_mib` at `dir`, backed by `image` (created here).
pub fn create(image: &Path, dir: &Path, size_mib: u64) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let file = std::fs::File::create(image).with_context(|| format!("creating {}", image.display()))?;
    file.set_len(size_mib * 1024 * 1024)?;
    drop(file);
    run(Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-m",
            "0",
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1",
            "-L",
            "slipway-pg",
        ])
        .arg(image))?;
    run(Command::new("mount")
        .args(["-o", "loop,nodev,nosuid"])
        .arg(image)
        .arg(dir))
}

/// Unmounts `dir` (lazily if something still holds it) and deletes `image`.
pub fn remove(image: &Path, dir: &Path) {
    if is_mounted(dir) {
        let _ = run(Command::new("umount").arg(dir)).or_else(|_| run(Command::new("umount").arg("-l").arg(dir)));
    }
    let _ = std::fs::remove_file(image);
}

fn is_mounted(dir: &Path) -> bool {
    let target = dir.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(&*target))
}
