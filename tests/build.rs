//! Builds slipway-probe, the static helper that runtime tests put into their root
//! filesystems. rustc alone, std only, statically linked, so it needs nothing in the rootfs.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let source = PathBuf::from("probe/probe.rs");
    println!("cargo:rerun-if-changed={}", source.display());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "-C",
            "opt-level=2",
            "-C",
            "target-feature=+crt-static",
            "-C",
            "panic=abort",
            "-C",
            "strip=debuginfo",
            "-o",
        ])
        .arg(out.join("slipway-probe"))
        .arg(&source)
        .status()
        .expect("running rustc for slipway-probe");
    assert!(status.success(), "building slipway-probe failed");
    println!("cargo:rustc-env=SLIPWAY_PROBE={}", out.join("slipway-probe").display());
}
