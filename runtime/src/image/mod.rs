//! Images: a content-addressed store in the OCI image layout, layers unpacked once and
//! shared as overlay lower directories, and the archive formats (docker save, OCI layout).

pub mod archive;
pub mod commit;
pub mod config;
pub mod layer;
pub mod reference;
pub mod store;
pub mod view;
