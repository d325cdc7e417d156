//! The kernel's side of a node's Docker networks: bridges and veths in the node's network
//! namespace, published ports, and the embedded DNS server in each container's namespace.
//!
//! Links are set with iproute2 in batch mode (`ip -batch -`, one process per namespace
//! per container), as the playground's own network is; sockets inside a namespace are made
//! on a short-lived thread that has entered it, since a tokio worker must never change
//! namespace.

pub mod dns;
pub mod link;
pub mod ports;

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

/// Runs `f` on a new thread inside the network namespace at `ns` (`/proc/<pid>/ns/net`).
pub fn in_netns<T: Send + 'static>(
    ns: &Path,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let fd: OwnedFd = nix::fcntl::open(ns, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| std::io::Error::other(format!("opening {}: {e}", ns.display())))?;
    std::thread::spawn(move || {
        nix::sched::setns(&fd, CloneFlags::CLONE_NEWNET)
            .map_err(|e| std::io::Error::other(format!("entering the network namespace: {e}")))?;
        f()
    })
    .join()
    .map_err(|_| std::io::Error::other("the namespace thread panicked"))?
}
