//! Unix socket paths of any length.
//!
//! `sun_path` holds 108 bytes, and a state directory under a deep data directory plus a
//! 64-character container ID does not fit. A longer path is reached through
//! `/proc/self/fd/N/<name>`, N an open descriptor of its directory, as runc does for its
//! console socket.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The longest path passed to bind/connect as it is (sun_path less its NUL, with room).
const MAX_DIRECT: usize = 100;

/// A path for bind or connect; keep it alive until the call returns.
pub struct SocketPath {
    _dir: Option<OwnedFd>,
    path: PathBuf,
}

impl SocketPath {
    pub fn new(path: &Path) -> std::io::Result<SocketPath> {
        if path.as_os_str().len() <= MAX_DIRECT {
            return Ok(SocketPath {
                _dir: None,
                path: path.to_path_buf(),
            });
        }
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "socket path has no directory",
            ));
        };
        let dir: OwnedFd = std::fs::File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(parent)?
            .into();
        let path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
        Ok(SocketPath { _dir: Some(dir), path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_bind_and_connect() {
        let base = tempfile::tempdir().unwrap();
        let deep = base.path().join("d".repeat(60)).join("e".repeat(64));
        std::fs::create_dir_all(&deep).unwrap();
        let sock = deep.join("monitor.sock");
        assert!(sock.as_os_str().len() > 108);
        let p = SocketPath::new(&sock).unwrap();
        let listener = std::os::unix::net::UnixListener::bind(p.path()).unwrap();
        assert!(sock.exists(), "the socket is where it was asked for");
        let c = SocketPath::new(&sock).unwrap();
        let _client = std::os::unix::net::UnixStream::connect(c.path()).unwrap();
        listener.accept().unwrap();
    }
}
