//! mount(2) onto descriptors: a target is opened inside the root first (see `fs`), then
//! mounted on through /proc/self/fd, so nothing can swap the path in between.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};

use super::fs::fd_path;

pub fn mount_on(
    source: Option<&Path>,
    target: &OwnedFd,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), Errno> {
    mount(source, &fd_path(target), fstype, flags, data)
}
