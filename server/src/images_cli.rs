//! `slipway images`: the image store, the offline catalog and the builder from a terminal.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use slipway_runtime::build::builder::{self, BuildRequest};
use slipway_runtime::build::runner::{ContainerRunner, RunNetwork};
use slipway_runtime::image::reference::Reference;
use slipway_runtime::image::store::{Removed, short_id};

use crate::catalog::{Catalog, Report};
use crate::cli::ImagesCommand;
use crate::config::Settings;

/// "2.13MB", "163MB": three significant digits in powers of 1000, as `docker images`
/// prints sizes (go-units' HumanSizeWithPrecision).
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    // %.3g: as many decimals as leave three significant digits, trailing zeros dropped.
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let mut text = format!("{v:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", units[i])
}

/// "5 minutes ago", "About an hour ago": how long ago an RFC 3339 time was, in the words
/// of `docker images` (go-units' HumanDuration).
pub fn human_ago(created: &str) -> String {
    let Ok(then) = time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339) else {
        return "N/A".into();
    };
    let secs = (time::OffsetDateTime::now_utc() - then).whole_seconds().max(0);
    let hours = (secs as f64 / 3600.0 + 0.5) as i64;
    let text = match secs {
        0 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        s if s < 60 => format!("{s} seconds"),
        s if s / 60 == 1 => "About a minute".to_string(),
        s if s / 60 < 60 => format!("{} minutes", s / 60),
        _ if hours == 1 => "About an hour".to_string(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    };
    format!("{text} ago")
}

fn terminal_report() -> Report {
    Arc::new(|name: &str, line: &str| {
        println!("[{name}] {line}");
        let _ = std::io::stdout().flush();
    })
}

pub async fn run(settings: &Settings, command: ImagesCommand) -> Result<ExitCode> {
    let catalog = Catalog::open(&settings.images, &settings.data_dir.join("runtime"))?;
    let store = catalog.store.clone();
    match command {
        ImagesCommand::Ls { all, json } => {
            let images = store.list(all)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&images)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<40} {:<20} {:<14} {:<22} {:>10}",
                "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"
            );
            for image in images {
                let rows: Vec<(String, String)> = if image.tags.is_empty() {
                    vec![("<none>".into(), "<none>".into())]
                } else {
                    image
                        .tags
                        .iter()
                        .map(|t| {
                            t.rsplit_once(':')
                                .map(|(r, t)| (r.to_string(), t.to_string()))
                                .unwrap_or((t.clone(), "<none>".into()))
                        })
                        .collect()
                };
                for (repo, tag) in rows {
                    println!(
                        "{:<40} {:<20} {:<14} {:<22} {:>10}",
                        repo,
                        tag,
                        short_id(&image.id),
                        human_ago(&image.created),
                        human_size(image.size)
                    );
                }
            }
        }
        ImagesCommand::Ensure { names } => {
            let built = catalog.ensure(&names, terminal_report()).await?;
            if built.is_empty() {
                println!(
                    "nothing to build: the store has {}",
                    if names.is_empty() {
                        "the whole catalog".into()
                    } else {
                        names.join(", ")
                    }
                );
            } else {
                println!("built: {}", built.join(", "));
            }
        }
        ImagesCommand::Build {
            tag,
            file,
            build_arg,
            target,
            no_cache,
            quiet,
            network,
            context,
        } => {
            let mut build_args = BTreeMap::new();
            for a in build_arg {
                match a.split_once('=') {
                    Some((k, v)) => build_args.insert(k.to_string(), v.to_string()),
                    // Docker takes a bare name from the environment.
                    None => build_args.insert(a.clone(), std::env::var(&a).unwrap_or_default()),
                };
            }
            let tags = tag.iter().map(|t| Reference::parse(t)).collect::<Result<Vec<_>, _>>()?;
            if !context.is_dir() {
                bail!(
                    "unable to prepare context: path {:?} not found",
                    context.display().to_string()
                );
            }
            let request = BuildRequest {
                context: context.canonicalize()?,
                dockerfile: file.unwrap_or_default(),
                tags,
                build_args,
                target,
                no_cache,
                labels: BTreeMap::new(),
            };
            let runner = ContainerRunner {
                containers: catalog.containers.clone(),
                network: if network == "none" {
                    RunNetwork::None
                } else {
                    RunNetwork::Host
                },
                cgroup_parent: catalog.cgroup_parent.clone(),
                resolv_conf: Some("/etc/resolv.conf".into()),
                hosts: None,
                scratch: catalog.scratch.join("steps"),
            };
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
            let printer = tokio::spawn(async move {
                while let Some(s) = rx.recv().await {
                    if !quiet {
                        print!("{s}");
                        let _ = std::io::stdout().flush();
                    }
                }
            });
            // FROM may name a catalog image the store lacks yet: build it first.
            struct FromCatalog<'a>(&'a Catalog);
            impl builder::BaseImages for FromCatalog<'_> {
                fn fetch<'a>(
                    &'a self,
                    reference: &'a Reference,
                    progress: builder::Progress,
                ) -> builder::BoxFuture<'a, Result<String, builder::BuildError>> {
                    Box::pin(async move {
                        let name = reference.familiar_name();
                        if !Catalog::names().unwrap_or_default().contains(&name) {
                            return Err(builder::BuildError::BaseNotFound(name));
                        }
                        let p = progress.clone();
                        let report: Report = Arc::new(move |n: &str, l: &str| {
                            let _ = p.send(format!("[{n}] {l}\n"));
                        });
                        self.0
                            .ensure(std::slice::from_ref(&name), report)
                            .await
                            .map_err(|e| builder::BuildError::Message(format!("{e:#}")))?;
                        let familiar = reference.clone().with_default_tag().familiar();
                        self.0
                            .store
                            .resolve(&familiar)
                            .map(|i| i.id().to_string())
                            .map_err(|_| builder::BuildError::BaseNotFound(familiar))
                    })
                }
            }
            let result = builder::build(store.clone(), &FromCatalog(&catalog), &runner, request, tx).await;
            let _ = printer.await;
            match result {
                Ok(built) => {
                    if quiet {
                        println!("{}", built.id);
                    }
                }
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        ImagesCommand::Tag { source, target } => {
            let image = store.resolve(&source)?;
            store.tag(image.id(), &Reference::parse(&target)?)?;
        }
        ImagesCommand::Rm { force, names } => {
            let in_use = in_use(&catalog);
            let mut failed = false;
            for name in names {
                match store.remove(&name, force, &in_use) {
                    Ok(removed) => {
                        for r in removed {
                            match r {
                                Removed::Untagged(t) => println!("Untagged: {t}"),
                                Removed::Deleted(id) => println!("Deleted: {id}"),
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
                        failed = true;
                    }
                }
            }
            store.gc()?;
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
        ImagesCommand::Inspect { name } => {
            let image = store.resolve(&name)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "Id": image.id(),
                    "RepoTags": image.tags,
                    "RepoDigests": image.record.repo_digests,
                    "Parent": image.record.parent.clone().unwrap_or_default(),
                    "Size": image.size(),
                    "Created": image.config.created,
                    "Architecture": image.config.architecture,
                    "Os": image.config.os,
                    "Config": image.config.config,
                    "RootFS": image.config.rootfs,
                }))?
            );
        }
        ImagesCommand::History { name } => {
            let image = store.resolve(&name)?;
            println!("{:<14} {:<22} {:<60} {:>10}", "IMAGE", "CREATED", "CREATED BY", "SIZE");
            let mut layers = image.record.layers.iter().rev();
            for h in image.config.history.iter().rev() {
                let size = if h.empty_layer {
                    0
                } else {
                    layers.next().map(|l| l.size).unwrap_or(0)
                };
                let by: String = h.created_by.chars().take(60).collect();
                println!(
                    "{:<14} {:<22} {:<60} {:>10}",
                    "<missing>",
                    human_ago(&h.created),
                    by,
                    human_size(size)
                );
            }
        }
        ImagesCommand::Save { output, names } => {
            let file = std::fs::File::create(&output).with_context(|| format!("creating {}", output.display()))?;
            slipway_runtime::image::archive::save(&store, &names, std::io::BufWriter::new(file))?;
        }
        ImagesCommand::Load { input } => {
            let file = std::fs::File::open(&input).with_context(|| format!("opening {}", input.display()))?;
            for loaded in slipway_runtime::image::archive::load(&store, std::io::BufReader::new(file))? {
                println!("Loaded image: {loaded}");
            }
        }
        ImagesCommand::Gc => {
            let stats = store.gc()?;
            println!(
                "removed {} blobs, {} layers, {} cache entries; {} reclaimed",
                stats.blobs,
                stats.layers,
                stats.cache_entries,
                human_size(stats.bytes)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Images that containers under this data directory still use: never deleted.
fn in_use(_catalog: &Catalog) -> HashSet<String> {
    // The engine (next issue) records containers' images; until then the store's own
    // containers are only build steps, which never outlive a build.
    HashSet::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_dockers() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(2_130_000), "2.13MB");
        assert_eq!(human_size(79_742_000), "79.7MB");
        assert_eq!(human_size(163_273_000), "163MB");
        assert_eq!(human_size(1_000_000), "1MB");
        assert_eq!(human_size(1_500_000_000), "1.5GB");
    }

    #[test]
    fn ages_read_as_dockers() {
        let ago = |secs: i64| {
            let t = time::OffsetDateTime::now_utc() - time::Duration::seconds(secs);
            human_ago(&t.format(&time::format_description::well_known::Rfc3339).unwrap())
        };
        assert_eq!(ago(30), "30 seconds ago");
        assert_eq!(ago(90), "About a minute ago");
        assert_eq!(ago(600), "10 minutes ago");
        assert_eq!(ago(3700), "About an hour ago");
        assert_eq!(ago(5 * 3600), "5 hours ago");
        assert_eq!(ago(3 * 86400), "3 days ago");
        assert_eq!(ago(20 * 86400), "2 weeks ago");
        assert_eq!(human_ago("not a time"), "N/A");
    }
}
