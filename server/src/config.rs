//! Settings, layered: command-line flags, then `SLIPWAY_*` variables (clap reads both),
//! then `slipway.toml`, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::cli::{CommonArgs, ServeArgs};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "/var/lib/slipway";

/// What `slipway.toml` may hold. Keys match the flags' long names with `_` for `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub lessons: Option<PathBuf>,
    pub images: Option<PathBuf>,
    pub catalog: Option<String>,
    pub playgrounds: Option<crate::playground::Limits>,
}

impl FileSettings {
    /// Reads the settings file: `explicit` if given (it must exist), else `./slipway.toml`,
    /// else `/etc/slipway/slipway.toml`, else nothing.
    pub fn load(explicit: Option<&Path>) -> Result<Self> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => match ["slipway.toml", "/etc/slipway/slipway.toml"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
            {
                Some(p) => p,
                None => return Ok(Self::default()),
            },
        };
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("reading settings file {}", path.display()))?;
        let settings: Self = toml::from_str(&text).with_context(|| format!("in settings file {}", path.display()))?;
        // Relative paths in the file are relative to the file, as a reader of it would expect.
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(Self {
            data_dir: settings.data_dir.map(|p| base.join(p)),
            lessons: settings.lessons.map(|p| base.join(p)),
            images: settings.images.map(|p| base.join(p)),
            ..settings
        })
    }
}

/// The resolved settings of `slipway serve` and the commands that share its options.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub lessons: PathBuf,
    /// The image store's directory.
    pub images: PathBuf,
    /// Catalog images to build at start: empty for none.
    pub catalog: Vec<String>,
    pub playgrounds: crate::playground::Limits,
}

impl Settings {
    pub fn resolve(args: &ServeArgs, file: &FileSettings) -> Self {
        let common = Self::resolve_common(&args.common, file);
        Self {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default address")),
            catalog: parse_catalog(args.catalog.as_deref().or(file.catalog.as_deref()).unwrap_or("all")),
            ..common
        }
    }

    pub fn resolve_common(args: &CommonArgs, file: &FileSettings) -> Self {
        let data_dir = args
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        Self {
            images: args
                .images
                .clone()
                .or_else(|| file.images.clone())
                .unwrap_or_else(|| data_dir.join("images")),
            catalog: Vec::new(),
            playgrounds: file.playgrounds.clone().unwrap_or_default(),
            listen: file
                .listen
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default address")),
            data_dir,
            lessons: args
                .lessons
                .clone()
                .or_else(|| file.lessons.clone())
                .unwrap_or_else(default_lessons_dir),
        }
    }
}

/// `all` is every catalog image, `none` (or nothing) none, else names separated by commas.
fn parse_catalog(text: &str) -> Vec<String> {
    match text.trim() {
        "all" => crate::catalog::Catalog::names().unwrap_or_default(),
        "none" | "" => Vec::new(),
        list => list
            .split(',')
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect(),
    }
}

/// The repository's `lessons/` when this binary was built from a checkout that still exists,
/// else `./lessons`.
pub fn default_lessons_dir() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lessons");
    if repo.is_dir() {
        repo.canonicalize().unwrap_or(repo)
    } else {
        PathBuf::from("lessons")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("slipway.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9999\"\ndata_dir = \"data\"\nlessons = \"/srv/lessons\"\n",
        )
        .unwrap();
        let fs = FileSettings::load(Some(&file)).unwrap();
        let from_file = Settings::resolve(&ServeArgs::default(), &fs);
        assert_eq!(from_file.listen.port(), 9999);
        assert_eq!(from_file.data_dir, dir.path().join("data"));
        assert_eq!(from_file.lessons, PathBuf::from("/srv/lessons"));

        let args = ServeArgs {
            listen: Some("127.0.0.1:7000".parse().unwrap()),
            catalog: Some("busybox, debian".into()),
            common: CommonArgs {
                data_dir: Some("/tmp/x".into()),
                lessons: None,
                images: None,
            },
        };
        let both = Settings::resolve(&args, &fs);
        assert_eq!(both.listen.port(), 7000);
        assert_eq!(both.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(both.lessons, PathBuf::from("/srv/lessons"));
        assert_eq!(both.images, PathBuf::from("/tmp/x/images"));
        assert_eq!(both.catalog, vec!["busybox", "debian"]);
        assert!(
            from_file.catalog.contains(&"slipway/node".to_string()),
            "all by default"
        );

        let defaults = Settings::resolve(&ServeArgs::default(), &FileSettings::default());
        assert_eq!(defaults.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(defaults.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("slipway.toml");
        std::fs::write(&file, "listne = \"127.0.0.1:1\"\n").unwrap();
        let err = FileSettings::load(Some(&file)).unwrap_err();
        assert!(format!("{err:#}").contains("listne"), "{err:#}");
    }
}
