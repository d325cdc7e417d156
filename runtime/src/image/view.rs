//! An image's file tree read straight from its unpacked layers, without mounting anything:
//! the builder needs it to see what a COPY destination is, to resolve `USER name` from
//! /etc/passwd, and to copy files out of another stage. Whiteouts (character devices 0:0)
//! hide lower entries and opaque directories hide everything below them, as overlayfs
//! does; symlinks are followed inside the image's root, never on the host.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// The layers, topmost first.
#[derive(Debug, Clone)]
pub struct MergedView {
    layers: Vec<PathBuf>,
}

/// Where a path was found.
#[derive(Debug, Clone)]
pub struct Found {
    /// The host path of the entry in the layer that provides it.
    pub host: PathBuf,
    /// The path inside the image, with symlinks resolved.
    pub path: PathBuf,
    pub metadata: std::fs::Metadata,
}

fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    for name in ["trusted.overlay.opaque", "user.overlay.opaque"] {
        if let Ok(Some(v)) = xattr::get(dir, name)
            && v == b"y"
        {
            return true;
        }
    }
    false
}

const MAX_LINKS: usize = 40;

impl MergedView {
    pub fn new(layers: Vec<PathBuf>) -> MergedView {
        MergedView { layers }
    }

    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
    }

    /// The entry at `path` exactly (no symlink resolution of any component), as the
    /// merged tree shows it.
    fn entry(&self, path: &Path) -> Option<Found> {
        let rel = path.strip_prefix("/").unwrap_or(path);
        let components: Vec<_> = rel.components().filter(|c| matches!(c, Component::Normal(_))).collect();
        for layer in &self.layers {
            if components.is_empty() {
                let metadata = std::fs::symlink_metadata(layer).ok()?;
                return Some(Found {
                    host: layer.clone(),
                    path: PathBuf::from("/"),
                    metadata,
                });
            }
            let mut cur = layer.clone();
            // An opaque directory on the way hides what lower layers hold below it.
            let mut hides_lower = false;
            for (i, c) in components.iter().enumerate() {
                cur.push(c);
                match std::fs::symlink_metadata(&cur) {
                    Err(_) => break,
                    Ok(m) if is_whiteout(&m) => return None,
                    Ok(metadata) if i == components.len() - 1 => {
                        return Some(Found {
                            host: cur,
                            path: Path::new("/").join(rel),
                            metadata,
                        });
                    }
                    // A file (or link) here shadows anything lower layers have below it.
                    Ok(m) if !m.is_dir() => return None,
                    Ok(_) => hides_lower |= is_opaque(&cur),
                }
            }
            if hides_lower {
                return None;
            }
        }
        None
    }

    /// Resolves `path` inside the image, following symlinks (absolute ones from the image's
    /// root) like the kernel would in a container; `follow_last` decides for the final one.
    pub fn resolve(&self, path: &Path, follow_last: bool) -> Option<Found> {
        let mut todo: Vec<OsString> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect();
        todo.reverse();
        let mut current = PathBuf::from("/");
        let mut links = 0;
        let mut found = self.entry(Path::new("/"));
        while let Some(name) = todo.pop() {
            if name == ".." {
                current.pop();
                found = self.entry(&current);
                continue;
            }
            let candidate = current.join(&name);
            let entry = self.entry(&candidate)?;
            let last = todo.is_empty();
            if entry.metadata.file_type().is_symlink() && (!last || follow_last) {
                links += 1;
                if links > MAX_LINKS {
                    return None;
                }
                let target = std::fs::read_link(&entry.host).ok()?;
                let mut parts: Vec<OsString> = target
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(n) => Some(n.to_os_string()),
                        Component::ParentDir => Some("..".into()),
                        _ => None,
                    })
                    .collect();
                if target.is_absolute() {
                    current = PathBuf::from("/");
                }
                parts.reverse();
                todo.extend(parts);
                found = self.entry(&current);
                continue;
            }
            current = candidate;
            found = Some(entry);
        }
        found
    }

    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let found = self.resolve(path, true)?;
        std::fs::read(found.host).ok()
    }

    pub fn is_dir(&self, path: &Path) -> bool {
        self.resolve(path, true).is_some_and(|f| f.metadata.is_dir())
    }

    /// A directory's entries as the merged tree shows them: name -> providing host path.
    pub fn list(&self, dir: &Path) -> BTreeMap<OsString, PathBuf> {
        let mut out = BTreeMap::new();
        let mut hidden = std::collections::HashSet::new();
        let Some(resolved) = self.resolve(dir, true) else {
            return out;
        };
        let rel = resolved.path.strip_prefix("/").unwrap_or(&resolved.path).to_path_buf();
        for layer in &self.layers {
            let d = layer.join(&rel);
            let Ok(meta) = std::fs::symlink_metadata(&d) else {
                continue;
            };
            if !meta.is_dir() {
                break;
            }
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let name = e.file_name();
                if out.contains_key(&name) || hidden.contains(&name) {
                    continue;
                }
                match e.metadata() {
                    Ok(m) if is_whiteout(&m) => {
                        hidden.insert(name);
                    }
                    Ok(_) => {
                        out.insert(name, e.path());
                    }
                    Err(_) => {}
                }
            }
            if is_opaque(&d) {
                break;
            }
        }
        out
    }

    /// Looks a user up in the image's /etc/passwd: name or number -> (uid, gid).
    pub fn lookup_user(&self, user: &str) -> Option<(u32, u32)> {
        let passwd = String::from_utf8(self.read(Path::new("/etc/passwd")).unwrap_or_default()).unwrap_or_default();
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4 && (f[0] == user || f[2] == user) {
                return Some((f[2].parse().ok()?, f[3].parse().ok()?));
            }
        }
        None
    }

    /// Looks a group up in the image's /etc/group: name or number -> gid.
    pub fn lookup_group(&self, group: &str) -> Option<u32> {
        let text = String::from_utf8(self.read(Path::new("/etc/group")).unwrap_or_default()).unwrap_or_default();
        text.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() >= 3 && (f[0] == group || f[2] == group))
                .then(|| f[2].parse().ok())
                .flatten()
        })
    }

    /// The supplementary groups of a user in the image's /etc/group.
    pub fn groups_of(&self, user: &str) -> Vec<u32> {
        let text = String::from_utf8(self.read(Path::new("/etc/group")).unwrap_or_default()).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                (f.len() >= 4 && f[3].split(',').any(|m| m == user))
                    .then(|| f[2].parse().ok())
                    .flatten()
            })
            .collect()
    }
}
