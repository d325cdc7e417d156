//! `slipway bench images`: the image targets.
//!
//! - A no-op rebuild of the python recipe (every step a cache hit), from writing its
//!   context to the image ID: target under 100 ms. No peer builder runs offline on this
//!   machine (no Docker, no BuildKit), so the figure stands against the target alone.
//! - Unpacking a 100 MiB layer (4 large incompressible files, 4000 small text files,
//!   symlinks) with Slipway's unpacker against GNU tar extracting the same tar, and
//!   against writing the same number of bytes to one file (the disk's write speed), each
//!   followed by syncfs; medians of interleaved rounds, as ratios.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::catalog::Catalog;

pub struct Options {
    pub rebuilds: usize,
    pub rounds: usize,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    pub rebuild_median_ms: f64,
    pub rebuild_p90_ms: f64,
    pub rebuilds: usize,
    pub layer_tar_mib: f64,
    pub unpack_slipway_ms: f64,
    pub unpack_gnu_tar_ms: f64,
    pub raw_write_ms: f64,
    pub slipway_mib_s: f64,
    pub gnu_tar_mib_s: f64,
    pub raw_write_mib_s: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn p90(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() * 9 / 10).min(v.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn syncfs(dir: &Path) -> Result<()> {
    let f = File::open(dir)?;
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        bail!("syncfs {}: {}", dir.display(), std::io::Error::last_os_error());
    }
    Ok(())
}

pub async fn run(catalog: &Catalog, options: &Options) -> Result<Figures> {
    // The rebuild: python (and debian under it) must be in the store first.
    let missing = !catalog.has("python:3.13");
    if missing {
        eprintln!("bench: building python first (slipway images ensure python)");
        catalog
            .ensure(&["python".to_string()], std::sync::Arc::new(|_: &str, _: &str| {}))
            .await?;
    }
    let warm = catalog.rebuild("python").await?;
    let mut rebuilds = Vec::new();
    for _ in 0..options.rebuilds {
        let t = Instant::now();
        let id = catalog.rebuild("python").await?;
        rebuilds.push(ms(t.elapsed()));
        if id != warm {
            bail!("a rebuild made a different image ({id} after {warm}): the cache missed");
        }
    }

    // The layer, in the store's filesystem.
    let dir = catalog.store.temp_dir("bench-layer")?;
    let result = unpack_figures(&dir, options.rounds);
    let _ = std::fs::remove_dir_all(&dir);
    let (tar_bytes, slipway, gnu, raw) = result?;
    let (mut slipway, mut gnu, mut raw) = (slipway, gnu, raw);
    let mib = tar_bytes as f64 / (1 << 20) as f64;
    let (s, g, r) = (median(&mut slipway), median(&mut gnu), median(&mut raw));
    Ok(Figures {
        rebuild_median_ms: median(&mut rebuilds.clone()),
        rebuild_p90_ms: p90(&mut rebuilds),
        rebuilds: options.rebuilds,
        layer_tar_mib: mib,
        unpack_slipway_ms: s,
        unpack_gnu_tar_ms: g,
        raw_write_ms: r,
        slipway_mib_s: mib / (s / 1000.0),
        gnu_tar_mib_s: mib / (g / 1000.0),
        raw_write_mib_s: mib / (r / 1000.0),
    })
}

type Rounds = (u64, Vec<f64>, Vec<f64>, Vec<f64>);

fn unpack_figures(dir: &Path, rounds: usize) -> Result<Rounds> {
    let src = dir.join("src");
    std::fs::create_dir(&src)?;
    make_tree(&src)?;
    let tar_path = dir.join("layer.tar");
    let packed = slipway_runtime::image::layer::pack(&src, std::io::BufWriter::new(File::create(&tar_path)?))?;
    std::fs::remove_dir_all(&src)?;
    syncfs(dir)?;
    let block = vec![0x5au8; 1 << 20];
    let (mut slipway, mut gnu, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        // Slipway's unpacker.
        let dst = dir.join(format!("slipway-{round}"));
        std::fs::create_dir(&dst)?;
        let t = Instant::now();
        let u = slipway_runtime::image::layer::unpack(
            std::io::BufReader::with_capacity(1 << 20, File::open(&tar_path)?),
            &dst,
        )?;
        syncfs(&dst)?;
        slipway.push(ms(t.elapsed()));
        if u.diff_id != packed.diff_id {
            bail!("the unpacked layer's digest differs from the packed one");
        }
        std::fs::remove_dir_all(&dst)?;
        syncfs(dir)?;

        // GNU tar on the same file.
        let dst = dir.join(format!("tar-{round}"));
        std::fs::create_dir(&dst)?;
        let t = Instant::now();
        let status = Command::new("tar")
            .args(["--numeric-owner", "--xattrs", "-xpf"])
            .arg(&tar_path)
            .arg("-C")
            .arg(&dst)
            .status()
            .context("running tar")?;
        syncfs(&dst)?;
        gnu.push(ms(t.elapsed()));
        if !status.success() {
            bail!("tar -x failed: {status}");
        }
        std::fs::remove_dir_all(&dst)?;
        syncfs(dir)?;

        // The same bytes into one file: the disk's write speed.
        let path = dir.join(format!("raw-{round}"));
        let t = Instant::now();
        let mut f = File::create(&path)?;
        let mut left = packed.size as usize;
        while left > 0 {
            let n = left.min(block.len());
            f.write_all(&block[..n])?;
            left -= n;
        }
        f.sync_all()?;
        raw.push(ms(t.elapsed()));
        std::fs::remove_file(&path)?;
        syncfs(dir)?;
    }
    Ok((packed.size, slipway, gnu, raw))
}

/// ~100 MiB: four 16 MiB files of pseudo-random bytes, 4000 small text files in 40
/// directories, a symlink for every tenth.
fn make_tree(root: &Path) -> Result<()> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    std::fs::create_dir(root.join("big"))?;
    let mut buf = vec![0u8; 16 << 20];
    for i in 0..4 {
        for chunk in buf.chunks_mut(8) {
            chunk.copy_from_slice(&next().to_le_bytes()[..chunk.len()]);
        }
        std::fs::write(root.join(format!("big/blob{i}")), &buf)?;
    }
    let words = [
        "layer", "overlay", "whiteout", "slipway", "docker", "image", "tar", "root", "\n",
    ];
    for d in 0..40 {
        let dir = root.join(format!("usr/share/d{d:02}"));
        std::fs::create_dir_all(&dir)?;
        for f in 0..100 {
            let len = 1024 + (next() % (16 * 1024)) as usize;
            let mut text = Vec::with_capacity(len + 16);
            while text.len() < len {
                text.extend_from_slice(words[(next() % words.len() as u64) as usize].as_bytes());
                text.push(b' ');
            }
            std::fs::write(dir.join(format!("file{f:03}.txt")), &text)?;
            if f % 10 == 0 {
                std::os::unix::fs::symlink(format!("file{f:03}.txt"), dir.join(format!("link{f:03}")))?;
            }
        }
    }
    Ok(())
}

pub fn print(f: &Figures) {
    println!(
        "no-op rebuild of the python recipe ({} runs, all cache hits):",
        f.rebuilds
    );
    println!(
        "  median {:.1} ms, p90 {:.1} ms (target: under 100 ms) -> {}",
        f.rebuild_median_ms,
        f.rebuild_p90_ms,
        if f.rebuild_median_ms < 100.0 { "met" } else { "MISSED" }
    );
    println!("unpacking a {:.0} MiB layer, then syncfs (medians):", f.layer_tar_mib);
    println!(
        "  slipway   {:>8.0} ms {:>6.0} MiB/s",
        f.unpack_slipway_ms, f.slipway_mib_s
    );
    println!(
        "  GNU tar   {:>8.0} ms {:>6.0} MiB/s",
        f.unpack_gnu_tar_ms, f.gnu_tar_mib_s
    );
    println!(
        "  raw write {:>8.0} ms {:>6.0} MiB/s (one file, same bytes, fsync)",
        f.raw_write_ms, f.raw_write_mib_s
    );
    println!(
        "  slipway/tar time ratio {:.2}; slipway reaches {:.0}% of the disk's write speed",
        f.unpack_slipway_ms / f.unpack_gnu_tar_ms,
        100.0 * f.raw_write_ms / f.unpack_slipway_ms
    );
}
