//! Volumes of the local driver: a directory each on the playground's storage.

use std::collections::HashMap;

use super::Node;
use super::error::{ApiError, ApiResult};
use super::state::{State, VolumeRecord, new_id, now};

/// A new anonymous volume (`-v /data`, an image's VOLUME).
pub fn create_anonymous(node: &Node) -> ApiResult<VolumeRecord> {
    let name = new_id();
    let v = VolumeRecord {
        name: name.clone(),
        driver: "local".into(),
        labels: HashMap::from([("com.docker.volume.anonymous".to_string(), String::new())]),
        options: HashMap::new(),
        created_at: now(),
        anonymous: true,
    };
    State::save_volume(&node.paths, &v)?;
    node.state().volumes.insert(name.clone(), v.clone());
    node.emit("volume", "create", &name, [("driver".to_string(), "local".to_string())]);
    Ok(v)
}

/// The named volume, made if missing; whether it was made.
pub fn ensure(node: &Node, name: &str) -> ApiResult<(VolumeRecord, bool)> {
    if let Some(v) = node.state().volumes.get(name) {
        return Ok((v.clone(), false));
    }
    if name.len() < 2 || !name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::bad(format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )));
    }
    let v = VolumeRecord {
        name: name.to_string(),
        driver: "local".into(),
        labels: HashMap::new(),
        options: HashMap::new(),
        created_at: now(),
        anonymous: false,
    };
    State::save_volume(&node.paths, &v)?;
    node.state().volumes.insert(name.to_string(), v.clone());
    node.emit("volume", "create", name, [("driver".to_string(), "local".to_string())]);
    Ok((v, true))
}

/// `docker rm -v`: the container's anonymous volumes go with it (if no other container
/// mounts them).
pub fn remove_anonymous_of(node: &Node, rec: &super::state::ContainerRecord) {
    for m in &rec.mounts {
        let Some(name) = m.name.as_deref() else { continue };
        let anonymous = node.state().volumes.get(name).is_some_and(|v| v.anonymous);
        let used = node
            .state()
            .containers
            .values()
            .any(|c| c.id != rec.id && c.mounts.iter().any(|o| o.name.as_deref() == Some(name)));
        if anonymous && !used {
            node.state().volumes.remove(name);
            let _ = std::fs::remove_dir_all(node.paths.volume(name));
            node.emit("volume", "destroy", name, [("driver".to_string(), "local".to_string())]);
        }
    }
}

/// The IDs of the containers (running or not) that mount the volume.
pub fn users(node: &Node, name: &str) -> Vec<String> {
    node.state()
        .containers
        .values()
        .filter(|c| c.mounts.iter().any(|m| m.name.as_deref() == Some(name)))
        .map(|c| c.id.clone())
        .collect()
}

/// `docker volume create`: an existing name gives back the volume it names, as Docker does.
pub fn create(
    node: &Node,
    name: Option<&str>,
    driver: Option<&str>,
    options: HashMap<String, String>,
    labels: HashMap<String, String>,
) -> ApiResult<VolumeRecord> {
    let driver = driver.filter(|d| !d.is_empty()).unwrap_or("local");
    if driver != "local" {
        return Err(ApiError::NotFound(format!(
            "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
        )));
    }
    // The local driver's options mount a filesystem (type=nfs, device=...): a learner's
    // container may not mount anything from the host, so only none are taken.
    if let Some(key) = options.keys().next() {
        return Err(ApiError::Forbidden(format!(
            "volume option {key:?} is not available in a Slipway playground: local volumes are plain directories here"
        )));
    }
    // Without a name it gets a random one, but it is no container's anonymous volume:
    // `volume prune` without --all keeps it, as Docker's does.
    let generated;
    let name = match name.filter(|n| !n.is_empty()) {
        Some(n) => n,
        None => {
            generated = new_id();
            &generated
        }
    };
    if !valid_name(name) {
        return Err(ApiError::bad(format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )));
    }
    let (mut v, made) = ensure(node, name)?;
    if made && !labels.is_empty() {
        v.labels = labels;
        State::save_volume(&node.paths, &v)?;
        node.state().volumes.insert(v.name.clone(), v.clone());
    }
    Ok(v)
}

/// Docker's rule for local volume names.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `docker volume rm`: refused while any container record mounts it, even with force
/// (Docker's force only ignores a missing volume).
pub fn remove(node: &Node, name: &str, force: bool) -> ApiResult<()> {
    if !node.state().volumes.contains_key(name) {
        if force {
            return Ok(());
        }
        return Err(ApiError::no_such_volume(name));
    }
    let users = users(node, name);
    if !users.is_empty() {
        return Err(ApiError::Conflict(format!(
            "remove {name}: volume is in use - [{}]",
            users.join(", ")
        )));
    }
    destroy(node, name);
    Ok(())
}

fn destroy(node: &Node, name: &str) {
    node.state().volumes.remove(name);
    let _ = std::fs::remove_dir_all(node.paths.volume(name));
    node.emit("volume", "destroy", name, [("driver".to_string(), "local".to_string())]);
}

/// `docker volume prune`: unused volumes matching `keep`; anonymous ones only unless `all`.
/// Returns the names removed and the bytes they held.
pub fn prune(node: &Node, all: bool, keep: impl Fn(&VolumeRecord) -> bool) -> (Vec<String>, u64) {
    let candidates: Vec<VolumeRecord> = node
        .state()
        .volumes
        .values()
        .filter(|v| (all || v.anonymous) && keep(v))
        .cloned()
        .collect();
    let mut gone = Vec::new();
    let mut space = 0;
    for v in candidates {
        if !users(node, &v.name).is_empty() {
            continue;
        }
        space += super::api::containers::du(&node.paths.volume_data(&v.name));
        destroy(node, &v.name);
        gone.push(v.name);
    }
    if !gone.is_empty() {
        node.emit("volume", "prune", "", [("reclaimed".to_string(), space.to_string())]);
    }
    (gone, space)
}

/// Copies what the image has at `path` into a volume that is still empty, as Docker does
/// on a volume's first mount (unless `nocopy`). `layers` are the image's layer directories,
/// top first; whiteouts and opaque directories of upper layers hide what lies below.
pub fn populate_from_image(node: &Node, volume: &str, layers: &[std::path::PathBuf], path: &str) -> ApiResult<()> {
    let data = node.paths.volume_data(volume);
    let empty = std::fs::read_dir(&data).map(|mut d| d.next().is_none()).unwrap_or(true);
    if !empty {
        return Ok(());
    }
    let rel: std::path::PathBuf = std::path::Path::new(path)
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    if rel.as_os_str().is_empty() {
        return Ok(());
    }
    populate::merge(layers, &rel, &data)
        .map_err(|e| ApiError::internal(format!("copying the image's {path} into volume {volume}: {e}")))
}

pub mod populate {
    //! Merges overlay layers' view of one directory into a plain directory, never
    //! following a symlink (a layer's `/etc` may be a link to anywhere on the host).

    use std::fs;
    use std::io;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    use std::path::{Component, Path, PathBuf};

    /// Whether `rel` names a real directory under `layer`, no component of it a symlink.
    fn real_dir(layer: &Path, rel: &Path) -> bool {
        let mut p = layer.to_path_buf();
        for c in rel.components() {
            let Component::Normal(n) = c else { return false };
            p.push(n);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                _ => return false,
            }
        }
        true
    }

    fn is_whiteout(m: &fs::Metadata) -> bool {
        m.file_type().is_char_device() && m.rdev() == 0
    }

    fn opaque(p: &Path) -> bool {
        let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
            return false;
        };
        let mut buf = [0u8; 4];
        // SAFETY: the name and buffer are valid for the call; lgetxattr does not follow links.
        let n = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        n == 1 && buf[0] == b'y'
    }

    /// Copies the merged view of `rel` across `layers` (top first) into `dest`.
    pub fn merge(layers: &[PathBuf], rel: &Path, dest: &Path) -> io::Result<()> {
        // The layers that show `rel`: from the top down to the first opaque one, and
        // none under a layer that hides it (whiteout or non-directory).
        let mut shown = Vec::new();
        for layer in layers {
            let p = layer.join(rel);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() && real_dir(layer, rel) => {
                    shown.push(p.clone());
                    if opaque(&p) {
                        break;
                    }
                }
                Ok(_) => break,
                Err(_) => {}
            }
        }
        // Bottom up, so upper layers overwrite.
        for src in shown.iter().rev() {
            copy_tree(src, dest)?;
        }
        Ok(())
    }

    fn copy_tree(src: &Path, dest: &Path) -> io::Result<()> {
        for entry in fs::read_dir(src)? {
            let entry = entry?;
            let m = fs::symlink_metadata(entry.path())?;
            let name = entry.file_name();
            let (from, to) = (entry.path(), dest.join(&name));
            let existing = fs::symlink_metadata(&to).ok();
            if is_whiteout(&m) || name.as_encoded_bytes().starts_with(b".wh.") {
                let hidden = name.to_string_lossy().trim_start_matches(".wh.").to_string();
                let target = if is_whiteout(&m) { to.clone() } else { dest.join(hidden) };
                remove_any(&target);
                continue;
            }
            if m.is_dir() {
                if existing.as_ref().is_some_and(|e| !e.is_dir()) || (existing.is_some() && opaque(&from)) {
                    remove_any(&to);
                }
                if fs::symlink_metadata(&to).is_err() {
                    fs::create_dir(&to)?;
                }
                fs::set_permissions(&to, fs::Permissions::from_mode(m.mode() & 0o7777))?;
                std::os::unix::fs::lchown(&to, Some(m.uid()), Some(m.gid()))?;
                copy_tree(&from, &to)?;
                continue;
            }
            if existing.is_some() {
                remove_any(&to);
            }
            if m.file_type().is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
            } else if m.is_file() {
                fs::copy(&from, &to)?;
                fs::set_permissions(&to, fs::Permissions::from_mode(m.mode() & 0o7777))?;
            } else {
                // Devices, sockets and fifos are not worth a volume's copy.
                continue;
            }
            std::os::unix::fs::lchown(&to, Some(m.uid()), Some(m.gid()))?;
        }
        Ok(())
    }

    fn remove_any(p: &Path) {
        match fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => {
                let _ = fs::remove_dir_all(p);
            }
            Ok(_) => {
                let _ = fs::remove_file(p);
            }
            Err(_) => {}
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn upper_layers_win_and_links_are_kept_not_followed() {
            let t = tempfile::tempdir().unwrap();
            let (low, up, out) = (t.path().join("low"), t.path().join("up"), t.path().join("out"));
            for d in [&low, &up, &out] {
                fs::create_dir_all(d.join("etc")).unwrap();
            }
            fs::write(low.join("etc/a"), "low").unwrap();
            fs::write(low.join("etc/b"), "low").unwrap();
            fs::write(up.join("etc/a"), "up").unwrap();
            std::os::unix::fs::symlink("/etc/shadow", up.join("etc/link")).unwrap();
            // A layer whose path is a link elsewhere shows nothing.
            let other = t.path().join("other");
            fs::create_dir_all(other.join("x")).unwrap();
            fs::write(other.join("x/secret"), "s").unwrap();
            std::os::unix::fs::symlink(other.join("x"), other.join("etc")).unwrap();
            merge(&[up.clone(), low.clone(), other.clone()], Path::new("etc"), &out).unwrap();
            assert_eq!(fs::read_to_string(out.join("a")).unwrap(), "up");
            assert_eq!(fs::read_to_string(out.join("b")).unwrap(), "low");
            assert_eq!(fs::read_link(out.join("link")).unwrap(), Path::new("/etc/shadow"));
            assert!(!out.join("secret").exists());
        }
    }
}

/// Docker's `volume mount` events for a container's start (one per volume it mounts), for
/// the start path to call once the container runs.
pub fn emit_mounts(node: &Node, rec: &super::state::ContainerRecord) {
    for m in rec.mounts.iter().filter(|m| m.typ.as_deref() == Some("volume")) {
        let Some(name) = m.name.as_deref() else { continue };
        node.emit(
            "volume",
            "mount",
            name,
            [
                ("container".to_string(), rec.id.clone()),
                ("destination".to_string(), m.destination.clone().unwrap_or_default()),
                ("driver".to_string(), "local".to_string()),
                ("propagation".to_string(), m.propagation.clone().unwrap_or_default()),
                ("read/write".to_string(), (m.rw != Some(false)).to_string()),
            ],
        );
    }
}
