//! A server that can make playgrounds: the catalog's image store (for `slipway/node`),
//! playground limits from a `slipway.toml`, and a cgroup root of its own, removed (with
//! every playground) when the test ends, even when it fails.

use std::path::PathBuf;

use crate::{Server, repo};

/// The catalog's image store (`$SLIPWAY_CATALOG_DIR/images`), built by scripts/test.sh.
pub fn catalog_images() -> PathBuf {
    let dir = std::env::var_os("SLIPWAY_CATALOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/slipway/catalog"));
    let images = dir.join("images");
    assert!(
        images.is_dir(),
        "no catalog at {}: run scripts/test.sh (or slipway images --data-dir {} ensure)",
        dir.display(),
        dir.display()
    );
    images
}

pub struct LabServer {
    pub server: Server,
    pub cgroup_root: String,
    _config: tempfile::TempDir,
}

impl LabServer {
    /// `limits`: lines of the `[playgrounds]` table (`pids = 256`).
    pub fn start(limits: &str) -> LabServer {
        Self::start_on(&repo().join("lessons"), limits)
    }

    /// As [`LabServer::start`], serving the lessons in `lessons`.
    pub fn start_on(lessons: &std::path::Path, limits: &str) -> LabServer {
        let config = tempfile::Builder::new()
            .prefix("slipway-test-config-")
            .tempdir()
            .unwrap();
        let path = config.path().join("slipway.toml");
        std::fs::write(&path, format!("[playgrounds]\n{limits}\n")).unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let cgroup_root = format!("slipway-test-pg-{}-{nanos:x}", std::process::id());
        let images = catalog_images();
        let server = Server::start_with(
            lessons,
            &[
                ("SLIPWAY_IMAGES", images.to_str().unwrap()),
                ("SLIPWAY_CONFIG", path.to_str().unwrap()),
                ("SLIPWAY_CGROUP_ROOT", &cgroup_root),
            ],
        );
        LabServer {
            server,
            cgroup_root,
            _config: config,
        }
    }
}

impl Drop for LabServer {
    fn drop(&mut self) {
        self.server.remove_playgrounds();
        for h in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            let _ = std::fs::remove_dir(h.path().join(&self.cgroup_root));
        }
    }
}
