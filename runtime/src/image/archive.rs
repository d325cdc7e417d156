//! Image archives, as `docker save` writes them and `docker load` reads them.
//!
//! What [`save`] writes is both a Docker archive (`manifest.json`) and an OCI image
//! layout (`oci-layout`, `index.json`, `blobs/sha256/...`), as Docker 25 and later write
//! it, so `docker load`, `podman load` and OCI tools all read it. [`load`] reads that, the
//! older Docker format (`<id>/layer.tar`, `<id>.json`, symlinks between layer folders),
//! and a plain OCI layout.
//!
//! An archive is untrusted input: entry names are confined to the archive (no absolute
//! names, no `..`), nothing but regular files reaches the disk (symlinks are resolved
//! inside the archive's own namespace), every blob must hash to the digest it is stored
//! under, and every layer must unpack to the diff ID its config lists. A bad archive is
//! refused with [`ImageError::Invalid`] and leaves no image behind.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use super::config::{ImageConfig, host_architecture};
use super::reference::Reference;
use super::store::{Image, ImageError, MEDIA_MANIFEST, Store};

/// Biggest config, manifest or index accepted (real ones are a few KiB).
const MAX_JSON: u64 = 16 << 20;
/// Most entries an archive may hold (a guard against inode exhaustion).
const MAX_ENTRIES: usize = 100_000;
const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ANNOTATION_NAME: &str = "io.containerd.image.name";
const ANNOTATION_REF: &str = "org.opencontainers.image.ref.name";

fn invalid(msg: impl Into<String>) -> ImageError {
    ImageError::Invalid(msg.into())
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// What loading an archive brought in, as `docker load` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// "Loaded image: nginx:latest"
    Tagged(String),
    /// "Loaded image ID: sha256:..."
    Id(String),
}

impl std::fmt::Display for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Loaded::Tagged(t) => write!(f, "Loaded image: {t}"),
            Loaded::Id(id) => write!(f, "Loaded image ID: {id}"),
        }
    }
}

// ------------------------------------------------------------------------------- save

/// Which images `names` mean, each with the tags to record for it: `nginx:1.27` is that
/// tag, `nginx` every tag of the repository (as `docker save nginx` does), an ID the
/// image with no tag.
fn select(store: &Store, names: &[String]) -> Result<Vec<(Image, Vec<String>)>, ImageError> {
    let mut chosen: Vec<(Image, Vec<String>)> = Vec::new();
    let mut add = |image: Image, tag: Option<String>| {
        match chosen.iter_mut().find(|(i, _)| i.id() == image.id()) {
            Some((_, tags)) => tags.extend(tag.filter(|t| !tags.contains(t))),
            None => chosen.push((image, tag.into_iter().collect())),
        };
    };
    for name in names {
        let reference = Reference::parse(name).ok();
        match reference {
            Some(r) if r.tag.is_none() && r.digest.is_none() => {
                // A bare repository: all of its tags, or else an ID.
                let repo = r.familiar_name();
                let mut found = false;
                for summary in store.list(true)? {
                    for tag in summary
                        .tags
                        .iter()
                        .filter(|t| t.rsplit_once(':').is_some_and(|(n, _)| n == repo))
                    {
                        add(store.image(&summary.id)?, Some(tag.clone()));
                        found = true;
                    }
                }
                if !found {
                    add(store.resolve(name)?, None);
                }
            }
            Some(r) if r.digest.is_none() => add(store.resolve(name)?, Some(r.familiar())),
            _ => add(store.resolve(name)?, None),
        }
    }
    Ok(chosen)
}

fn append(builder: &mut tar::Builder<impl Write>, name: &str, size: u64, data: impl Read) -> Result<(), ImageError> {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, name, data)
        .map_err(|e| ImageError::Io {
            what: format!("writing {name} to the archive"),
            source: e,
        })
}

/// Writes the images `names` name as one archive (names as the store's tags see them).
pub fn save(store: &Store, names: &[String], out: impl Write) -> Result<(), ImageError> {
    let chosen = select(store, names)?;
    write_archive(store, &chosen, out)
}

/// Writes images, each by ID with the names to record for it, as one archive: for a
/// caller whose names are not the store's tags (a node of the Engine API).
pub fn save_images(store: &Store, images: &[(String, Vec<String>)], out: impl Write) -> Result<(), ImageError> {
    let chosen = images
        .iter()
        .map(|(id, tags)| Ok((store.image(id)?, tags.clone())))
        .collect::<Result<Vec<_>, ImageError>>()?;
    write_archive(store, &chosen, out)
}

fn write_archive(store: &Store, chosen: &[(Image, Vec<String>)], out: impl Write) -> Result<(), ImageError> {
    let mut builder = tar::Builder::new(out);
    let mut written = std::collections::HashSet::new();
    let mut blob = |builder: &mut tar::Builder<_>, digest: &str| -> Result<String, ImageError> {
        let name = format!("blobs/sha256/{}", hex_of(digest));
        if written.insert(name.clone()) {
            let path = store.blob_path(digest);
            let file = File::open(&path).map_err(|e| ImageError::Io {
                what: format!("opening blob {digest}"),
                source: e,
            })?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            append(builder, &name, size, file)?;
        }
        Ok(name)
    };
    let mut docker_manifest = Vec::new();
    let mut index = Vec::new();
    for (image, tags) in chosen {
        let config = blob(&mut builder, image.id())?;
        let layers = image
            .record
            .layers
            .iter()
            .map(|l| blob(&mut builder, &l.blob))
            .collect::<Result<Vec<_>, _>>()?;
        blob(&mut builder, &image.record.manifest)?;
        let manifest_size = std::fs::metadata(store.blob_path(&image.record.manifest))
            .map(|m| m.len())
            .unwrap_or(0);
        let descriptor = |annotations: Option<serde_json::Value>| {
            let mut d = serde_json::json!({ "mediaType": MEDIA_MANIFEST, "digest": image.record.manifest, "size": manifest_size });
            if let Some(a) = annotations {
                d["annotations"] = a;
            }
            d
        };
        if tags.is_empty() {
            index.push(descriptor(None));
        }
        for tag in tags {
            let r = Reference::parse(tag)?;
            index.push(descriptor(Some(serde_json::json!({
                ANNOTATION_NAME: r.to_string(),
                ANNOTATION_REF: r.tag.clone().unwrap_or_default(),
            }))));
        }
        docker_manifest.push(serde_json::json!({ "Config": config, "RepoTags": tags, "Layers": layers }));
    }
    let json = |v: &serde_json::Value| serde_json::to_vec(v).unwrap_or_default();
    let index = json(&serde_json::json!({ "schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": index }));
    append(&mut builder, "index.json", index.len() as u64, &index[..])?;
    let manifest = json(&serde_json::Value::Array(docker_manifest));
    append(&mut builder, "manifest.json", manifest.len() as u64, &manifest[..])?;
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    append(&mut builder, "oci-layout", layout.len() as u64, &layout[..])?;
    builder
        .into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|e| ImageError::Io {
            what: "finishing the archive".into(),
            source: e,
        })
}

// ------------------------------------------------------------------------------- load

/// The archive, taken apart: blobs went straight into the store (verified), other files
/// into a staging directory, symlinks into a table.
struct Unpacked<'a> {
    store: &'a Store,
    staging: PathBuf,
    links: HashMap<String, String>,
    /// Blobs found under `blobs/sha256/`, already in the store.
    blobs: HashMap<String, u64>,
}

/// An archive member's name, made relative and checked: "./a/b" is "a/b"; absolute
/// names and `..` are refused.
fn member_name(path: &Path) -> Result<String, ImageError> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(
                p.to_str()
                    .ok_or_else(|| invalid(format!("non-UTF-8 name {path:?} in the archive")))?,
            ),
            Component::CurDir => {}
            _ => return Err(invalid(format!("unsafe name {} in the archive", path.display()))),
        }
    }
    Ok(parts.join("/"))
}

/// Where a symlink in the archive points, as an archive name.
fn link_target(link: &str, target: &str) -> Result<String, ImageError> {
    let base = Path::new(link).parent().unwrap_or(Path::new(""));
    let mut parts: Vec<String> = if target.starts_with('/') {
        Vec::new()
    } else {
        base.components()
            .filter_map(|c| c.as_os_str().to_str().map(String::from))
            .collect()
    };
    for c in Path::new(target).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts
                    .pop()
                    .ok_or_else(|| invalid(format!("symlink {link} -> {target} leaves the archive")))?;
            }
            _ => {}
        }
    }
    Ok(parts.join("/"))
}

fn is_blob_name(name: &str) -> Option<&str> {
    let hex = name.strip_prefix("blobs/sha256/")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())).then_some(hex)
}

impl<'a> Unpacked<'a> {
    fn read(store: &'a Store, input: impl Read) -> Result<Unpacked<'a>, ImageError> {
        let staging = store.temp_dir("load")?;
        let mut me = Unpacked {
            store,
            staging,
            links: HashMap::new(),
            blobs: HashMap::new(),
        };
        let mut archive = tar::Archive::new(input);
        let entries = archive
            .entries()
            .map_err(|e| invalid(format!("not a tar archive: {e}")))?;
        for (n, entry) in entries.enumerate() {
            if n >= MAX_ENTRIES {
                return Err(invalid(format!("the archive has more than {MAX_ENTRIES} entries")));
            }
            let mut entry = entry.map_err(|e| invalid(format!("reading the archive: {e}")))?;
            let path = entry
                .path()
                .map_err(|e| invalid(format!("reading the archive: {e}")))?
                .into_owned();
            let name = member_name(&path)?;
            if name.is_empty() {
                continue;
            }
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    if let Some(hex) = is_blob_name(&name) {
                        let (digest, size) = store.write_blob_from(&mut entry)?;
                        if hex_of(&digest) != hex {
                            return Err(invalid(format!(
                                "blob {name} does not match its digest (it is {digest})"
                            )));
                        }
                        me.blobs.insert(format!("sha256:{hex}"), size);
                    } else {
                        let dest = me.staging.join(&name);
                        if let Some(parent) = dest.parent() {
                            std::fs::create_dir_all(parent)
                                .map_err(|e| invalid(format!("{name}: {e} (a file and a folder of one name?)")))?;
                        }
                        let mut file = File::create(&dest).map_err(|e| invalid(format!("{name}: {e}")))?;
                        std::io::copy(&mut entry, &mut file)
                            .map_err(|e| invalid(format!("reading {name} from the archive: {e}")))?;
                    }
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name()
                        .ok()
                        .flatten()
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    // Hardlink names are archive names; symlinks are relative to the link.
                    let resolved = if entry.header().entry_type() == tar::EntryType::Link {
                        member_name(Path::new(&target))?
                    } else {
                        link_target(&name, &target)?
                    };
                    me.links.insert(name, resolved);
                }
                _ => {} // directories and the rest: nothing to keep
            }
        }
        Ok(me)
    }

    /// Follows the archive's symlinks to a file's real name.
    fn resolve(&self, name: &str) -> Result<String, ImageError> {
        let mut name = member_name(Path::new(name))?;
        for _ in 0..32 {
            // A link may be the file itself or one of its folders.
            let hit = self
                .links
                .iter()
                .find(|(l, _)| name == **l || name.starts_with(&format!("{l}/")));
            match hit {
                Some((l, t)) => name = format!("{t}{}", &name[l.len()..]),
                None => return Ok(name),
            }
        }
        Err(invalid(format!("too many levels of symlinks at {name} in the archive")))
    }

    /// The blob a name in the archive holds: already in the store, or put there now.
    fn blob(&self, name: &str) -> Result<(String, u64), ImageError> {
        let name = self.resolve(name)?;
        if let Some(hex) = is_blob_name(&name) {
            let digest = format!("sha256:{hex}");
            return match self.blobs.get(&digest) {
                Some(size) => Ok((digest, *size)),
                None => Err(invalid(format!("{name} is missing from the archive"))),
            };
        }
        let file =
            File::open(self.staging.join(&name)).map_err(|_| invalid(format!("{name} is missing from the archive")))?;
        self.store.write_blob_from(file)
    }

    fn json(&self, name: &str) -> Result<(Vec<u8>, serde_json::Value), ImageError> {
        let name = self.resolve(name)?;
        let path = match is_blob_name(&name) {
            Some(hex) if self.blobs.contains_key(&format!("sha256:{hex}")) => self.store.blob_path(hex),
            Some(_) => return Err(invalid(format!("{name} is missing from the archive"))),
            None => self.staging.join(&name),
        };
        let file = File::open(&path).map_err(|_| invalid(format!("{name} is missing from the archive")))?;
        let mut bytes = Vec::new();
        file.take(MAX_JSON + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| invalid(format!("reading {name}: {e}")))?;
        if bytes.len() as u64 > MAX_JSON {
            return Err(invalid(format!("{name} is too big")));
        }
        let value = serde_json::from_slice(&bytes).map_err(|e| invalid(format!("{name} is not valid JSON: {e}")))?;
        Ok((bytes, value))
    }

    /// Loads one image: its config and its layers (by archive name), checked against
    /// each other.
    fn image(&self, config_name: &str, layer_names: &[String]) -> Result<String, ImageError> {
        let (config_bytes, _) = self.json(config_name)?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| invalid(format!("{config_name} is not an image config: {e}")))?;
        if config.rootfs.diff_ids.len() != layer_names.len() {
            return Err(invalid(format!(
                "the config lists {} layers but the archive gives {}",
                config.rootfs.diff_ids.len(),
                layer_names.len()
            )));
        }
        let mut layers = Vec::new();
        for (name, diff_id) in layer_names.iter().zip(&config.rootfs.diff_ids) {
            let (blob, size) = self.blob(name)?;
            let record = match self.store.layer(diff_id) {
                // Same content already unpacked: only the blob may differ (compressed).
                Some(r) if self.store.layer_dir(diff_id).is_dir() && r.blob == blob => r,
                _ => self.store.unpack_blob(&blob, size)?,
            };
            if &record.diff_id != diff_id {
                return Err(invalid(format!(
                    "layer {name} is {} but the config expects {diff_id}",
                    record.diff_id
                )));
            }
            layers.push(record);
        }
        self.store.put_image_bytes(&config_bytes, &layers, None)
    }

    /// The Docker format: manifest.json.
    fn docker(&self) -> Result<Vec<LoadedImage>, ImageError> {
        let (_, manifest) = self.json("manifest.json")?;
        let entries = manifest
            .as_array()
            .ok_or_else(|| invalid("manifest.json is not a list"))?;
        let mut loaded = Vec::new();
        for entry in entries {
            let config = entry["Config"]
                .as_str()
                .ok_or_else(|| invalid("manifest.json: an entry has no Config"))?;
            let layers: Vec<String> = entry["Layers"]
                .as_array()
                .ok_or_else(|| invalid("manifest.json: an entry has no Layers"))?
                .iter()
                .map(|l| {
                    l.as_str()
                        .map(String::from)
                        .ok_or_else(|| invalid("manifest.json: a layer is not a name"))
                })
                .collect::<Result<_, _>>()?;
            let tags: Vec<Reference> = entry["RepoTags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str())
                .map(|t| Reference::parse(t).map(Reference::with_default_tag))
                .collect::<Result<_, _>>()?;
            let id = self.image(config, &layers)?;
            loaded.push(LoadedImage { id, names: tags });
        }
        Ok(loaded)
    }

    /// The OCI layout: index.json, each manifest (or, for an index, this machine's).
    fn oci(&self) -> Result<Vec<LoadedImage>, ImageError> {
        let (_, index) = self.json("index.json")?;
        let mut loaded = Vec::new();
        for descriptor in index["manifests"]
            .as_array()
            .ok_or_else(|| invalid("index.json lists no manifests"))?
        {
            let manifest = self.manifest_for_host(descriptor, 0)?;
            let config = manifest["config"]["digest"]
                .as_str()
                .ok_or_else(|| invalid("a manifest has no config"))?;
            let layers: Vec<String> = manifest["layers"]
                .as_array()
                .ok_or_else(|| invalid("a manifest has no layers"))?
                .iter()
                .map(|l| {
                    l["digest"]
                        .as_str()
                        .map(|d| format!("blobs/sha256/{}", hex_of(d)))
                        .ok_or_else(|| invalid("a layer has no digest"))
                })
                .collect::<Result<_, _>>()?;
            let id = self.image(&format!("blobs/sha256/{}", hex_of(config)), &layers)?;
            // A full name, or a ref.name that is one ("nginx:1.27"); a bare tag names nothing.
            let annotations = &descriptor["annotations"];
            let name = annotations[ANNOTATION_NAME].as_str().or(annotations[ANNOTATION_REF]
                .as_str()
                .filter(|n| n.contains(':') || n.contains('/')));
            let tags: Vec<Reference> = name
                .map(Reference::parse)
                .transpose()?
                .map(Reference::with_default_tag)
                .into_iter()
                .collect();
            loaded.push(LoadedImage { id, names: tags });
        }
        Ok(loaded)
    }

    fn manifest_for_host(&self, descriptor: &serde_json::Value, depth: usize) -> Result<serde_json::Value, ImageError> {
        let digest = descriptor["digest"]
            .as_str()
            .ok_or_else(|| invalid("a descriptor has no digest"))?;
        let (_, value) = self.json(&format!("blobs/sha256/{}", hex_of(digest)))?;
        let media = descriptor["mediaType"]
            .as_str()
            .or(value["mediaType"].as_str())
            .unwrap_or(MEDIA_MANIFEST);
        if media != MEDIA_INDEX && media != DOCKER_LIST {
            if media != MEDIA_MANIFEST && media != DOCKER_MANIFEST {
                return Err(invalid(format!("unsupported manifest type {media}")));
            }
            return Ok(value);
        }
        if depth > 4 {
            return Err(invalid("indexes nest too deep"));
        }
        let ours = value["manifests"].as_array().into_iter().flatten().find(|m| {
            m["platform"]["os"].as_str().unwrap_or("linux") == "linux"
                && m["platform"]["architecture"].as_str().unwrap_or(host_architecture()) == host_architecture()
        });
        let ours = ours.ok_or_else(|| invalid(format!("no image for linux/{} in the archive", host_architecture())))?;
        self.manifest_for_host(ours, depth + 1)
    }
}

impl Drop for Unpacked<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.staging);
    }
}

/// One image an archive held, and the names the archive gives it (with their tags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    pub id: String,
    pub names: Vec<Reference>,
}

impl LoadedImage {
    /// What `docker load` reports for it: each name, or the ID when it has none.
    pub fn reports(&self) -> Vec<Loaded> {
        if self.names.is_empty() {
            return vec![Loaded::Id(self.id.clone())];
        }
        self.names.iter().map(|n| Loaded::Tagged(n.familiar())).collect()
    }
}

/// Loads every image of an archive (Docker's format, older or newer, or an OCI layout,
/// plain or gzipped) into the store, and tags them there.
pub fn load(store: &Store, input: impl Read) -> Result<Vec<Loaded>, ImageError> {
    let mut loaded = Vec::new();
    for image in load_untagged(store, input)? {
        for name in &image.names {
            store.tag(&image.id, name)?;
        }
        loaded.extend(image.reports());
    }
    Ok(loaded)
}

/// Loads an archive's content into the store without touching its tags: the caller
/// records the names where it keeps them (a node's own table).
pub fn load_untagged(store: &Store, input: impl Read) -> Result<Vec<LoadedImage>, ImageError> {
    let mut input = std::io::BufReader::with_capacity(1 << 20, input);
    let gzipped = std::io::BufRead::fill_buf(&mut input)
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .unwrap_or(false);
    let unpacked = if gzipped {
        Unpacked::read(store, flate2::read::MultiGzDecoder::new(input))?
    } else {
        Unpacked::read(store, input)?
    };
    if unpacked.staging.join("manifest.json").is_file() {
        unpacked.docker()
    } else if unpacked.staging.join("index.json").is_file() {
        unpacked.oci()
    } else {
        Err(invalid(
            "the archive has neither manifest.json nor index.json: not an image archive",
        ))
    }
}
