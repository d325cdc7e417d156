//! The offline image catalog: the images learners and lessons use, built here from
//! Debian's packages with no registry in reach. Two base images are made directly
//! (busybox from Debian's busybox-static, debian:trixie-slim by debootstrap); every other
//! image is a Dockerfile kept in the repository's `images/` directory (embedded in the
//! binary) and built by Slipway's own builder, with the host's network for apt.
//!
//! `ensure` builds what is missing, in dependency order, and reports each step.

mod base;
pub mod status;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use rust_embed::Embed;
use serde::Deserialize;
use slipway_runtime::build::builder::{self, BuildRequest, Progress, StoreOnly};
use slipway_runtime::build::runner::{ContainerRunner, RunNetwork};
use slipway_runtime::image::reference::Reference;
use slipway_runtime::image::store::Store;
use slipway_runtime::monitor::client::Containers;

#[derive(Embed)]
#[folder = "../images"]
struct Recipes;

/// `images/<name>/image.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct Recipe {
    pub name: String,
    pub tags: Vec<String>,
    #[serde(default)]
    pub depends: Vec<String>,
    #[serde(default)]
    pub order: i64,
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
    #[serde(default)]
    pub check: Option<Check>,
    #[serde(default)]
    pub checks: Vec<Check>,
    /// Tags made from the version the built image reports ("3.13.5").
    #[serde(default)]
    pub exact: Option<Exact>,
    #[serde(skip)]
    pub dir: String,
}

/// A command run in the built image; it must succeed and print `expect` if given.
#[derive(Debug, Clone, Deserialize)]
pub struct Check {
    pub command: Vec<String>,
    #[serde(default)]
    pub expect: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Exact {
    pub command: Vec<String>,
    pub regex: String,
    /// Patterns with `{version}`.
    pub tags: Vec<String>,
}

impl Recipe {
    /// The reference the recipe's first tag makes, e.g. "python:3.13".
    pub fn references(&self) -> Vec<String> {
        self.tags.iter().map(|t| format!("{}:{t}", self.name)).collect()
    }
}

/// Every recipe in `images/`, in build order.
pub fn recipes() -> Result<Vec<Recipe>> {
    let mut out = Vec::new();
    for path in Recipes::iter() {
        let Some(dir) = path.strip_suffix("/image.toml") else {
            continue;
        };
        let file = Recipes::get(&path).context("embedded recipe")?;
        let text = std::str::from_utf8(&file.data).with_context(|| format!("images/{path} is not UTF-8"))?;
        let mut recipe: Recipe = toml::from_str(text).with_context(|| format!("in images/{path}"))?;
        recipe.dir = dir.to_string();
        out.push(recipe);
    }
    out.sort_by(|a, b| (a.order, &a.name).cmp(&(b.order, &b.name)));
    Ok(out)
}

/// Writes a recipe's files into a fresh build context.
fn write_context(recipe: &Recipe, into: &Path) -> Result<()> {
    let prefix = format!("{}/", recipe.dir);
    for path in Recipes::iter() {
        let Some(rel) = path.strip_prefix(&prefix) else {
            continue;
        };
        let file = Recipes::get(&path).context("embedded file")?;
        let target = into.join(rel);
        if let Some(p) = target.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::write(&target, &file.data)?;
        // Scripts keep their executable bit in the repository; rust-embed drops modes, so
        // anything with a shebang is made executable again.
        if file.data.starts_with(b"#!") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(())
}

/// What the catalog needs to run: the store, and containers for RUN steps.
pub struct Catalog {
    pub store: Arc<Store>,
    pub containers: Containers,
    pub scratch: PathBuf,
    /// Where build containers' cgroups go: `<root>/builds`.
    pub cgroup_parent: String,
}

/// The cgroup every Slipway container lives under: `$SLIPWAY_CGROUP_ROOT` (tests give
/// each run its own, to remove it after) or `slipway`.
pub fn cgroup_root() -> String {
    std::env::var("SLIPWAY_CGROUP_ROOT")
        .ok()
        .filter(|r| !r.is_empty() && !r.starts_with('/') && !r.split('/').any(|c| c.is_empty() || c == ".."))
        .unwrap_or_else(|| "slipway".into())
}

/// One line of progress for whoever watches (the terminal, the log, the admin page).
pub type Report = Arc<dyn Fn(&str, &str) + Send + Sync>;

impl Catalog {
    /// The store at `images`; build containers keep their state under `runtime`.
    pub fn open(images: &Path, runtime: &Path) -> Result<Catalog> {
        let store = Arc::new(Store::open(images)?);
        let exe = std::env::current_exe().context("finding the slipway binary")?;
        let containers = Containers::new(runtime, &exe)?;
        Ok(Catalog {
            store,
            containers,
            scratch: images.join("tmp"),
            cgroup_parent: format!("{}/builds", cgroup_root()),
        })
    }

    /// All names the catalog can make: the base images and the recipes.
    pub fn names() -> Result<Vec<String>> {
        let mut names = vec!["busybox".to_string(), "debian".to_string()];
        names.extend(recipes()?.into_iter().map(|r| r.name));
        Ok(names)
    }

    /// Whether the store holds `reference` (or the first tag of a catalog name).
    pub fn has(&self, reference: &str) -> bool {
        self.store.resolve(reference).is_ok()
    }

    /// Builds every catalog image named (all when `names` is empty) that the store lacks,
    /// and what they depend on.
    pub async fn ensure(&self, names: &[String], report: Report) -> Result<Vec<String>> {
        let recipes = recipes()?;
        let wanted: Vec<String> = if names.is_empty() {
            Self::names()?
        } else {
            names
                .iter()
                .map(|n| n.split(':').next().unwrap_or(n).to_string())
                .collect()
        };
        for w in &wanted {
            if w != "busybox" && w != "debian" && !recipes.iter().any(|r| &r.name == w) {
                bail!("{w} is not in the catalog (it has: {})", Self::names()?.join(", "));
            }
        }
        let mut built = Vec::new();
        if wanted.iter().any(|w| w == "busybox") && !self.has("busybox") {
            report("busybox", "building from Debian's busybox-static");
            let id = base::busybox(&self.store)?;
            report("busybox", &format!("done: {}", short(&id)));
            built.push("busybox".to_string());
        }
        let needs_debian = wanted.iter().any(|w| w != "busybox");
        if needs_debian && !self.has("debian:trixie-slim") {
            report("debian", "debootstrap --variant=minbase trixie (about a minute)");
            let id = base::debian(&self.store, &|line| report("debian", line)).await?;
            report("debian", &format!("done: {}", short(&id)));
            built.push("debian".to_string());
        }
        for recipe in recipes.iter().filter(|r| wanted.contains(&r.name)) {
            if recipe.references().iter().all(|r| self.has(r)) {
                continue;
            }
            self.build_recipe(recipe, &report)
                .await
                .with_context(|| format!("building {}", recipe.name))?;
            built.push(recipe.name.clone());
        }
        Ok(built)
    }

    /// RUN steps of recipes: the host's network, so apt reaches the mirror.
    fn recipe_runner(&self) -> ContainerRunner {
        ContainerRunner {
            containers: self.containers.clone(),
            network: RunNetwork::Host,
            cgroup_parent: self.cgroup_parent.clone(),
            resolv_conf: Some(PathBuf::from("/etc/resolv.conf")).filter(|p| p.exists()),
            hosts: None,
            scratch: self.scratch.join("steps"),
        }
    }

    /// Builds a recipe's Dockerfile as `ensure` would, with no checks, tags or output:
    /// for the benchmark of a rebuild that is all cache hits.
    pub async fn rebuild(&self, name: &str) -> Result<String> {
        let recipe = recipes()?
            .into_iter()
            .find(|r| r.name == name)
            .with_context(|| format!("{name} is not a recipe"))?;
        let (tx, _rx): (Progress, _) = tokio::sync::mpsc::unbounded_channel();
        self.build_dockerfile(&recipe, tx).await
    }

    /// The recipe's Dockerfile built in a context written for it (untagged): the image ID.
    async fn build_dockerfile(&self, recipe: &Recipe, progress: Progress) -> Result<String> {
        let context = self
            .store
            .temp_dir(&format!("context-{}", recipe.name.replace('/', "-")))?;
        write_context(recipe, &context)?;
        let runner = self.recipe_runner();
        let request = BuildRequest {
            context: context.clone(),
            ..Default::default()
        };
        let result = builder::build(self.store.clone(), &StoreOnly, &runner, request, progress).await;
        let _ = std::fs::remove_dir_all(&context);
        Ok(result.map_err(|e| anyhow::anyhow!("{e}"))?.id)
    }

    async fn build_recipe(&self, recipe: &Recipe, report: &Report) -> Result<String> {
        let tags: Vec<Reference> = recipe
            .references()
            .iter()
            .map(|r| Reference::parse(r))
            .collect::<Result<_, _>>()?;
        // The catalog's tags go on only after the checks pass and the exact tags are set, so
        // a recipe whose tags exist is complete (`ensure` skips it).
        let (tx, mut rx): (Progress, _) = tokio::sync::mpsc::unbounded_channel();
        let name = recipe.name.clone();
        let r = report.clone();
        let forward = tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                for l in line.lines() {
                    r(&name, l);
                }
            }
        });
        let result = self.build_dockerfile(recipe, tx).await;
        let _ = forward.await;
        let id = result?;
        for check in recipe.check.iter().chain(recipe.checks.iter()) {
            let out = self.run_check(&id, &check.command).await?;
            if let Some(expect) = &check.expect
                && !out.contains(expect.as_str())
            {
                bail!(
                    "{}: `{}` printed {:?}, not {:?}: the tags would not say what is inside",
                    recipe.name,
                    check.command.join(" "),
                    out.trim(),
                    expect
                );
            }
            report(
                &recipe.name,
                &format!(
                    "checked `{}`: {}",
                    check.command.join(" "),
                    out.lines().next().unwrap_or("ok").trim()
                ),
            );
        }
        // Exact-version tags come from what the image itself reports.
        if let Some(exact) = &recipe.exact {
            let out = self.run_check(&id, &exact.command).await?;
            let version = find_version(&exact.regex, &out)
                .with_context(|| format!("{}: no version in {:?}", recipe.name, out.trim()))?;
            for pattern in &exact.tags {
                let major_minor = version.split('.').take(2).collect::<Vec<_>>().join(".");
                let tag = pattern
                    .replace("{version}", &version)
                    .replace("{major_minor}", &major_minor);
                let reference = Reference::parse(&format!("{}:{tag}", recipe.name))
                    .with_context(|| format!("{}: [exact] tag pattern {pattern:?}", recipe.name))?;
                self.store.tag(&id, &reference)?;
                report(&recipe.name, &format!("tagged {}", reference.familiar()));
            }
        }
        for reference in &tags {
            self.store.tag(&id, reference)?;
            report(&recipe.name, &format!("tagged {}", reference.familiar()));
        }
        Ok(id)
    }

    /// Runs a recipe's check command in a container of the new image; returns its output.
    async fn run_check(&self, id: &str, command: &[String]) -> Result<String> {
        let image = self.store.image(id)?;
        let staging = self.store.temp_dir("check")?;
        let (upper, work, mountpoint) = (staging.join("upper"), staging.join("work"), staging.join("merged"));
        for d in [&upper, &work, &mountpoint] {
            std::fs::create_dir_all(d)?;
        }
        let runner = ContainerRunner {
            containers: self.containers.clone(),
            network: RunNetwork::None,
            cgroup_parent: self.cgroup_parent.clone(),
            resolv_conf: None,
            hosts: None,
            scratch: self.scratch.join("steps"),
        };
        let mut env = image.config.config.env.clone();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(slipway_runtime::spec::DEFAULT_PATH.into());
        }
        let request = builder::RunRequest {
            lower: self.store.lower_dirs(&image),
            upper,
            work,
            mountpoint,
            args: command.to_vec(),
            env,
            // As `docker run` would: the image's working directory.
            cwd: if image.config.config.working_dir.is_empty() {
                "/".into()
            } else {
                image.config.config.working_dir.clone()
            },
            uid: 0,
            gid: 0,
            groups: Vec::new(),
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let code = slipway_runtime::build::builder::StepRunner::run(&runner, request, tx)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let _ = std::fs::remove_dir_all(&staging);
        let mut out = String::new();
        while let Ok(s) = rx.try_recv() {
            out.push_str(&s);
        }
        if code != 0 {
            bail!("`{}` exited with {code}: {out}", command.join(" "));
        }
        Ok(out)
    }
}

/// The first capture group of the recipe's pattern.
fn find_version(pattern: &str, text: &str) -> Option<String> {
    regex::Regex::new(pattern)
        .ok()?
        .captures(text)?
        .get(1)
        .map(|m| m.as_str().to_string())
}

fn short(id: &str) -> String {
    slipway_runtime::image::store::short_id(id)
}
