//! `docker commit`: a container's overlay upper directory becomes a new layer on top of
//! its image, with the container's configuration as the new image's.

use std::path::Path;

use super::config::{History, ImageConfig, RunConfig, now_rfc3339};
use super::store::{Image, ImageError, Store, io};

/// What the new image records beside its layer.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// The configuration the image runs with (the container's, with any `--change`s).
    pub config: RunConfig,
    /// The command the container ran, for the history (`docker history`'s CREATED BY).
    pub created_by: String,
    pub comment: String,
    pub author: String,
}

/// Packs `upper` (left as it is: the container keeps running on it) into a layer and
/// stores an image of `base`'s layers plus that one. Returns the new image's ID.
pub fn commit(store: &Store, base: &Image, upper: &Path, request: CommitRequest) -> Result<String, ImageError> {
    // Packing writes the blob; unpacking it gives a layer directory owned by the store
    // (the upper dir's whiteouts become the store's), exactly as a loaded layer would.
    let staging = store.temp_dir("commit")?;
    let tar = staging.join("layer.tar");
    let result = (|| {
        let file = std::fs::File::create(&tar).map_err(io("writing a layer"))?;
        let packed = super::layer::pack(upper, std::io::BufWriter::with_capacity(1 << 20, file))?;
        let blob = format!("sha256:{}", hex::encode(packed.diff_id));
        if !store.has_blob(&blob) {
            std::fs::rename(&tar, store.blob_path(&blob)).map_err(io("storing a layer"))?;
        }
        store.unpack_blob(&blob, packed.size)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    let layer = result?;

    let mut config: ImageConfig = base.config.clone();
    config.created = now_rfc3339();
    config.author = request.author.clone();
    config.comment = request.comment.clone();
    config.config = request.config;
    config.rootfs.diff_ids.push(layer.diff_id.clone());
    config.history.push(History {
        created: config.created.clone(),
        created_by: request.created_by,
        comment: request.comment,
        empty_layer: false,
    });
    let mut layers = base.record.layers.clone();
    layers.push(layer);
    store.put_image(&config, &layers, Some(base.id()))
}
