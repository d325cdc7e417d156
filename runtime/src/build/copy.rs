//! COPY and ADD: a new layer holding the copied files, with Docker's rules for
//! destinations (a trailing slash or several sources make a directory; a directory's
//! contents are copied, not the directory), ownership (root, or --chown), modes (kept, or
//! --chmod), and ADD's extraction of local tar archives.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::builder::{BuildError, normalize};
use super::context::Context;
use crate::image::view::MergedView;

#[derive(Debug, Clone)]
pub enum Source {
    /// A path relative to the build context.
    Context(PathBuf),
    /// A path inside another stage or image (`--from`), resolved.
    Image(PathBuf),
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub sources: Vec<Source>,
    /// Heredoc files: (name, content).
    pub inline: Vec<(String, Vec<u8>)>,
    /// Absolute, normalised.
    pub dest: PathBuf,
    /// The destination was written with a trailing slash, or there are several sources.
    pub dest_is_dir_hint: bool,
    pub owner: Option<(u32, u32)>,
    pub mode: Option<u32>,
}

fn err(what: &str, path: &Path, e: impl std::fmt::Display) -> BuildError {
    BuildError::Message(format!("{what} {}: {e}", path.display()))
}

/// A COPY destination as an absolute path: relative ones are relative to WORKDIR.
pub fn destination(workdir: &str, dest: &str) -> PathBuf {
    let p = if dest.starts_with('/') {
        PathBuf::from(dest)
    } else {
        Path::new(workdir).join(dest)
    };
    normalize(&p)
}

/// --chown: "user", "user:group", "uid", "uid:gid", names looked up in the image. A user
/// alone gives the group of the same number, as Docker documents.
pub fn resolve_chown(view: &MergedView, spec: &str) -> Result<(u32, u32), BuildError> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = match u.parse::<u32>() {
        Ok(n) => n,
        Err(_) => view.lookup_user(u).map(|(uid, _)| uid).ok_or_else(|| {
            BuildError::Message(format!(
                "unable to convert uid/gid chown string to host mapping: can't find uid for user {u}: no such user: {u}"
            ))
        })?,
    };
    let gid = match g {
        None => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => view.lookup_group(g).ok_or_else(|| BuildError::Message(format!("unable to convert uid/gid chown string to host mapping: can't find gid for group {g}: no such group: {g}")))?,
        },
    };
    Ok((uid, gid))
}

/// The cache checksum of what a COPY or ADD would copy.
pub fn checksum(context: &Context, from: Option<&MergedView>, plan: &Plan) -> String {
    let mut h = Sha256::new();
    for s in &plan.sources {
        match s {
            Source::Context(rel) => {
                h.update(b"ctx:");
                h.update(context.checksum(std::slice::from_ref(rel)).as_bytes());
            }
            Source::Image(path) => {
                h.update(b"img:");
                if let Some(view) = from {
                    hash_view(view, path, &mut h);
                }
            }
        }
    }
    for (name, content) in &plan.inline {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(content);
    }
    h.update(plan.dest.as_os_str().as_encoded_bytes());
    h.update([plan.dest_is_dir_hint as u8]);
    hex::encode(h.finalize())
}

fn hash_view(view: &MergedView, path: &Path, h: &mut Sha256) {
    let Some(found) = view.resolve(path, false) else { return };
    h.update(path.as_os_str().as_encoded_bytes());
    h.update(found.metadata.mode().to_le_bytes());
    if found.metadata.is_dir() {
        for (name, _) in view.list(path) {
            hash_view(view, &path.join(name), h);
        }
    } else if found.metadata.file_type().is_symlink() {
        if let Ok(t) = std::fs::read_link(&found.host) {
            h.update(t.as_os_str().as_encoded_bytes());
        }
    } else if let Ok(mut f) = std::fs::File::open(&found.host) {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
}

/// The destination with the image's own symlinks on the way resolved (`/var/run` may be a
/// link to `/run`), so the new layer puts files where the container will see them.
fn resolve_in_image(view: &MergedView, path: &Path) -> PathBuf {
    let mut resolved = PathBuf::from("/");
    let comps: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect();
    for (i, c) in comps.iter().enumerate() {
        let next = resolved.join(c);
        match view.resolve(&next, true) {
            Some(found) if found.metadata.is_dir() || i == comps.len() - 1 => resolved = found.path,
            _ => {
                for rest in &comps[i..] {
                    resolved.push(rest);
                }
                return resolved;
            }
        }
    }
    resolved
}

/// Makes `dir` (absolute in the image) exist in `upper`, each missing level taking the
/// image's own metadata where the image has that directory, else 0755 and `owner`.
pub fn make_dirs(upper: &Path, view: &MergedView, dir: &Path, owner: (u32, u32)) -> Result<(), BuildError> {
    let mut image_path = PathBuf::from("/");
    for c in dir.components() {
        let std::path::Component::Normal(name) = c else {
            continue;
        };
        image_path.push(name);
        let host = upper.join(image_path.strip_prefix("/").unwrap_or(&image_path));
        if std::fs::symlink_metadata(&host).is_ok() {
            continue;
        }
        std::fs::create_dir(&host).map_err(|e| err("creating", &image_path, e))?;
        let (mode, uid, gid, mtime) = match view.resolve(&image_path, true).filter(|f| f.metadata.is_dir()) {
            Some(f) => (
                f.metadata.mode() & 0o7777,
                f.metadata.uid(),
                f.metadata.gid(),
                Some(f.metadata.mtime()),
            ),
            None => (0o755, owner.0, owner.1, None),
        };
        set_meta(&host, mode, uid, gid, mtime)?;
    }
    Ok(())
}

fn set_meta(host: &Path, mode: u32, uid: u32, gid: u32, mtime: Option<i64>) -> Result<(), BuildError> {
    std::os::unix::fs::lchown(host, Some(uid), Some(gid)).map_err(|e| err("setting the owner of", host, e))?;
    let is_link = std::fs::symlink_metadata(host)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false);
    if !is_link {
        std::fs::set_permissions(host, std::fs::Permissions::from_mode(mode))
            .map_err(|e| err("setting the mode of", host, e))?;
    }
    if let Some(t) = mtime {
        let ts = nix::sys::time::TimeSpec::new(t, 0);
        let _ = nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            host,
            &ts,
            &ts,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        );
    }
    Ok(())
}

/// Copies one entry (and, for a directory, its tree) from the host to `image_target` in
/// `upper`. `walk` lists the children of a directory (the context's walk honours
/// .dockerignore; an image's is its merged listing).
fn copy_entry(
    upper: &Path,
    view: &MergedView,
    host: &Path,
    image_target: &Path,
    plan: &Plan,
    children: &dyn Fn(&Path) -> Vec<(OsString, PathBuf)>,
    follow: bool,
) -> Result<(), BuildError> {
    let meta = if follow {
        std::fs::metadata(host)
    } else {
        std::fs::symlink_metadata(host)
    }
    .map_err(|e| err("reading", host, e))?;
    let owner = plan.owner.unwrap_or((0, 0));
    if let Some(parent) = image_target.parent() {
        make_dirs(upper, view, parent, owner)?;
    }
    let target = upper.join(image_target.strip_prefix("/").unwrap_or(image_target));
    if std::fs::symlink_metadata(&target).is_ok() && !(meta.is_dir() && target.is_dir()) {
        let _ = if target.is_dir() {
            std::fs::remove_dir_all(&target)
        } else {
            std::fs::remove_file(&target)
        };
    }
    let mode = plan.mode.unwrap_or(meta.mode() & 0o7777);
    if meta.file_type().is_symlink() {
        let link = std::fs::read_link(host).map_err(|e| err("reading", host, e))?;
        std::os::unix::fs::symlink(&link, &target).map_err(|e| err("creating", image_target, e))?;
        set_meta(&target, 0, owner.0, owner.1, None)?;
    } else if meta.is_dir() {
        if !target.is_dir() {
            std::fs::create_dir(&target).map_err(|e| err("creating", image_target, e))?;
        }
        for (name, child_host) in children(host) {
            copy_entry(
                upper,
                view,
                &child_host,
                &image_target.join(&name),
                plan,
                children,
                false,
            )?;
        }
        set_meta(&target, mode, owner.0, owner.1, Some(meta.mtime()))?;
    } else if meta.is_file() {
        std::fs::copy(host, &target).map_err(|e| err("copying", image_target, e))?;
        set_meta(&target, mode, owner.0, owner.1, Some(meta.mtime()))?;
    } else {
        // Device nodes, fifos and sockets are not copied, as in Docker.
    }
    Ok(())
}

/// Whether a file starts like a tar archive (plain or gzip-compressed).
fn is_archive(host: &Path) -> bool {
    let mut head = [0u8; 512];
    let Ok(mut f) = std::fs::File::open(host) else {
        return false;
    };
    let n = f.read(&mut head).unwrap_or(0);
    if n >= 2 && head[0] == 0x1f && head[1] == 0x8b {
        return true;
    }
    n >= 262 && &head[257..262] == b"ustar"
}

/// Writes the plan's files into `upper` (a fresh directory that becomes the layer).
pub fn apply(
    upper: &Path,
    view: &MergedView,
    context: &Context,
    from: Option<&MergedView>,
    _source_root: &Path,
    plan: &Plan,
    add: bool,
) -> Result<(), BuildError> {
    let owner = plan.owner.unwrap_or((0, 0));
    let single_dir_source = plan.sources.len() == 1
        && plan.inline.is_empty()
        && match &plan.sources[0] {
            Source::Context(rel) => context.root.join(rel).is_dir(),
            Source::Image(p) => from
                .and_then(|v| v.resolve(p, true))
                .is_some_and(|f| f.metadata.is_dir()),
        };
    let dest_is_dir = plan.dest_is_dir_hint || single_dir_source || view.is_dir(&plan.dest);
    let dest = resolve_in_image(view, &plan.dest);
    if dest_is_dir {
        make_dirs(upper, view, &dest, owner)?;
    }
    let context_children = |host: &Path| -> Vec<(OsString, PathBuf)> {
        let rel = host.strip_prefix(&context.root).unwrap_or(host).to_path_buf();
        let mut out: Vec<(OsString, PathBuf)> = std::fs::read_dir(host)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| !context.is_excluded(&rel.join(e.file_name())) || e.path().is_dir())
            .map(|e| (e.file_name(), e.path()))
            .collect();
        out.sort();
        out
    };
    for source in &plan.sources {
        match source {
            Source::Context(rel) => {
                let host = context.root.join(rel);
                let name = rel.file_name().map(OsString::from).unwrap_or_default();
                if host.is_dir() {
                    // A directory's contents go into the destination directory.
                    for (child, child_host) in context_children(&host) {
                        let child_rel = rel.join(&child);
                        if context.is_excluded(&child_rel) && !child_host.is_dir() {
                            continue;
                        }
                        copy_entry(
                            upper,
                            view,
                            &child_host,
                            &dest.join(&child),
                            plan,
                            &context_children,
                            false,
                        )?;
                    }
                    prune_excluded(upper, &dest, context, rel);
                } else if add && is_archive(&host) {
                    extract(upper, view, &host, &dest, owner)?;
                } else {
                    let target = if dest_is_dir { dest.join(&name) } else { dest.clone() };
                    copy_entry(upper, view, &host, &target, plan, &context_children, true)?;
                }
            }
            Source::Image(path) => {
                let Some(from) = from else { continue };
                let found = from.resolve(path, true).ok_or_else(|| {
                    BuildError::Message(format!("COPY failed: stat {}: file does not exist", path.display()))
                })?;
                let children = |host: &Path| -> Vec<(OsString, PathBuf)> {
                    // Map the host path back to its image path to list the merged directory.
                    let image_path = from
                        .layers()
                        .iter()
                        .find_map(|l| host.strip_prefix(l).ok())
                        .map(|p| Path::new("/").join(p))
                        .unwrap_or_default();
                    from.list(&image_path).into_iter().collect()
                };
                if found.metadata.is_dir() {
                    for (child, child_host) in from.list(&found.path) {
                        copy_entry(upper, view, &child_host, &dest.join(&child), plan, &children, false)?;
                    }
                } else {
                    let name = found.path.file_name().map(OsString::from).unwrap_or_default();
                    let target = if dest_is_dir { dest.join(name) } else { dest.clone() };
                    copy_entry(upper, view, &found.host, &target, plan, &children, true)?;
                }
            }
        }
    }
    for (name, content) in &plan.inline {
        let target = if dest_is_dir { dest.join(name) } else { dest.clone() };
        if let Some(parent) = target.parent() {
            make_dirs(upper, view, parent, owner)?;
        }
        let host = upper.join(target.strip_prefix("/").unwrap_or(&target));
        std::fs::write(&host, content).map_err(|e| err("writing", &target, e))?;
        set_meta(&host, plan.mode.unwrap_or(0o644), owner.0, owner.1, None)?;
    }
    Ok(())
}

/// Directories were entered to reach re-included files; ones that hold nothing copied
/// came from excluded trees and go again.
fn prune_excluded(upper: &Path, dest: &Path, context: &Context, rel: &Path) {
    fn walk(host: &Path, rel: &Path, context: &Context) -> bool {
        let mut keep_any = false;
        for e in std::fs::read_dir(host).into_iter().flatten().flatten() {
            let child_rel = rel.join(e.file_name());
            if e.path().is_dir() && !e.path().is_symlink() {
                let keep = walk(&e.path(), &child_rel, context);
                if !keep && context.is_excluded(&child_rel) {
                    let _ = std::fs::remove_dir(e.path());
                } else {
                    keep_any = true;
                }
            } else {
                keep_any = true;
            }
        }
        keep_any
    }
    walk(&upper.join(dest.strip_prefix("/").unwrap_or(dest)), rel, context);
}

/// ADD's archive extraction: into a scratch directory first (the layer unpacker resolves
/// every path inside it), then merged into the destination.
fn extract(upper: &Path, view: &MergedView, archive: &Path, dest: &Path, owner: (u32, u32)) -> Result<(), BuildError> {
    let scratch = upper.parent().unwrap_or(upper).join("extract");
    std::fs::create_dir_all(&scratch).map_err(|e| err("creating", &scratch, e))?;
    let file = std::fs::File::open(archive).map_err(|e| err("opening", archive, e))?;
    crate::image::layer::unpack(std::io::BufReader::new(file), &scratch)
        .map_err(|e| BuildError::Message(format!("ADD failed: extracting {}: {e}", archive.display())))?;
    make_dirs(upper, view, dest, owner)?;
    let target = upper.join(dest.strip_prefix("/").unwrap_or(dest));
    merge_move(&scratch, &target).map_err(|e| err("extracting into", dest, e))?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

fn merge_move(from: &Path, to: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(from)?.flatten() {
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() && target.is_dir() {
            merge_move(&e.path(), &target)?;
        } else {
            if std::fs::symlink_metadata(&target).is_ok() {
                if target.is_dir() {
                    std::fs::remove_dir_all(&target)?
                } else {
                    std::fs::remove_file(&target)?
                }
            }
            std::fs::rename(e.path(), &target)?;
        }
    }
    Ok(())
}
