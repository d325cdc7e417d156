//! A by-hand benchmark: unpacking a 100 MB layer against the disk's write speed.
//!
//! ```text
//! SLIPWAY_BENCH_DIR=/var/tmp cargo test --release -p slipway-runtime \
//!     image::layer::tests::bench -- --ignored --nocapture
//! ```
//! With `SLIPWAY_BENCH_DROP_CACHES=1` the page cache is dropped before each run (root).

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::super::{pack, unpack};

fn bench_dir() -> PathBuf {
    std::env::var_os("SLIPWAY_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"))
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// ~100 MiB: four 16 MiB files (incompressible) and 4000 small ones (1 to 17 KiB, text
/// compressing about 3:1) in 40 directories, plus a few hundred symlinks.
fn make_tree(root: &Path) -> u64 {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut total = 0u64;
    std::fs::create_dir(root.join("big")).unwrap();
    let mut buf = vec![0u8; 16 << 20];
    for i in 0..4 {
        rng.fill(&mut buf);
        std::fs::write(root.join(format!("big/blob{i}")), &buf).unwrap();
        total += buf.len() as u64;
    }
    let words = [
        "layer", "overlay", "whiteout", "slipway", "docker", "image", "tar", "root", "\n",
    ];
    for d in 0..40 {
        let dir = root.join(format!("usr/share/d{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            let len = 1024 + (rng.next() % (16 * 1024)) as usize;
            let mut text = Vec::with_capacity(len + 16);
            while text.len() < len {
                text.extend_from_slice(words[(rng.next() % words.len() as u64) as usize].as_bytes());
                text.push(if rng.next().is_multiple_of(5) {
                    b'0' + (rng.next() % 10) as u8
                } else {
                    b' '
                });
            }
            std::fs::write(dir.join(format!("file{f:03}.txt")), &text).unwrap();
            total += text.len() as u64;
            if f % 10 == 0 {
                std::os::unix::fs::symlink(format!("file{f:03}.txt"), dir.join(format!("link{f:03}"))).unwrap();
            }
        }
    }
    total
}

fn syncfs(dir: &Path) {
    let f = File::open(dir).unwrap();
    assert_eq!(unsafe { libc::syncfs(f.as_raw_fd()) }, 0);
}

fn drop_caches() {
    if std::env::var_os("SLIPWAY_BENCH_DROP_CACHES").is_some() {
        syncfs(Path::new("/"));
        std::fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
    }
}

fn mb_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

#[test]
#[ignore = "a benchmark, run by hand in release mode"]
fn unpack_100mb_layer() {
    let tmp = tempfile::tempdir_in(bench_dir()).unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let content = make_tree(&src);

    let tar_path = tmp.path().join("layer.tar");
    let t = Instant::now();
    let packed = pack(&src, std::io::BufWriter::new(File::create(&tar_path).unwrap())).unwrap();
    let pack_time = t.elapsed();
    let gz_path = tmp.path().join("layer.tar.gz");
    {
        let mut gz = flate2::write::GzEncoder::new(File::create(&gz_path).unwrap(), flate2::Compression::default());
        std::io::copy(&mut File::open(&tar_path).unwrap(), &mut gz).unwrap();
        gz.finish().unwrap();
    }
    let gz_size = std::fs::metadata(&gz_path).unwrap().len();
    println!(
        "layer: {:.1} MiB tar ({:.1} MiB of file content, 4000 small files, 4 big), {:.1} MiB gzipped",
        packed.size as f64 / (1 << 20) as f64,
        content as f64 / (1 << 20) as f64,
        gz_size as f64 / (1 << 20) as f64
    );
    println!("pack: {:?} ({:.0} MiB/s)", pack_time, mb_s(packed.size, pack_time));
    std::fs::remove_dir_all(&src).unwrap();

    for (label, path) in [("tar", &tar_path), ("tar.gz", &gz_path)] {
        for round in 0..3 {
            let dst = tmp.path().join(format!("dst-{label}-{round}"));
            std::fs::create_dir(&dst).unwrap();
            drop_caches();
            let t = Instant::now();
            let u = unpack(File::open(path).unwrap(), &dst).unwrap();
            let unpacked = t.elapsed();
            syncfs(&dst);
            let synced = t.elapsed();
            assert_eq!(u.diff_id, packed.diff_id);
            println!(
                "unpack {label:6} round {round}: {:>8.1?} ({:>5.0} MiB/s of tar), with syncfs {:>8.1?} ({:>5.0} MiB/s)",
                unpacked,
                mb_s(u.size, unpacked),
                synced,
                mb_s(u.size, synced)
            );
            std::fs::remove_dir_all(&dst).unwrap();
            syncfs(tmp.path());
        }
    }

    // The disk: 1000 MiB in 1 MiB writes, then fsync (dd bs=1M count=1000 conv=fsync).
    let raw = tmp.path().join("raw");
    let block = vec![0u8; 1 << 20];
    let t = Instant::now();
    let mut f = File::create(&raw).unwrap();
    for _ in 0..1000 {
        f.write_all(&block).unwrap();
    }
    let written = t.elapsed();
    f.sync_all().unwrap();
    let synced = t.elapsed();
    println!(
        "raw write 1000 MiB: {:.0} MiB/s to the page cache, {:.0} MiB/s with fsync",
        mb_s(1000 << 20, written),
        mb_s(1000 << 20, synced)
    );
}
