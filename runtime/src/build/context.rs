//! The build context: files a Dockerfile may COPY or ADD, with `.dockerignore` applied, and
//! the checksums that key the cache of COPY and ADD steps.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ignore::Ignore;

/// A context directory and the patterns that exclude files from it.
pub struct Context {
    pub root: PathBuf,
    ignore: Ignore,
}

/// Go's filepath.Match on one path component: `*`, `?`, `[...]` (with `^`/`!` and
/// ranges), backslash escapes.
pub fn component_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(c) = n.first() else { return false };
                let mut i = 1;
                let negate = matches!(p.get(1), Some('^') | Some('!'));
                if negate {
                    i += 1;
                }
                let mut matched = false;
                let mut first = true;
                while i < p.len() && (p[i] != ']' || first) {
                    first = false;
                    let lo = if p[i] == '\\' && i + 1 < p.len() {
                        i += 1;
                        p[i]
                    } else {
                        p[i]
                    };
                    if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                        let hi = p[i + 2];
                        if lo <= *c && *c <= hi {
                            matched = true;
                        }
                        i += 3;
                    } else {
                        if lo == *c {
                            matched = true;
                        }
                        i += 1;
                    }
                }
                if i >= p.len() {
                    return false; // unterminated class: no match, as Go reports ErrBadPattern
                }
                matched != negate && go(&p[i + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && go(&p[2..], &n[1..]),
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// "./a/../b/" -> "b": a cleaned path relative to the context root; None if it leaves it.
pub fn clean_relative(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                // Docker resolves sources inside the context: ".." stops at its root.
                out.pop();
            }
            _ => {}
        }
    }
    Some(out)
}

/// Most entries a context tar may hold (a guard against inode exhaustion).
const MAX_CONTEXT_ENTRIES: usize = 200_000;

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// An entry that would land outside the context: refused, not skipped.
    #[error("unsafe path in the build context: {0}")]
    Unsafe(String),
    #[error("the build context is not a valid tar archive: {0}")]
    Invalid(String),
    #[error("writing the build context: {0}")]
    Io(#[from] std::io::Error),
}

/// Unpacks a build context (a tar, gzipped or not, as `docker build` sends it) into the
/// empty directory `dir`. The archive is untrusted: absolute names and `..` are refused,
/// nothing is written through a symlink (tar's `unpack_in` checks every parent stays in
/// `dir`), hard links must point inside it, devices and fifos are left out. Symlinks
/// themselves are kept: COPY copies them as links, as Docker does. Returns the bytes
/// written.
pub fn extract(input: impl std::io::Read, dir: &Path) -> Result<u64, ExtractError> {
    let mut input = std::io::BufReader::with_capacity(1 << 20, input);
    let gzipped = std::io::BufRead::fill_buf(&mut input)
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .unwrap_or(false);
    if gzipped {
        extract_tar(flate2::read::MultiGzDecoder::new(input), dir)
    } else {
        extract_tar(input, dir)
    }
}

fn extract_tar(input: impl std::io::Read, dir: &Path) -> Result<u64, ExtractError> {
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    let mut total = 0u64;
    let entries = archive.entries().map_err(|e| ExtractError::Invalid(e.to_string()))?;
    for (n, entry) in entries.enumerate() {
        if n >= MAX_CONTEXT_ENTRIES {
            return Err(ExtractError::Invalid(format!(
                "more than {MAX_CONTEXT_ENTRIES} entries"
            )));
        }
        let mut entry = entry.map_err(|e| ExtractError::Invalid(e.to_string()))?;
        let path = entry
            .path()
            .map_err(|e| ExtractError::Invalid(e.to_string()))?
            .into_owned();
        check_member(&path)?;
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Block | tar::EntryType::Char | tar::EntryType::Fifo => continue,
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                check_member(&target)?;
            }
            _ => {}
        }
        total += entry.header().size().unwrap_or(0);
        match entry.unpack_in(dir) {
            Ok(true) => {}
            Ok(false) => return Err(ExtractError::Unsafe(path.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::Other || e.kind() == std::io::ErrorKind::InvalidInput => {
                // tar reports a parent that leads out of `dir` (through a symlink) this way.
                return Err(ExtractError::Unsafe(format!("{}: {e}", path.display())));
            }
            Err(e) => return Err(ExtractError::Io(e)),
        }
    }
    Ok(total)
}

/// A member name must stay inside the context: relative, no `..`.
fn check_member(path: &Path) -> Result<(), ExtractError> {
    for c in path.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            _ => return Err(ExtractError::Unsafe(path.display().to_string())),
        }
    }
    Ok(())
}

impl Context {
    /// Reads `.dockerignore` from the context root, if there is one.
    pub fn open(root: &Path) -> Context {
        let text = std::fs::read_to_string(root.join(".dockerignore")).unwrap_or_default();
        Context {
            root: root.to_path_buf(),
            ignore: Ignore::parse(&text),
        }
    }

    pub fn is_excluded(&self, rel: &Path) -> bool {
        let s = rel.to_string_lossy();
        !s.is_empty() && self.ignore.matches(&s)
    }

    /// The context paths a COPY source names (a path or a pattern), excluded ones left out.
    pub fn expand_source(&self, source: &str) -> Vec<PathBuf> {
        let Some(clean) = clean_relative(source) else {
            return Vec::new();
        };
        if !has_wildcard(source) {
            let host = self.root.join(&clean);
            return if std::fs::symlink_metadata(&host).is_ok() && !self.is_excluded(&clean) {
                vec![clean]
            } else {
                Vec::new()
            };
        }
        let mut found = vec![PathBuf::new()];
        for comp in clean.components() {
            let comp = comp.as_os_str().to_string_lossy().into_owned();
            let mut next = Vec::new();
            for base in &found {
                if has_wildcard(&comp) {
                    let mut names: Vec<String> = std::fs::read_dir(self.root.join(base))
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| component_match(&comp, n))
                        .collect();
                    names.sort();
                    next.extend(names.into_iter().map(|n| base.join(n)));
                } else {
                    let p = base.join(&comp);
                    if std::fs::symlink_metadata(self.root.join(&p)).is_ok() {
                        next.push(p);
                    }
                }
            }
            found = next;
        }
        found.into_iter().filter(|p| !self.is_excluded(p)).collect()
    }

    /// Every file under `rel` (itself if a file), excluded ones left out, sorted.
    pub fn walk(&self, rel: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![rel.to_path_buf()];
        while let Some(p) = stack.pop() {
            if !p.as_os_str().is_empty() && self.is_excluded(&p) {
                if self.ignore.can_skip_dir(&p.to_string_lossy()) {
                    continue;
                }
            } else {
                out.push(p.clone());
            }
            let host = self.root.join(&p);
            if std::fs::symlink_metadata(&host).map(|m| m.is_dir()).unwrap_or(false) {
                let mut children: Vec<PathBuf> = std::fs::read_dir(&host)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| p.join(e.file_name()))
                    .collect();
                children.sort();
                children.reverse();
                stack.extend(children);
            }
        }
        out.sort();
        out
    }

    /// A checksum of the files under the sources: names, modes, sizes and contents, as the
    /// cache key of a COPY or ADD (Docker leaves modification times out, so touching a file
    /// without changing it keeps the cache).
    pub fn checksum(&self, sources: &[PathBuf]) -> String {
        let mut files = BTreeSet::new();
        for s in sources {
            files.extend(self.walk(s));
        }
        checksum_of(&self.root, files.iter().map(|p| p.as_path()))
    }
}

/// The checksum of the given paths under `root` (also used for `COPY --from`).
pub fn checksum_of<'a>(root: &Path, paths: impl Iterator<Item = &'a Path>) -> String {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    for rel in paths {
        let host = root.join(rel);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            continue;
        };
        hasher.update(rel.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        hasher.update(meta.permissions().mode().to_le_bytes());
        hasher.update(meta.uid().to_le_bytes());
        hasher.update(meta.gid().to_le_bytes());
        if meta.file_type().is_symlink() {
            if let Ok(t) = std::fs::read_link(&host) {
                hasher.update(t.as_os_str().as_encoded_bytes());
            }
        } else if meta.is_file() {
            hasher.update(meta.len().to_le_bytes());
            if let Ok(mut f) = std::fs::File::open(&host) {
                use std::io::Read;
                while let Ok(n) = f.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                }
            }
        }
        hasher.update([1]);
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_component_matching() {
        assert!(component_match("package*.json", "package-lock.json"));
        assert!(component_match("package*.json", "package.json"));
        assert!(!component_match("package*.json", "pkg.json"));
        assert!(component_match("file?.txt", "file1.txt"));
        assert!(component_match("[a-c]x", "bx"));
        assert!(!component_match("[^a-c]x", "bx"));
        assert!(component_match("\\*", "*"));
        assert!(!component_match("[ab", "a"));
    }

    #[test]
    fn sources_globs_and_ignores() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "package.json",
            "package-lock.json",
            "app.py",
            "logs/a.log",
            "logs/important.log",
            "node_modules/x/i.js",
        ] {
            std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
            std::fs::write(root.join(f), f).unwrap();
        }
        std::fs::write(
            root.join(".dockerignore"),
            "node_modules\nlogs/*\n!logs/important.log\n",
        )
        .unwrap();
        let ctx = Context::open(root);
        assert_eq!(
            ctx.expand_source("package*.json"),
            [PathBuf::from("package-lock.json"), PathBuf::from("package.json")]
        );
        assert_eq!(ctx.expand_source("./app.py"), [PathBuf::from("app.py")]);
        assert!(ctx.expand_source("node_modules").is_empty());
        assert!(ctx.expand_source("nothere").is_empty());
        let all = ctx.walk(Path::new(""));
        assert!(all.contains(&PathBuf::from("logs/important.log")));
        assert!(!all.contains(&PathBuf::from("logs/a.log")));
        assert!(!all.iter().any(|p| p.starts_with("node_modules")));
        let before = ctx.checksum(&[PathBuf::from("app.py")]);
        std::fs::write(root.join("app.py"), "changed").unwrap();
        assert_ne!(ctx.checksum(&[PathBuf::from("app.py")]), before);
    }

    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            if *kind == tar::EntryType::Symlink || *kind == tar::EntryType::Link {
                h.set_size(0);
                b.append_link(&mut h, name, data).unwrap();
            } else {
                h.set_size(data.len() as u64);
                // Set the name bytes directly: the builder itself refuses `..`.
                let bytes = name.as_bytes();
                h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
                h.set_cksum();
                b.append(&h, data.as_bytes()).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn extract_keeps_files_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let good = tar_of(&[
            ("Dockerfile", tar::EntryType::Regular, "FROM busybox\n"),
            ("src/a.txt", tar::EntryType::Regular, "a"),
            ("link", tar::EntryType::Symlink, "src/a.txt"),
        ]);
        let size = extract(&good[..], dir.path()).unwrap();
        assert_eq!(size, 14);
        assert_eq!(std::fs::read_to_string(dir.path().join("src/a.txt")).unwrap(), "a");
        assert!(std::fs::symlink_metadata(dir.path().join("link")).unwrap().is_symlink());

        let outside = tempfile::tempdir().unwrap();
        for bad in [
            tar_of(&[("../escape", tar::EntryType::Regular, "x")]),
            tar_of(&[
                ("out", tar::EntryType::Symlink, outside.path().to_str().unwrap()),
                ("out/pwned", tar::EntryType::Regular, "x"),
            ]),
            tar_of(&[("hard", tar::EntryType::Link, "../../etc/passwd")]),
        ] {
            let d = tempfile::tempdir().unwrap();
            assert!(matches!(extract(&bad[..], d.path()), Err(ExtractError::Unsafe(_))));
        }
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
    }
}
