//! The classic builder's executor: stages in order, each instruction a new image whose
//! parent is the last, cached by (parent, instruction, source checksums) as Docker keys
//! it, with Docker's output (`Step N/M : ...`, ` ---> Using cache`, ` ---> <id>`) and
//! Docker's errors. RUN steps run as containers through a [`StepRunner`], so the caller
//! chooses their network and cgroup; COPY and ADD write a new layer directly.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

use super::context::Context;
use super::dockerfile::{self, Healthcheck, Instruction, Kind, ShellOrExec};
use super::expand;
use crate::image::config::{Empty, HealthConfig, History, ImageConfig, now_rfc3339};
use crate::image::reference::Reference;
use crate::image::store::{ImageError, LayerRecord, Store, short_id};
use crate::image::view::MergedView;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// Where the build's output goes, line by line (each ends with a newline).
pub type Progress = UnboundedSender<String>;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    Message(String),
    #[error("The command '{command}' returned a non-zero code: {code}")]
    RunFailed { command: String, code: i32 },
    #[error("COPY failed: file not found in build context or excluded by .dockerignore: stat {0}: file does not exist")]
    CopyNotFound(String),
    #[error(
        "pull access denied for {0}, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"
    )]
    BaseNotFound(String),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{0}")]
    Runtime(String),
}

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub context: PathBuf,
    /// Relative to the context.
    pub dockerfile: PathBuf,
    pub tags: Vec<Reference>,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Built {
    pub id: String,
    pub tags: Vec<String>,
}

/// How a build sees image names: which image a FROM (or `COPY --from`) names, where the
/// build's tags go, and its cache. By default these are the store's own tags and cache;
/// a node of the Engine API keeps names of its own, so one learner's names never reach
/// another's.
pub trait BaseImages: Send + Sync {
    /// Images a FROM names that [`BaseImages::resolve`] does not know yet.
    fn fetch<'a>(&'a self, reference: &'a Reference, progress: Progress) -> BoxFuture<'a, Result<String, BuildError>>;

    /// The image a name means, if it means one already.
    fn resolve(&self, store: &Store, reference: &Reference) -> Result<Option<String>, ImageError> {
        match store.resolve(&reference.clone().with_default_tag().familiar()) {
            Ok(image) => Ok(Some(image.id().to_string())),
            Err(ImageError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Gives the built image a name.
    fn tag(&self, store: &Store, id: &str, reference: &Reference) -> Result<(), ImageError> {
        store.tag(id, reference)
    }

    fn cache_get(&self, store: &Store, key: &str) -> Option<String> {
        store.cache_get(key)
    }

    fn cache_put(&self, store: &Store, key: &str, id: &str) -> Result<(), ImageError> {
        store.cache_put(key, id)
    }
}

/// Only what is already in the store.
pub struct StoreOnly;

impl BaseImages for StoreOnly {
    fn fetch<'a>(&'a self, reference: &'a Reference, _: Progress) -> BoxFuture<'a, Result<String, BuildError>> {
        let name = reference.familiar_name();
        Box::pin(async move { Err(BuildError::BaseNotFound(name)) })
    }
}

/// A RUN step: a container on the image's layers with `upper` as its writable layer.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub mountpoint: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

pub trait StepRunner: Send + Sync {
    /// Runs the step; its output goes to `progress`; returns the exit code.
    fn run<'a>(&'a self, request: RunRequest, progress: Progress) -> BoxFuture<'a, Result<i32, BuildError>>;
}

const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];
/// Build arguments Docker accepts without an ARG.
const PREDEFINED_ARGS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
];

struct Stage {
    name: Option<String>,
    image: Option<String>,
    config: ImageConfig,
    layers: Vec<LayerRecord>,
    args: BTreeMap<String, Option<String>>,
    cmd_set_here: bool,
}

impl Stage {
    fn shell(&self) -> Vec<String> {
        self.config
            .config
            .shell
            .clone()
            .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect())
    }

    fn view(&self, store: &Store) -> MergedView {
        MergedView::new(self.layers.iter().rev().map(|l| store.layer_dir(&l.diff_id)).collect())
    }
}

struct Builder<'a> {
    store: Arc<Store>,
    bases: &'a dyn BaseImages,
    runner: &'a dyn StepRunner,
    progress: Progress,
    request: BuildRequest,
    context: Arc<Context>,
    escape: char,
    /// Global ARGs (before the first FROM): name -> value.
    meta_args: BTreeMap<String, Option<String>>,
    /// Finished stages: (name, image id).
    done: Vec<(Option<String>, Option<String>)>,
    used_args: std::collections::HashSet<String>,
}

fn say(progress: &Progress, line: impl Into<String>) {
    let mut line = line.into();
    if !line.ends_with('\n') {
        line.push('\n');
    }
    let _ = progress.send(line);
}

/// Builds the image the request describes.
pub async fn build(
    store: Arc<Store>,
    bases: &dyn BaseImages,
    runner: &dyn StepRunner,
    request: BuildRequest,
    progress: Progress,
) -> Result<Built, BuildError> {
    let dockerfile_path = request.context.join(if request.dockerfile.as_os_str().is_empty() {
        Path::new("Dockerfile")
    } else {
        &request.dockerfile
    });
    let bytes = std::fs::read(&dockerfile_path).map_err(|_| {
        BuildError::Message(format!(
            "Cannot locate specified Dockerfile: {}",
            dockerfile_path
                .strip_prefix(&request.context)
                .unwrap_or(&dockerfile_path)
                .display()
        ))
    })?;
    // Docker reads bytes, not UTF-8: stray bytes stay in the words they are in.
    let text = String::from_utf8_lossy(&bytes);
    let parsed = dockerfile::parse(&text).map_err(|e| BuildError::Parse(e.to_string()))?;
    let context = Arc::new(Context::open(&request.context));
    let mut b = Builder {
        store,
        bases,
        runner,
        progress,
        request,
        context,
        escape: parsed.escape,
        meta_args: BTreeMap::new(),
        done: Vec::new(),
        used_args: Default::default(),
    };
    b.run(parsed.instructions).await
}

impl Builder<'_> {
    fn say(&self, line: impl Into<String>) {
        say(&self.progress, line)
    }

    async fn run(&mut self, instructions: Vec<Instruction>) -> Result<Built, BuildError> {
        // Global ARGs, then stages from FROM to FROM.
        let first_from = instructions.iter().position(|i| matches!(i.kind, Kind::From { .. }));
        let Some(first_from) = first_from else {
            return Err(BuildError::Message("no build stage in current context".into()));
        };
        for i in &instructions[..first_from] {
            if !matches!(i.kind, Kind::Arg(_)) {
                return Err(BuildError::Message(format!(
                    "{} is not allowed before FROM",
                    i.original.split_whitespace().next().unwrap_or("")
                )));
            }
        }
        let mut stages: Vec<Vec<Instruction>> = Vec::new();
        for i in instructions[first_from..].iter().cloned() {
            if matches!(i.kind, Kind::From { .. }) {
                stages.push(Vec::new());
            }
            stages.last_mut().expect("a stage").push(i);
        }
        let target_index = match &self.request.target {
            None => stages.len() - 1,
            Some(t) => stages
                .iter()
                .position(|s| matches!(&s[0].kind, Kind::From { name: Some(n), .. } if n.eq_ignore_ascii_case(t)))
                .ok_or_else(|| BuildError::Message(format!("failed to reach build target {t} in Dockerfile")))?,
        };
        // `--label`s become a LABEL step at the end of the target stage, as in Docker.
        if !self.request.labels.is_empty() {
            let pairs: Vec<(String, String)> = self
                .request
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let original = format!(
                "LABEL {}",
                pairs
                    .iter()
                    .map(|(k, v)| format!("{}={}", quote_label(k), quote_label(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            let line = stages[target_index].last().map(|i| i.end_line).unwrap_or(0);
            stages[target_index].push(Instruction {
                line,
                end_line: line,
                original,
                kind: Kind::Label(pairs),
            });
        }
        let total = first_from + stages[..=target_index].iter().map(|s| s.len()).sum::<usize>();
        let mut step = 0;
        for i in &instructions[..first_from] {
            step += 1;
            self.say(format!("Step {step}/{total} : {}", i.original));
            if let Kind::Arg(args) = &i.kind {
                for (name, default) in args {
                    let value = self.request.build_args.get(name).cloned().or(default.clone());
                    self.used_args.insert(name.clone());
                    self.meta_args.insert(name.clone(), value);
                }
            }
        }
        let mut last = None;
        for stage_instructions in stages.into_iter().take(target_index + 1) {
            let mut stage = None;
            for i in stage_instructions {
                if self.progress.is_closed() {
                    return Err(BuildError::Message(
                        "the build was cancelled: its client went away".into(),
                    ));
                }
                step += 1;
                self.say(format!("Step {step}/{total} : {}", i.original));
                match &i.kind {
                    Kind::From { image, name, .. } => {
                        let s = self.from(image, name.clone()).await?;
                        if let Some(id) = &s.image {
                            self.say(format!(" ---> {}", short_id(id)));
                        }
                        let triggers = s.config.config.on_build.clone();
                        stage = Some(s);
                        if !triggers.is_empty() {
                            self.say(format!(
                                "# Executing {} build trigger{}",
                                triggers.len(),
                                if triggers.len() == 1 { "" } else { "s" }
                            ));
                            for trigger in triggers {
                                let t = dockerfile::parse_onbuild_trigger(&trigger)
                                    .map_err(|e| BuildError::Parse(e.to_string()))?;
                                let s = stage.as_mut().expect("stage");
                                self.step(s, &t).await?;
                            }
                        }
                    }
                    _ => {
                        let s = stage.as_mut().expect("FROM starts every stage");
                        self.step(s, &i).await?;
                    }
                }
            }
            let s = stage.expect("a stage has a FROM");
            last = s.image.clone();
            self.done.push((s.name.clone(), s.image.clone()));
        }
        let unused: Vec<&String> = self
            .request
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !PREDEFINED_ARGS.contains(&k.as_str()))
            .collect();
        if !unused.is_empty() {
            self.say(format!("[Warning] One or more build-args {unused:?} were not consumed"));
        }
        // An image with no step at all (FROM scratch alone) still needs an ID.
        let id = match last {
            Some(id) => id,
            None => self.store.put_image(
                &ImageConfig {
                    created: now_rfc3339(),
                    ..ImageConfig::scratch()
                },
                &[],
                None,
            )?,
        };
        self.say(format!("Successfully built {}", short_id(&id)));
        let mut tags = Vec::new();
        for t in &self.request.tags {
            self.bases.tag(&self.store, &id, t)?;
            let name = t.clone().with_default_tag().familiar();
            self.say(format!("Successfully tagged {name}"));
            tags.push(name);
        }
        Ok(Built { id, tags })
    }

    /// The lookup that expands variables in a stage: ENV first, then ARGs.
    fn lookup<'s>(stage: &'s Stage) -> impl Fn(&str) -> Option<String> + 's {
        move |name| {
            stage
                .config
                .config
                .env_var(name)
                .map(String::from)
                .or_else(|| stage.args.get(name).cloned().flatten())
        }
    }

    fn expand_word(&self, stage: &Stage, word: &str) -> Result<String, BuildError> {
        expand::expand(word, &Self::lookup(stage), self.escape).map_err(|e| BuildError::Message(e.to_string()))
    }

    async fn from(&mut self, image: &str, name: Option<String>) -> Result<Stage, BuildError> {
        let meta = self.meta_args.clone();
        let lookup = move |n: &str| meta.get(n).cloned().flatten();
        let image = expand::expand(image, &lookup, self.escape).map_err(|e| BuildError::Message(e.to_string()))?;
        let mut stage = Stage {
            name,
            image: None,
            config: ImageConfig::scratch(),
            layers: Vec::new(),
            args: BTreeMap::new(),
            cmd_set_here: false,
        };
        if image == "scratch" {
            return Ok(stage);
        }
        // A previous stage, by name.
        if let Some((_, id)) = self
            .done
            .iter()
            .rev()
            .find(|(n, _)| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&image)))
        {
            if let Some(id) = id {
                self.load(&mut stage, id)?;
            }
            return Ok(stage);
        }
        let id = self.image_id(&image).await?;
        self.load(&mut stage, &id)?;
        Ok(stage)
    }

    /// An image by name: from the store, else from the caller (catalog, registry).
    async fn image_id(&self, name: &str) -> Result<String, BuildError> {
        let reference = Reference::parse(name).map_err(|_| {
            BuildError::Message(format!(
                "invalid reference format: repository name ({name}) must be lowercase"
            ))
        })?;
        match self.bases.resolve(&self.store, &reference)? {
            Some(id) => Ok(id),
            None => self.bases.fetch(&reference, self.progress.clone()).await,
        }
    }

    fn load(&self, stage: &mut Stage, id: &str) -> Result<(), BuildError> {
        let image = self.store.image(id)?;
        stage.image = Some(id.to_string());
        stage.layers = image.record.layers.clone();
        stage.config = image.config;
        // What the base built on is its business; this build's steps follow from here.
        stage.config.parent = String::new();
        Ok(())
    }

    /// Records a step's result as a new image; returns its id.
    fn commit(&self, stage: &mut Stage, created_by: String, layer: Option<LayerRecord>) -> Result<String, BuildError> {
        let mut config = stage.config.clone();
        config.created = now_rfc3339();
        config.history.push(History {
            created: config.created.clone(),
            created_by,
            comment: String::new(),
            empty_layer: layer.is_none(),
        });
        if let Some(l) = &layer {
            stage.layers.push(l.clone());
            config.rootfs.diff_ids.push(l.diff_id.clone());
        }
        config.parent = stage.image.clone().unwrap_or_default();
        let id = self.store.put_image(&config, &stage.layers, stage.image.as_deref())?;
        stage.config = config;
        stage.image = Some(id.clone());
        Ok(id)
    }

    /// The cache, if allowed: a hit loads the cached image into the stage.
    fn cached(&self, stage: &mut Stage, key: &str) -> Result<bool, BuildError> {
        if self.request.no_cache {
            return Ok(false);
        }
        let Some(id) = self.bases.cache_get(&self.store, key) else {
            return Ok(false);
        };
        self.load(stage, &id)?;
        self.say(" ---> Using cache");
        self.say(format!(" ---> {}", short_id(&id)));
        Ok(true)
    }

    fn cache_key(stage: &Stage, created_by: &str, extra: &str) -> String {
        format!(
            "{}\n{}\n{}",
            stage.image.as_deref().unwrap_or("scratch"),
            created_by,
            extra
        )
    }

    async fn step(&mut self, stage: &mut Stage, i: &Instruction) -> Result<(), BuildError> {
        let nop = |text: String| format!("/bin/sh -c #(nop)  {text}");
        match &i.kind {
            Kind::From { .. } => unreachable!("handled by the caller"),
            Kind::Run { cmd, heredocs, .. } => return self.run_step(stage, cmd, heredocs).await,
            Kind::Copy {
                sources,
                dest,
                from,
                chown,
                chmod,
                heredocs,
                ..
            } => {
                return self
                    .copy_step(
                        stage,
                        "COPY",
                        sources,
                        dest,
                        from.as_deref(),
                        chown.as_deref(),
                        chmod.as_deref(),
                        heredocs,
                        false,
                    )
                    .await;
            }
            Kind::Add {
                sources,
                dest,
                chown,
                chmod,
                heredocs,
                ..
            } => {
                return self
                    .copy_step(
                        stage,
                        "ADD",
                        sources,
                        dest,
                        None,
                        chown.as_deref(),
                        chmod.as_deref(),
                        heredocs,
                        true,
                    )
                    .await;
            }
            Kind::Workdir(dir) => return self.workdir_step(stage, dir).await,
            _ => {}
        }
        // Metadata only: a new image config, no layer.
        let created_by = match &i.kind {
            Kind::Env(pairs) => {
                let mut set = Vec::new();
                for (k, v) in pairs {
                    let v = self.expand_word(stage, v)?;
                    if k.is_empty() {
                        return Err(BuildError::Message("ENV names can not be blank".into()));
                    }
                    stage.config.config.set_env(k, &v);
                    set.push(format!("{k}={v}"));
                }
                nop(format!("ENV {}", set.join(" ")))
            }
            Kind::Arg(args) => {
                for (name, default) in args {
                    self.used_args.insert(name.clone());
                    let value = match self.request.build_args.get(name) {
                        Some(v) => Some(v.clone()),
                        None => match default {
                            Some(d) => Some(self.expand_word(stage, d)?),
                            // A global ARG re-declared in the stage brings its value in.
                            None => self.meta_args.get(name).cloned().flatten(),
                        },
                    };
                    stage.args.insert(name.clone(), value);
                }
                nop(format!(
                    "ARG {}",
                    args.iter()
                        .map(|(n, d)| d.as_ref().map(|d| format!("{n}={d}")).unwrap_or(n.clone()))
                        .collect::<Vec<_>>()
                        .join(" ")
                ))
            }
            Kind::Label(pairs) => {
                let mut set = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand_word(stage, k)?;
                    let v = self.expand_word(stage, v)?;
                    set.push(format!("{k}={v}"));
                    stage.config.config.labels.insert(k, v);
                }
                nop(format!("LABEL {}", set.join(" ")))
            }
            Kind::Cmd(c) => {
                stage.config.config.cmd = Some(self.command(stage, c));
                stage.cmd_set_here = true;
                nop(format!(
                    "CMD {}",
                    json_words(stage.config.config.cmd.as_deref().unwrap_or(&[]))
                ))
            }
            Kind::Entrypoint(c) => {
                stage.config.config.entrypoint = Some(self.command(stage, c));
                // An inherited CMD would be an argument the new entrypoint never asked for.
                if !stage.cmd_set_here {
                    stage.config.config.cmd = None;
                }
                nop(format!(
                    "ENTRYPOINT {}",
                    json_words(stage.config.config.entrypoint.as_deref().unwrap_or(&[]))
                ))
            }
            Kind::Expose(ports) => {
                let mut list = Vec::new();
                for p in ports {
                    let words = expand::expand_words(p, &Self::lookup(stage), self.escape)
                        .map_err(|e| BuildError::Message(e.to_string()))?;
                    for word in words {
                        for port in expand_port(&word)? {
                            stage.config.config.exposed_ports.insert(port.clone(), Empty {});
                            list.push(port);
                        }
                    }
                }
                nop(format!("EXPOSE {}", list.join(" ")))
            }
            Kind::Volume(vols) => {
                let mut list = Vec::new();
                for v in vols {
                    let v = self.expand_word(stage, v)?;
                    if v.is_empty() {
                        return Err(BuildError::Message(
                            "VOLUME specified can not be an empty string".into(),
                        ));
                    }
                    stage.config.config.volumes.insert(v.clone(), Empty {});
                    list.push(v);
                }
                nop(format!("VOLUME [{}]", list.join(" ")))
            }
            Kind::User(u) => {
                let u = self.expand_word(stage, u)?;
                stage.config.config.user = u.clone();
                nop(format!("USER {u}"))
            }
            Kind::StopSignal(s) => {
                let s = self.expand_word(stage, s)?;
                stage.config.config.stop_signal = s.clone();
                nop(format!("STOPSIGNAL {s}"))
            }
            Kind::Shell(shell) => {
                stage.config.config.shell = Some(shell.clone());
                nop(format!("SHELL {}", json_words(shell)))
            }
            Kind::Maintainer(m) => {
                stage.config.author = m.clone();
                nop(format!("MAINTAINER {m}"))
            }
            Kind::Onbuild(inner) => {
                stage.config.config.on_build.push(inner.original.clone());
                nop(format!("ONBUILD {}", inner.original))
            }
            Kind::Healthcheck(h) => {
                let ns = |d: &Option<std::time::Duration>| d.map(|d| d.as_nanos() as i64).unwrap_or(0);
                stage.config.config.healthcheck = Some(match h {
                    Healthcheck::None => HealthConfig {
                        test: vec!["NONE".into()],
                        ..Default::default()
                    },
                    Healthcheck::Cmd {
                        test,
                        interval,
                        timeout,
                        start_period,
                        start_interval,
                        retries,
                    } => HealthConfig {
                        test: match test {
                            ShellOrExec::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
                            ShellOrExec::Exec(v) => {
                                std::iter::once("CMD".to_string()).chain(v.iter().cloned()).collect()
                            }
                        },
                        interval: ns(interval),
                        timeout: ns(timeout),
                        start_period: ns(start_period),
                        start_interval: ns(start_interval),
                        retries: retries.unwrap_or(0),
                    },
                });
                nop(format!(
                    "HEALTHCHECK {}",
                    stage
                        .config
                        .config
                        .healthcheck
                        .as_ref()
                        .map(|h| json_words(&h.test))
                        .unwrap_or_default()
                ))
            }
            _ => unreachable!("handled above"),
        };
        let key = Self::cache_key(stage, &created_by, "");
        if self.cached(stage, &key)? {
            return Ok(());
        }
        let id = self.commit(stage, created_by, None)?;
        self.bases.cache_put(&self.store, &key, &id)?;
        self.say(format!(" ---> {}", short_id(&id)));
        Ok(())
    }

    /// CMD, ENTRYPOINT: the exec form as written, the shell form behind the stage's shell.
    fn command(&self, stage: &Stage, c: &ShellOrExec) -> Vec<String> {
        match c {
            ShellOrExec::Exec(v) => v.clone(),
            ShellOrExec::Shell(s) => stage.shell().into_iter().chain(std::iter::once(s.clone())).collect(),
        }
    }

    async fn run_step(
        &mut self,
        stage: &mut Stage,
        cmd: &ShellOrExec,
        heredocs: &[dockerfile::Heredoc],
    ) -> Result<(), BuildError> {
        let mut args = self.command(stage, cmd);
        // `RUN <<EOF` runs the heredoc's text as the script.
        if let (ShellOrExec::Shell(s), Some(h)) = (cmd, heredocs.first())
            && s.trim_start().starts_with("<<")
        {
            args = stage
                .shell()
                .into_iter()
                .chain(std::iter::once(h.content.clone()))
                .collect();
        }
        // Build arguments in the RUN's environment, and in its cache key, as Docker does.
        let build_env: Vec<String> = stage
            .args
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();
        let shown = args.join(" ");
        let created_by = if build_env.is_empty() {
            shown.clone()
        } else {
            format!("|{} {} {}", build_env.len(), build_env.join(" "), shown)
        };
        let key = Self::cache_key(stage, &created_by, "");
        if self.cached(stage, &key)? {
            return Ok(());
        }
        let view = stage.view(&self.store);
        let (uid, gid, groups) = resolve_user(&view, &stage.config.config.user)?;
        let mut env: Vec<String> = build_env.clone();
        env.extend(stage.config.config.env.iter().cloned());
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(crate::spec::DEFAULT_PATH.to_string());
        }
        let staging = self.store.temp_dir("run")?;
        let (upper, work, mountpoint) = (staging.join("upper"), staging.join("work"), staging.join("merged"));
        for d in [&upper, &work, &mountpoint] {
            std::fs::create_dir_all(d).map_err(|e| BuildError::Message(format!("preparing a RUN step: {e}")))?;
        }
        let container = short_id(&crate::image::store::sha256_digest(
            staging.to_string_lossy().as_bytes(),
        ));
        self.say(format!(" ---> Running in {container}"));
        let request = RunRequest {
            lower: view.layers().to_vec(),
            upper: upper.clone(),
            work,
            mountpoint,
            args,
            env,
            cwd: if stage.config.config.working_dir.is_empty() {
                "/".into()
            } else {
                stage.config.config.working_dir.clone()
            },
            uid,
            gid,
            groups,
        };
        let code = self.runner.run(request, self.progress.clone()).await;
        self.say(format!(" ---> Removed intermediate container {container}"));
        let code = match code {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
        };
        if code != 0 {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(BuildError::RunFailed { command: shown, code });
        }
        let store = self.store.clone();
        let layer = tokio::task::spawn_blocking(move || {
            let r = store.commit_dir(&upper);
            let _ = std::fs::remove_dir_all(&staging);
            r
        })
        .await
        .map_err(|e| BuildError::Message(e.to_string()))??;
        let id = self.commit(stage, created_by, Some(layer))?;
        self.bases.cache_put(&self.store, &key, &id)?;
        self.say(format!(" ---> {}", short_id(&id)));
        Ok(())
    }

    async fn workdir_step(&mut self, stage: &mut Stage, dir: &str) -> Result<(), BuildError> {
        let dir = self.expand_word(stage, dir)?;
        let current = if stage.config.config.working_dir.is_empty() {
            "/".to_string()
        } else {
            stage.config.config.working_dir.clone()
        };
        let path = if dir.starts_with('/') {
            PathBuf::from(&dir)
        } else {
            Path::new(&current).join(&dir)
        };
        let path = normalize(&path);
        stage.config.config.working_dir = path.display().to_string();
        let created_by = format!("/bin/sh -c #(nop) WORKDIR {}", path.display());
        let key = Self::cache_key(stage, &created_by, "");
        if self.cached(stage, &key)? {
            return Ok(());
        }
        // The directory must exist for later steps to start in it: make it in a layer.
        let view = stage.view(&self.store);
        let layer = if view.is_dir(&path) {
            None
        } else {
            let store = self.store.clone();
            let target = path.clone();
            let (uid, gid, _) = resolve_user(&view, &stage.config.config.user).unwrap_or((0, 0, Vec::new()));
            Some(
                tokio::task::spawn_blocking(move || -> Result<LayerRecord, BuildError> {
                    let staging = store.temp_dir("workdir")?;
                    let upper = staging.join("upper");
                    std::fs::create_dir(&upper).map_err(|e| BuildError::Message(e.to_string()))?;
                    super::copy::make_dirs(&upper, &view, &target, (uid, gid))?;
                    let layer = store.commit_dir(&upper)?;
                    let _ = std::fs::remove_dir_all(&staging);
                    Ok(layer)
                })
                .await
                .map_err(|e| BuildError::Message(e.to_string()))??,
            )
        };
        let id = self.commit(stage, created_by, layer)?;
        self.bases.cache_put(&self.store, &key, &id)?;
        self.say(format!(" ---> {}", short_id(&id)));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy_step(
        &mut self,
        stage: &mut Stage,
        what: &str,
        sources: &[String],
        dest: &str,
        from: Option<&str>,
        chown: Option<&str>,
        chmod: Option<&str>,
        heredocs: &[dockerfile::Heredoc],
        add: bool,
    ) -> Result<(), BuildError> {
        let dest = self.expand_word(stage, dest)?;
        let mut plan = super::copy::Plan::default();
        let workdir = if stage.config.config.working_dir.is_empty() {
            "/".to_string()
        } else {
            stage.config.config.working_dir.clone()
        };
        plan.dest = super::copy::destination(&workdir, &dest);
        plan.dest_is_dir_hint = dest.ends_with('/') || dest == "." || sources.len() > 1;
        let view = stage.view(&self.store);
        plan.owner = match chown {
            Some(c) => {
                let c = self.expand_word(stage, c)?;
                Some(super::copy::resolve_chown(&view, &c)?)
            }
            None => None,
        };
        plan.mode = match chmod {
            Some(m) => Some(
                u32::from_str_radix(m, 8).map_err(|_| BuildError::Message(format!("invalid chmod parameter: {m}")))?,
            ),
            None => None,
        };
        // Where the sources come from: the context, a stage, or an image.
        let source_root: PathBuf;
        let mut from_view = None;
        match from {
            None => source_root = self.context.root.clone(),
            Some(f) => {
                let f = self.expand_word(stage, f)?;
                let id = match self.stage_image(&f) {
                    Some(id) => id,
                    None => self.image_id(&f).await?,
                };
                let image = self.store.image(&id)?;
                from_view = Some(MergedView::new(self.store.lower_dirs(&image)));
                source_root = PathBuf::from("/");
            }
        }
        for s in sources {
            if let Some(h) = heredocs.iter().find(|h| {
                s.strip_prefix("<<")
                    .map(|n| n.trim_start_matches('-').trim_matches(['"', '\'']))
                    == Some(h.name.as_str())
            }) {
                let content = if h.expand {
                    self.expand_word(stage, &h.content)
                        .unwrap_or_else(|_| h.content.clone())
                } else {
                    h.content.clone()
                };
                plan.inline.push((h.name.clone(), content.into_bytes()));
                continue;
            }
            let s = self.expand_word(stage, s)?;
            if add && (s.starts_with("http://") || s.starts_with("https://")) {
                return Err(BuildError::Message(format!(
                    "ADD failed: downloading {s} is not possible: this machine has no route to the internet"
                )));
            }
            match &from_view {
                None => {
                    let found = self.context.expand_source(&s);
                    if found.is_empty() {
                        return Err(if what == "ADD" {
                            BuildError::Message(format!(
                                "ADD failed: file not found in build context or excluded by .dockerignore: stat {s}: file does not exist"
                            ))
                        } else {
                            BuildError::CopyNotFound(s)
                        });
                    }
                    if found.len() > 1 {
                        plan.dest_is_dir_hint = true;
                    }
                    plan.sources.extend(found.into_iter().map(super::copy::Source::Context));
                }
                Some(v) => {
                    let resolved = v.resolve(Path::new(&s), true).ok_or_else(|| {
                        BuildError::Message(format!(
                            "COPY failed: stat {}: file does not exist",
                            Path::new("/").join(s.trim_start_matches('/')).display()
                        ))
                    })?;
                    plan.sources.push(super::copy::Source::Image(resolved.path));
                }
            }
        }
        let checksum = {
            let context = self.context.clone();
            let plan = plan.clone();
            let from_view = from_view.clone();
            tokio::task::spawn_blocking(move || super::copy::checksum(&context, from_view.as_ref(), &plan))
                .await
                .map_err(|e| BuildError::Message(e.to_string()))?
        };
        let created_by = format!(
            "/bin/sh -c #(nop) {what} {}:{} in {} ",
            if plan.sources.len() + plan.inline.len() > 1 {
                "multi"
            } else {
                "dir"
            },
            checksum,
            plan.dest.display()
        );
        let key = Self::cache_key(stage, &created_by, &format!("{:?} {:?}", plan.owner, plan.mode));
        if self.cached(stage, &key)? {
            return Ok(());
        }
        let store = self.store.clone();
        let context = self.context.clone();
        let layer = tokio::task::spawn_blocking(move || -> Result<LayerRecord, BuildError> {
            let staging = store.temp_dir("copy")?;
            let upper = staging.join("upper");
            std::fs::create_dir(&upper).map_err(|e| BuildError::Message(e.to_string()))?;
            let result = super::copy::apply(&upper, &view, &context, from_view.as_ref(), &source_root, &plan, add);
            let layer = result.and_then(|_| store.commit_dir(&upper).map_err(BuildError::from));
            let _ = std::fs::remove_dir_all(&staging);
            layer
        })
        .await
        .map_err(|e| BuildError::Message(e.to_string()))??;
        let id = self.commit(stage, created_by, Some(layer))?;
        self.bases.cache_put(&self.store, &key, &id)?;
        self.say(format!(" ---> {}", short_id(&id)));
        Ok(())
    }

    /// A finished stage's image, by name or index.
    fn stage_image(&self, name: &str) -> Option<String> {
        if let Ok(n) = name.parse::<usize>() {
            return self.done.get(n).and_then(|(_, id)| id.clone());
        }
        self.done
            .iter()
            .rev()
            .find(|(n, _)| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .and_then(|(_, id)| id.clone())
    }
}

/// A label word as Docker prints it in the LABEL step it adds: quoted when it must be.
fn quote_label(s: &str) -> String {
    if !s.is_empty() && !s.contains([' ', '"', '\\', '=', '$', '\t']) {
        return s.to_string();
    }
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$")
    )
}

fn json_words(words: &[String]) -> String {
    serde_json::to_string(words).unwrap_or_default()
}

/// "80" -> "80/tcp"; "8000-8002/udp" -> three ports.
fn expand_port(word: &str) -> Result<Vec<String>, BuildError> {
    let (ports, proto) = word.split_once('/').unwrap_or((word, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(BuildError::Message(format!("invalid proto: {proto}")));
    }
    let bad = || BuildError::Message(format!("invalid containerPort: {ports}"));
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = ports.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(bad());
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// "a/./b/../c" -> "a/c", lexically.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// USER as RUN applies it: "name", "uid", "name:group", "uid:gid", looked up in the image.
pub fn resolve_user(view: &MergedView, user: &str) -> Result<(u32, u32, Vec<u32>), BuildError> {
    if user.is_empty() {
        return Ok((0, 0, Vec::new()));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let (uid, default_gid, name) = match u.parse::<u32>() {
        Ok(n) => match view.lookup_user(u) {
            Some((uid, gid)) => (uid, gid, Some(u.to_string())),
            None => (n, 0, None),
        },
        Err(_) => {
            let (uid, gid) = view.lookup_user(u).ok_or_else(|| {
                BuildError::Message(format!("unable to find user {u}: no matching entries in passwd file"))
            })?;
            (uid, gid, Some(u.to_string()))
        }
    };
    let gid = match g {
        None => default_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => view.lookup_group(g).ok_or_else(|| {
                BuildError::Message(format!("unable to find group {g}: no matching entries in group file"))
            })?,
        },
    };
    let groups = name.map(|n| view.groups_of(&n)).unwrap_or_default();
    Ok((uid, gid, groups))
}
