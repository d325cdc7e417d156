//! What a container mounts: `-v` binds and volumes, `--mount`, `--tmpfs`, and the anonymous
//! volumes of `-v /path` and of the image's VOLUME lines. `plan` turns the request into the
//! record's `Mounts` (made once, at create); `oci_mounts` turns those into the runtime's.
//!
//! A bind's source is a path of the NODE's filesystem: it is handed to the runtime as
//! `/proc/<node pid>/root/<path>`, which the runtime resolves inside that root.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bollard_stubs::models::{MountPoint, MountType};
use slipway_runtime::image::store::Image;

use super::super::Node;
use super::super::error::{ApiError, ApiResult};
use super::super::state::ContainerRecord;
use super::super::volumes;

fn bad_mount(msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad(format!("invalid mount config: {msg}"))
}

fn check_destination(dest: &str) -> ApiResult<()> {
    if !dest.starts_with('/') {
        return Err(ApiError::bad(format!(
            "invalid volume specification: '{dest}': invalid mount config for type \"volume\": invalid mount path: '{dest}' mount path must be absolute"
        )));
    }
    if dest == "/" {
        return Err(ApiError::bad("invalid specification: destination can't be '/'"));
    }
    Ok(())
}

fn point(typ: &str, name: Option<String>, source: String, dest: &str, rw: bool, mode: &str) -> MountPoint {
    MountPoint {
        typ: Some(typ.to_string()),
        name,
        source: Some(source),
        destination: Some(dest.to_string()),
        driver: None,
        mode: Some(mode.to_string()),
        rw: Some(rw),
        propagation: Some(if typ == "bind" {
            "rprivate".into()
        } else {
            String::new()
        }),
    }
}

/// Records the container's mounts, creating the volumes it names.
pub fn plan(node: &Arc<Node>, record: &mut ContainerRecord, image: &Image) -> ApiResult<()> {
    let hc = record.host_config.clone();
    let mut mounts: Vec<MountPoint> = Vec::new();
    let taken = |m: &MountPoint, mounts: &Vec<MountPoint>| -> ApiResult<()> {
        if mounts.iter().any(|o| o.destination == m.destination) {
            return Err(ApiError::bad(format!(
                "Duplicate mount point: {}",
                m.destination.as_deref().unwrap_or("")
            )));
        }
        Ok(())
    };
    for bind in hc.binds.iter().flatten() {
        let parts: Vec<&str> = bind.split(':').collect();
        let (src, dest, mode) = match parts.as_slice() {
            [dest] => ("", *dest, ""),
            [src, dest] => (*src, *dest, ""),
            [src, dest, mode] => (*src, *dest, *mode),
            _ => return Err(ApiError::bad(format!("invalid volume specification: '{bind}'"))),
        };
        check_destination(dest)?;
        let ro = mode.split(',').any(|m| m == "ro");
        let m = if src.is_empty() {
            let v = volumes::create_anonymous(node)?;
            point("volume", Some(v.name.clone()), String::new(), dest, !ro, mode)
        } else if src.starts_with('/') {
            // `-v` makes a missing source directory (in the node), as Docker does.
            if !node_path_exists(node, src)? {
                make_node_dir(node, src)?;
            }
            point("bind", None, clean(src), dest, !ro, mode)
        } else {
            let (v, _) = volumes::ensure(node, src)?;
            point("volume", Some(v.name.clone()), String::new(), dest, !ro, mode)
        };
        taken(&m, &mounts)?;
        mounts.push(m);
    }
    for mount in hc.mounts.iter().flatten() {
        let dest = mount.target.clone().unwrap_or_default();
        check_destination(&dest)?;
        let ro = mount.read_only.unwrap_or(false);
        let m = match mount.typ {
            Some(MountType::BIND) => {
                let src = mount.source.clone().unwrap_or_default();
                if !src.starts_with('/') {
                    return Err(bad_mount(format!(
                        "invalid mount config for type \"bind\": invalid mount path: '{src}' mount path must be absolute"
                    )));
                }
                if !node_path_exists(node, &src)? {
                    return Err(bad_mount(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {src}"
                    )));
                }
                point("bind", None, clean(&src), &dest, !ro, "")
            }
            Some(MountType::VOLUME) | None => {
                let name = mount.source.clone().unwrap_or_default();
                let v = if name.is_empty() {
                    volumes::create_anonymous(node)?
                } else {
                    volumes::ensure(node, &name)?.0
                };
                let mut p = point("volume", Some(v.name.clone()), String::new(), &dest, !ro, "z");
                if mount.volume_options.as_ref().and_then(|o| o.no_copy) == Some(true) {
                    p.mode = Some("z,nocopy".into());
                }
                p
            }
            Some(MountType::TMPFS) => point("tmpfs", None, String::new(), &dest, !ro, ""),
            Some(other) => return Err(bad_mount(format!("mount type \"{other}\" is not supported here"))),
        };
        taken(&m, &mounts)?;
        mounts.push(m);
    }
    // Anonymous volumes for `-v /path` in Volumes and the image's VOLUME, unless
    // something else is mounted there already.
    let tmpfs: Vec<String> = hc.tmpfs.clone().unwrap_or_default().into_keys().collect();
    for dest in record.config.volumes.clone().unwrap_or_default() {
        if mounts.iter().any(|m| m.destination.as_deref() == Some(dest.as_str())) || tmpfs.contains(&dest) {
            continue;
        }
        check_destination(&dest)?;
        let v = volumes::create_anonymous(node)?;
        mounts.push(point("volume", Some(v.name.clone()), String::new(), &dest, true, ""));
    }
    // Fill each volume's Source with where Docker would keep it, for `inspect`.
    for m in &mut mounts {
        if m.typ.as_deref() == Some("volume") {
            m.source = Some(format!(
                "/var/lib/docker/volumes/{}/_data",
                m.name.as_deref().unwrap_or("")
            ));
            m.driver = Some("local".into());
        }
    }
    // A volume still empty gets the image's files at its mount path, as Docker copies them.
    let layers = node.engine.images.lower_dirs(image);
    for m in &mounts {
        if let (Some("volume"), Some(name), Some(dest)) =
            (m.typ.as_deref(), m.name.as_deref(), m.destination.as_deref())
            && !m.mode.as_deref().unwrap_or("").split(',').any(|o| o == "nocopy")
        {
            volumes::populate_from_image(node, name, &layers, dest)?;
        }
    }
    record.mounts = mounts;
    Ok(())
}

/// The node's root, opened: paths in it are resolved with RESOLVE_IN_ROOT.
fn node_root(node: &Node) -> ApiResult<std::os::fd::OwnedFd> {
    use nix::fcntl::OFlag;
    let pid = node.node_pid()?;
    nix::fcntl::open(
        format!("/proc/{pid}/root").as_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| ApiError::internal(format!("opening the node's root: {e}")))
}

fn make_node_dir(node: &Node, path: &str) -> ApiResult<()> {
    use std::os::fd::AsFd;
    let root = node_root(node)?;
    slipway_runtime::linux::fs::mkdir_all_in_root(root.as_fd(), Path::new(path), 0o755)
        .map(drop)
        .map_err(|e| ApiError::bad(format!("error while creating mount source path '{path}': {e}")))
}

fn node_path_exists(node: &Node, path: &str) -> ApiResult<bool> {
    use std::os::fd::AsFd;
    let root = node_root(node)?;
    Ok(slipway_runtime::linux::fs::open_in_root(root.as_fd(), Path::new(path), nix::fcntl::OFlag::O_PATH).is_ok())
}

fn clean(path: &str) -> String {
    let p = slipway_runtime::build::builder::normalize(Path::new(path));
    p.to_string_lossy().into_owned()
}

/// The runtime's mounts for a run: binds from the node, volumes from their data dirs,
/// tmpfs from `--tmpfs` and `--mount type=tmpfs`.
pub fn oci_mounts(node: &Node, record: &ContainerRecord) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for m in &record.mounts {
        let dest = m.destination.clone().unwrap_or_default();
        let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
        if m.rw == Some(false) {
            options.push("ro".into());
        }
        let source = match m.typ.as_deref() {
            // The node's files are mounted by `binds` once the container exists.
            Some("bind") => continue,
            Some("volume") => node
                .paths
                .volume_data(m.name.as_deref().unwrap_or(""))
                .to_string_lossy()
                .into_owned(),
            Some("tmpfs") => {
                let mut o = vec!["nosuid".to_string(), "nodev".to_string()];
                if m.rw == Some(false) {
                    o.push("ro".into());
                }
                if let Some(opts) = record
                    .host_config
                    .mounts
                    .iter()
                    .flatten()
                    .find(|x| x.target.as_deref() == Some(dest.as_str()))
                    .and_then(|x| x.tmpfs_options.as_ref())
                {
                    if let Some(size) = opts.size_bytes {
                        o.push(format!("size={size}"));
                    }
                    if let Some(mode) = opts.mode {
                        o.push(format!("mode={mode:o}"));
                    }
                }
                out.push(serde_json::json!({ "destination": dest, "type": "tmpfs", "source": "tmpfs", "options": o }));
                continue;
            }
            _ => continue,
        };
        out.push(serde_json::json!({ "destination": dest, "type": "bind", "source": source, "options": options }));
    }
    let tmpfs: HashMap<String, String> = record.host_config.tmpfs.clone().unwrap_or_default();
    for (dest, opts) in tmpfs {
        let mut o = vec!["nosuid".to_string(), "nodev".to_string(), "noexec".to_string()];
        o.extend(opts.split(',').filter(|s| !s.is_empty()).map(str::to_string));
        out.push(serde_json::json!({ "destination": dest, "type": "tmpfs", "source": "tmpfs", "options": o }));
    }
    out
}
