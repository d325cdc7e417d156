//! The image store: an OCI image layout on disk (content-addressed blobs, manifests, an
//! index whose annotations carry the tags), plus what Slipway keeps beside it: each layer
//! unpacked once under `layers/<diff_id>` (shared read-only by every container as an
//! overlayfs lower directory), a record per image (its layers and the image it was built
//! on), and the build cache.
//!
//! ```text
//! <root>/oci-layout, index.json        the OCI layout (tags: org.opencontainers.image.ref.name)
//! <root>/blobs/sha256/<hex>            configs, manifests, layer tars
//! <root>/images/<id>.json              per image: manifest, layers, parent
//! <root>/layers/<diff_id>/             unpacked layers (overlay lower dirs)
//! <root>/layers/<diff_id>.json         the layer's blob and sizes
//! <root>/cache/<key>                   build cache: step key -> image id
//! <root>/tmp/                          staging, on the same filesystem for atomic renames
//! ```
//!
//! Changes take an exclusive flock on `<root>/lock`, so the server and a `slipway images`
//! command can work on one store at once.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::config::ImageConfig;
use super::reference::Reference;

pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("No such image: {0}")]
    NotFound(String),
    #[error("{0}")]
    Reference(#[from] super::reference::ReferenceError),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    /// Input from outside (an archive, a manifest) that is not what it claims to be.
    #[error("invalid image: {0}")]
    Invalid(String),
    #[error("corrupt store: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Layer(#[from] super::layer::LayerError),
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
    let what = what.into();
    move |source| ImageError::Io { what, source }
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// A layer as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The digest of the uncompressed tar (what the image config lists).
    pub diff_id: String,
    /// The digest of the blob as stored (compressed or not).
    pub blob: String,
    pub media_type: String,
    /// Bytes of the uncompressed tar.
    pub size: u64,
    pub blob_size: u64,
}

/// Slipway's record of an image, beside its blobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    /// "sha256:<hex>", the digest of the config.
    pub id: String,
    pub manifest: String,
    pub layers: Vec<LayerRecord>,
    /// The image this one was built on, step by step (the classic builder's chain).
    #[serde(default)]
    pub parent: Option<String>,
    /// Digests under which registries know this image ("nginx@sha256:...").
    #[serde(default)]
    pub repo_digests: Vec<String>,
}

/// An image, loaded.
#[derive(Debug, Clone)]
pub struct Image {
    pub record: ImageRecord,
    pub config: ImageConfig,
    pub tags: Vec<String>,
}

impl Image {
    pub fn id(&self) -> &str {
        &self.record.id
    }
    /// Uncompressed size of all layers.
    pub fn size(&self) -> u64 {
        self.record.layers.iter().map(|l| l.size).sum()
    }
}

/// What `docker images` lists.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub id: String,
    pub tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub created: String,
    pub size: u64,
    pub parent: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// What removing an image did, in Docker's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Removed {
    Untagged(String),
    Deleted(String),
}

pub struct Store {
    root: PathBuf,
}

/// The tags, read from index.json: familiar reference -> manifest digest.
#[derive(Default)]
struct Index {
    tags: BTreeMap<String, String>,
}

/// An exclusive lock on the store, across processes.
struct Lock(File);

impl Drop for Lock {
    fn drop(&mut self) {
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

impl Store {
    pub fn open(root: &Path) -> Result<Store, ImageError> {
        for d in ["blobs/sha256", "images", "layers", "cache", "tmp"] {
            std::fs::create_dir_all(root.join(d)).map_err(io(format!("creating {}", root.join(d).display())))?;
        }
        let layout = root.join("oci-layout");
        if !layout.exists() {
            std::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io("writing oci-layout"))?;
        }
        let store = Store {
            root: root.to_path_buf(),
        };
        if !root.join("index.json").exists() {
            let _lock = store.lock()?;
            store.write_index(&Index::default())?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock(&self) -> Result<Lock, ImageError> {
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("lock"))
            .map_err(io("opening the store lock"))?;
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if r != 0 {
            return Err(io("locking the store")(std::io::Error::last_os_error()));
        }
        Ok(Lock(f))
    }

    /// A fresh directory for staging, inside the store (renames out of it are atomic).
    pub fn temp_dir(&self, prefix: &str) -> Result<PathBuf, ImageError> {
        let mut bytes = [0u8; 8];
        File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(io("reading /dev/urandom"))?;
        let dir = self.root.join("tmp").join(format!("{prefix}-{}", hex::encode(bytes)));
        std::fs::create_dir(&dir).map_err(io(format!("creating {}", dir.display())))?;
        Ok(dir)
    }

    // ----------------------------------------------------------------------------- blobs

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex_of(digest))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        std::fs::read(self.blob_path(digest)).map_err(io(format!("reading blob {digest}")))
    }

    /// Stores bytes under their digest.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<String, ImageError> {
        let digest = sha256_digest(bytes);
        let path = self.blob_path(&digest);
        if !path.exists() {
            let tmp = self.root.join("tmp").join(format!("blob-{}", hex_of(&digest)));
            std::fs::write(&tmp, bytes).map_err(io("writing a blob"))?;
            std::fs::rename(&tmp, &path).map_err(io("storing a blob"))?;
        }
        Ok(digest)
    }

    /// Stores a stream under its digest; returns (digest, size).
    pub fn write_blob_from(&self, mut reader: impl Read) -> Result<(String, u64), ImageError> {
        let staging = self.temp_dir("blob")?;
        let tmp = staging.join("data");
        let mut file = File::create(&tmp).map_err(io("writing a blob"))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(io("reading a blob"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(io("writing a blob"))?;
            size += n as u64;
        }
        drop(file);
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        let path = self.blob_path(&digest);
        if !path.exists() {
            std::fs::rename(&tmp, &path).map_err(io("storing a blob"))?;
        }
        let _ = std::fs::remove_dir_all(&staging);
        Ok((digest, size))
    }

    // ---------------------------------------------------------------------------- layers

    /// The unpacked layer, ready as an overlay lower directory.
    pub fn layer_dir(&self, diff_id: &str) -> PathBuf {
        self.root.join("layers").join(hex_of(diff_id))
    }

    fn layer_record_path(&self, diff_id: &str) -> PathBuf {
        self.root.join("layers").join(format!("{}.json", hex_of(diff_id)))
    }

    pub fn layer(&self, diff_id: &str) -> Option<LayerRecord> {
        let text = std::fs::read(self.layer_record_path(diff_id)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn save_layer_record(&self, record: &LayerRecord) -> Result<(), ImageError> {
        let path = self.layer_record_path(&record.diff_id);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(record).unwrap_or_default()).map_err(io("writing a layer record"))?;
        std::fs::rename(&tmp, &path).map_err(io("saving a layer record"))
    }

    /// Stores a layer blob (a tar, or a gzipped tar) and unpacks it, once.
    pub fn import_layer(&self, reader: impl Read) -> Result<LayerRecord, ImageError> {
        let (blob, blob_size) = self.write_blob_from(reader)?;
        self.unpack_blob(&blob, blob_size)
    }

    /// Unpacks a stored blob into its layer directory unless that exists already.
    pub fn unpack_blob(&self, blob: &str, blob_size: u64) -> Result<LayerRecord, ImageError> {
        let staging = self.temp_dir("unpack")?;
        let target = staging.join("layer");
        std::fs::create_dir(&target).map_err(io("creating a layer directory"))?;
        let file = File::open(self.blob_path(blob)).map_err(io(format!("opening blob {blob}")))?;
        let unpacked = match super::layer::unpack(std::io::BufReader::with_capacity(1 << 20, file), &target) {
            Ok(u) => u,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e.into());
            }
        };
        let diff_id = format!("sha256:{}", hex::encode(unpacked.diff_id));
        let dir = self.layer_dir(&diff_id);
        if !dir.exists() {
            // Another process may win the race; its copy is the same content.
            let _ = std::fs::rename(&target, &dir);
        }
        let _ = std::fs::remove_dir_all(&staging);
        let gz = diff_id != blob;
        let record = LayerRecord {
            diff_id: diff_id.clone(),
            blob: blob.to_string(),
            media_type: if gz { MEDIA_LAYER_GZIP } else { MEDIA_LAYER }.into(),
            // A plain tar's size is the blob's; for a compressed one, what was unpacked.
            size: if gz { unpacked.size } else { blob_size },
            blob_size,
        };
        self.save_layer_record(&record)?;
        Ok(record)
    }

    /// Makes a layer of a directory (an overlay upper dir from a build step or a commit):
    /// packs it into a blob and moves the directory itself into place as the unpacked
    /// layer. `dir` must be inside the store's tmp/ (same filesystem).
    pub fn commit_dir(&self, dir: &Path) -> Result<LayerRecord, ImageError> {
        let staging = self.temp_dir("pack")?;
        let tar = staging.join("layer.tar");
        let file = File::create(&tar).map_err(io("writing a layer"))?;
        let packed = super::layer::pack(dir, std::io::BufWriter::with_capacity(1 << 20, file))?;
        let diff_id = format!("sha256:{}", hex::encode(packed.diff_id));
        let blob_path = self.blob_path(&diff_id);
        if !blob_path.exists() {
            std::fs::rename(&tar, &blob_path).map_err(io("storing a layer"))?;
        }
        let layer_dir = self.layer_dir(&diff_id);
        if !layer_dir.exists() {
            std::fs::rename(dir, &layer_dir).map_err(io("moving a layer into place"))?;
        } else {
            let _ = std::fs::remove_dir_all(dir);
        }
        let _ = std::fs::remove_dir_all(&staging);
        let record = LayerRecord {
            diff_id: diff_id.clone(),
            blob: diff_id,
            media_type: MEDIA_LAYER.into(),
            size: packed.size,
            blob_size: packed.size,
        };
        self.save_layer_record(&record)?;
        Ok(record)
    }

    // ---------------------------------------------------------------------------- images

    fn record_path(&self, id: &str) -> PathBuf {
        self.root.join("images").join(format!("{}.json", hex_of(id)))
    }

    /// Stores an image: its config, its manifest, and Slipway's record. Returns its ID.
    pub fn put_image(
        &self,
        config: &ImageConfig,
        layers: &[LayerRecord],
        parent: Option<&str>,
    ) -> Result<String, ImageError> {
        let config_bytes = serde_json::to_vec(config).map_err(|e| ImageError::Corrupt(e.to_string()))?;
        self.put_image_bytes(&config_bytes, layers, parent)
    }

    /// Stores an image whose config arrived as bytes (a load or a pull): the bytes are
    /// kept as they are, since the image's ID is their digest.
    pub fn put_image_bytes(
        &self,
        config_bytes: &[u8],
        layers: &[LayerRecord],
        parent: Option<&str>,
    ) -> Result<String, ImageError> {
        let id = self.write_blob(config_bytes)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": { "mediaType": MEDIA_CONFIG, "digest": id, "size": config_bytes.len() },
            "layers": layers.iter().map(|l| serde_json::json!({
                "mediaType": l.media_type, "digest": l.blob, "size": l.blob_size
            })).collect::<Vec<_>>(),
        });
        let manifest_digest = self.write_blob(&serde_json::to_vec(&manifest).unwrap_or_default())?;
        let previous = self.record(&id).ok();
        let record = ImageRecord {
            id: id.clone(),
            manifest: manifest_digest,
            layers: layers.to_vec(),
            parent: parent
                .map(String::from)
                .or(previous.as_ref().and_then(|p| p.parent.clone())),
            repo_digests: previous.map(|p| p.repo_digests).unwrap_or_default(),
        };
        self.save_record(&record)?;
        Ok(id)
    }

    fn save_record(&self, record: &ImageRecord) -> Result<(), ImageError> {
        let path = self.record_path(&record.id);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(record).unwrap_or_default())
            .map_err(io("writing an image record"))?;
        std::fs::rename(&tmp, &path).map_err(io("saving an image record"))
    }

    pub fn record(&self, id: &str) -> Result<ImageRecord, ImageError> {
        let text = std::fs::read(self.record_path(id)).map_err(|_| ImageError::NotFound(id.to_string()))?;
        serde_json::from_slice(&text)
            .map_err(|e| ImageError::Corrupt(format!("{}: {e}", self.record_path(id).display())))
    }

    pub fn config(&self, id: &str) -> Result<ImageConfig, ImageError> {
        let bytes = self.read_blob(id)?;
        serde_json::from_slice(&bytes).map_err(|e| ImageError::Corrupt(format!("config {id}: {e}")))
    }

    /// Every image ID the store holds.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.root.join("images"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".json"))
                    .map(|h| format!("sha256:{h}"))
            })
            .collect();
        ids.sort();
        ids
    }

    pub fn image(&self, id: &str) -> Result<Image, ImageError> {
        let record = self.record(id)?;
        let config = self.config(id)?;
        let index = self.read_index()?;
        let tags = tags_of(&index, &record.manifest);
        Ok(Image { record, config, tags })
    }

    /// Finds an image as Docker does: a tag ("nginx", "nginx:1.27", "me/app:v1"), a full
    /// ID ("sha256:<hex>"), an ID prefix of at least 4 characters, or a digest reference.
    pub fn resolve(&self, name: &str) -> Result<Image, ImageError> {
        let not_found = || ImageError::NotFound(name.to_string());
        let hexish = name.strip_prefix("sha256:").unwrap_or(name);
        if hexish.len() >= 4 && hexish.chars().all(|c| c.is_ascii_hexdigit()) {
            let matches: Vec<String> = self
                .ids()
                .into_iter()
                .filter(|id| hex_of(id).starts_with(hexish))
                .collect();
            match matches.len() {
                1 => return self.image(&matches[0]),
                0 => {}
                _ => return Err(ImageError::Conflict(format!("{name} is ambiguous"))),
            }
            if name.starts_with("sha256:") || hexish.len() == 64 {
                return Err(not_found());
            }
        }
        let reference = Reference::parse(name).map_err(|_| not_found())?;
        let index = self.read_index()?;
        if let Some(digest) = &reference.digest {
            let wanted = format!("{}@{digest}", reference.familiar_name());
            for id in self.ids() {
                if let Ok(record) = self.record(&id)
                    && (record.repo_digests.contains(&wanted) || &record.manifest == digest)
                {
                    return self.image(&id);
                }
            }
            return Err(not_found());
        }
        let key = reference.with_default_tag().familiar();
        let manifest = index.tags.get(&key).ok_or_else(not_found)?;
        let id = self.image_of_manifest(manifest)?;
        self.image(&id)
    }

    fn image_of_manifest(&self, manifest: &str) -> Result<String, ImageError> {
        let bytes = self.read_blob(manifest)?;
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ImageError::Corrupt(format!("manifest {manifest}: {e}")))?;
        v["config"]["digest"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| ImageError::Corrupt(format!("manifest {manifest} has no config")))
    }

    /// Points a tag at an image (moving it if it pointed elsewhere).
    pub fn tag(&self, id: &str, reference: &Reference) -> Result<(), ImageError> {
        let record = self.record(id)?;
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        index
            .tags
            .insert(reference.clone().with_default_tag().familiar(), record.manifest);
        self.write_index(&index)
    }

    /// Removes a tag; true if it existed.
    pub fn untag(&self, reference: &Reference) -> Result<bool, ImageError> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let existed = index
            .tags
            .remove(&reference.clone().with_default_tag().familiar())
            .is_some();
        self.write_index(&index)?;
        Ok(existed)
    }

    pub fn add_repo_digest(&self, id: &str, repo_digest: &str) -> Result<(), ImageError> {
        let mut record = self.record(id)?;
        if !record.repo_digests.iter().any(|d| d == repo_digest) {
            record.repo_digests.push(repo_digest.to_string());
            self.save_record(&record)?;
        }
        Ok(())
    }

    /// Images, as `docker images` lists them: tagged ones, plus (with `all`) the untagged.
    pub fn list(&self, all: bool) -> Result<Vec<Summary>, ImageError> {
        let index = self.read_index()?;
        let parents: HashSet<String> = self
            .ids()
            .iter()
            .filter_map(|id| self.record(id).ok()?.parent)
            .collect();
        let mut out = Vec::new();
        for id in self.ids() {
            let Ok(record) = self.record(&id) else { continue };
            let tags = tags_of(&index, &record.manifest);
            // Untagged images with children are the intermediate steps of builds.
            if tags.is_empty() && !all && parents.contains(&id) {
                continue;
            }
            let Ok(config) = self.config(&id) else { continue };
            out.push(Summary {
                id: id.clone(),
                tags,
                repo_digests: record.repo_digests.clone(),
                created: config.created.clone(),
                size: record.layers.iter().map(|l| l.size).sum(),
                parent: record.parent.clone(),
                labels: config.config.labels.clone(),
            });
        }
        out.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(out)
    }

    /// The image's layer directories, topmost first, as overlayfs's lowerdir lists them.
    pub fn lower_dirs(&self, image: &Image) -> Vec<PathBuf> {
        image
            .record
            .layers
            .iter()
            .rev()
            .map(|l| self.layer_dir(&l.diff_id))
            .collect()
    }

    /// Docker's `rmi`: a tag is untagged; an image left with no tag and no child is
    /// deleted, and so are its untagged parents (a build's intermediate steps). `in_use`
    /// holds images that containers need: those are never deleted (a conflict unless
    /// only a tag goes).
    pub fn remove(&self, name: &str, force: bool, in_use: &HashSet<String>) -> Result<Vec<Removed>, ImageError> {
        let image = self.resolve(name)?;
        let mut removed = Vec::new();
        let by_tag = Reference::parse(name)
            .ok()
            .map(|r| r.with_default_tag().familiar())
            .filter(|t| image.tags.contains(t));
        match by_tag {
            Some(tag) if image.tags.len() > 1 || force => {
                self.untag(&Reference::parse(&tag)?)?;
                removed.push(Removed::Untagged(tag));
                if image.tags.len() > 1 {
                    return Ok(removed);
                }
            }
            Some(tag) => {
                if in_use.contains(image.id()) {
                    return Err(ImageError::Conflict(format!(
                        "unable to remove repository reference \"{name}\" (must force) - container is using its referenced image {}",
                        short_id(image.id())
                    )));
                }
                self.untag(&Reference::parse(&tag)?)?;
                removed.push(Removed::Untagged(tag));
            }
            None => {
                if image.tags.len() > 1 && !force {
                    return Err(ImageError::Conflict(format!(
                        "unable to delete {} (must be forced) - image is referenced in multiple repositories",
                        short_id(image.id())
                    )));
                }
                for tag in &image.tags {
                    self.untag(&Reference::parse(tag)?)?;
                    removed.push(Removed::Untagged(tag.clone()));
                }
            }
        }
        if in_use.contains(image.id()) {
            if force {
                return Ok(removed);
            }
            return Err(ImageError::Conflict(format!(
                "unable to delete {} (cannot be forced) - image is being used by a stopped or running container",
                short_id(image.id())
            )));
        }
        // Delete the image and the untagged ancestors nothing else needs.
        let mut next = Some(image.id().to_string());
        while let Some(id) = next.take() {
            let index = self.read_index()?;
            let record = self.record(&id)?;
            let has_children = self
                .ids()
                .iter()
                .any(|other| self.record(other).ok().and_then(|r| r.parent).as_deref() == Some(&id));
            if !tags_of(&index, &record.manifest).is_empty() || has_children || in_use.contains(&id) {
                break;
            }
            let _ = std::fs::remove_file(self.record_path(&id));
            removed.push(Removed::Deleted(id.clone()));
            next = record.parent;
        }
        Ok(removed)
    }

    /// Images with no tag and no child: what `docker image prune` removes.
    pub fn dangling(&self) -> Result<Vec<String>, ImageError> {
        let index = self.read_index()?;
        let ids = self.ids();
        let parents: HashSet<String> = ids.iter().filter_map(|id| self.record(id).ok()?.parent).collect();
        Ok(ids
            .into_iter()
            .filter(|id| {
                !parents.contains(id)
                    && self
                        .record(id)
                        .map(|r| tags_of(&index, &r.manifest).is_empty())
                        .unwrap_or(false)
            })
            .collect())
    }

    /// Deletes blobs, layers and cache entries that no image needs any more.
    pub fn gc(&self) -> Result<GcStats, ImageError> {
        let _lock = self.lock()?;
        let mut keep_blobs: HashSet<String> = HashSet::new();
        let mut keep_layers: HashSet<String> = HashSet::new();
        let ids: HashSet<String> = self.ids().into_iter().collect();
        for id in &ids {
            let Ok(record) = self.record(id) else { continue };
            keep_blobs.insert(hex_of(id).to_string());
            keep_blobs.insert(hex_of(&record.manifest).to_string());
            for l in &record.layers {
                keep_blobs.insert(hex_of(&l.blob).to_string());
                keep_layers.insert(hex_of(&l.diff_id).to_string());
            }
        }
        for manifest in self.read_index()?.tags.values() {
            keep_blobs.insert(hex_of(manifest).to_string());
        }
        let mut stats = GcStats::default();
        for e in std::fs::read_dir(self.root.join("blobs/sha256"))
            .map_err(io("reading blobs"))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep_blobs.contains(&name) {
                stats.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                if std::fs::remove_file(e.path()).is_ok() {
                    stats.blobs += 1;
                }
            }
        }
        for e in std::fs::read_dir(self.root.join("layers"))
            .map_err(io("reading layers"))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let hex = name.trim_end_matches(".json").to_string();
            if !keep_layers.contains(&hex) {
                let path = e.path();
                if path.is_dir() {
                    if std::fs::remove_dir_all(&path).is_ok() {
                        stats.layers += 1;
                    }
                } else {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        for e in std::fs::read_dir(self.root.join("cache"))
            .map_err(io("reading the cache"))?
            .flatten()
        {
            let target = std::fs::read_to_string(e.path()).unwrap_or_default();
            if !ids.contains(target.trim()) {
                let _ = std::fs::remove_file(e.path());
                stats.cache_entries += 1;
            }
        }
        // Staging left by a process that died mid-way.
        for e in std::fs::read_dir(self.root.join("tmp")).into_iter().flatten().flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 3600);
            if old {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        Ok(stats)
    }

    // ----------------------------------------------------------------------------- cache

    pub fn cache_get(&self, key: &str) -> Option<String> {
        let id = std::fs::read_to_string(
            self.root
                .join("cache")
                .join(hex::encode(Sha256::digest(key.as_bytes()))),
        )
        .ok()?;
        let id = id.trim().to_string();
        self.record_path(&id).exists().then_some(id)
    }

    /// Forgets a cache entry; true if there was one.
    pub fn cache_remove(&self, key: &str) -> bool {
        std::fs::remove_file(
            self.root
                .join("cache")
                .join(hex::encode(Sha256::digest(key.as_bytes()))),
        )
        .is_ok()
    }

    pub fn cache_put(&self, key: &str, id: &str) -> Result<(), ImageError> {
        let path = self
            .root
            .join("cache")
            .join(hex::encode(Sha256::digest(key.as_bytes())));
        std::fs::write(path, id).map_err(io("writing the build cache"))
    }

    // ----------------------------------------------------------------------------- index

    fn read_index(&self) -> Result<Index, ImageError> {
        let path = self.root.join("index.json");
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Index::default()),
            Err(e) => return Err(io("reading index.json")(e)),
        };
        let v: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| ImageError::Corrupt(format!("index.json: {e}")))?;
        let mut index = Index::default();
        for m in v["manifests"].as_array().into_iter().flatten() {
            if let (Some(digest), Some(name)) = (m["digest"].as_str(), m["annotations"][REF_NAME].as_str()) {
                index.tags.insert(name.to_string(), digest.to_string());
            }
        }
        Ok(index)
    }

    fn write_index(&self, index: &Index) -> Result<(), ImageError> {
        let manifests: Vec<serde_json::Value> = index
            .tags
            .iter()
            .map(|(name, digest)| {
                let size = std::fs::metadata(self.blob_path(digest)).map(|m| m.len()).unwrap_or(0);
                serde_json::json!({ "mediaType": MEDIA_MANIFEST, "digest": digest, "size": size, "annotations": { REF_NAME: name } })
            })
            .collect();
        let v = serde_json::json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests });
        let path = self.root.join("index.json");
        let tmp = self.root.join("index.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&v).unwrap_or_default()).map_err(io("writing index.json"))?;
        std::fs::rename(&tmp, &path).map_err(io("saving index.json"))
    }

    /// Runs `f` holding the store's lock (to make several changes as one).
    pub fn locked<T>(&self, f: impl FnOnce() -> T) -> Result<T, ImageError> {
        let _lock = self.lock()?;
        Ok(f())
    }
}

fn tags_of(index: &Index, manifest: &str) -> Vec<String> {
    index
        .tags
        .iter()
        .filter(|(_, d)| d.as_str() == manifest)
        .map(|(t, _)| t.clone())
        .collect()
}

/// Docker's short ID: 12 hex digits.
pub fn short_id(id: &str) -> String {
    hex_of(id).chars().take(12).collect()
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct GcStats {
    pub blobs: u64,
    pub layers: u64,
    pub cache_entries: u64,
    pub bytes: u64,
}
