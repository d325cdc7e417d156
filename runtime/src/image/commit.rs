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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::config::ImageConfig;

    /// A base image of one layer holding /etc/keep and /etc/gone.
    fn base(store: &Store) -> Image {
        let mut b = tar::Builder::new(Vec::new());
        for (name, text) in [("etc/keep", "kept\n"), ("etc/gone", "deleted later\n")] {
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, text.as_bytes()).unwrap();
        }
        let layer = store.import_layer(b.into_inner().unwrap().as_slice()).unwrap();
        let mut config = ImageConfig::scratch();
        config.rootfs.diff_ids.push(layer.diff_id.clone());
        let id = store.put_image(&config, &[layer], None).unwrap();
        store.image(&id).unwrap()
    }

    #[test]
    fn an_upper_dir_becomes_the_top_layer_with_its_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("images")).unwrap();
        let base = base(&store);
        // What a container changed: a new file, and /etc/gone deleted (overlay's 0:0
        // character device, which needs root to make, as the runtime has).
        let upper = dir.path().join("upper");
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/new"), "made in the container\n").unwrap();
        nix::sys::stat::mknod(
            &upper.join("etc/gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        let mut config = base.config.config.clone();
        config.cmd = Some(vec!["cat".into(), "/etc/new".into()]);
        let id = commit(
            &store,
            &base,
            &upper,
            CommitRequest {
                config,
                created_by: "sh -c make-things".into(),
                comment: "saved".into(),
                author: "learner".into(),
            },
        )
        .unwrap();
        let image = store.image(&id).unwrap();
        assert_eq!(image.record.layers.len(), 2);
        assert_eq!(image.record.parent.as_deref(), Some(base.id()));
        assert_eq!(
            image.config.config.cmd,
            Some(vec!["cat".to_string(), "/etc/new".to_string()])
        );
        assert_eq!(image.config.author, "learner");
        assert_eq!(image.config.history.last().unwrap().created_by, "sh -c make-things");
        // The new layer holds the file and the whiteout, as overlay lower dirs want them.
        let top = &image.record.layers[1];
        let layer_dir = store.layer_dir(&top.diff_id);
        assert_eq!(
            std::fs::read_to_string(layer_dir.join("etc/new")).unwrap(),
            "made in the container\n"
        );
        use std::os::unix::fs::FileTypeExt;
        assert!(
            std::fs::symlink_metadata(layer_dir.join("etc/gone"))
                .unwrap()
                .file_type()
                .is_char_device()
        );
        // The container's own upper dir is left as it was: it keeps running on it.
        assert!(upper.join("etc/new").exists());
    }
}
