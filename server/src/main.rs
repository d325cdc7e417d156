//! The `slipway` binary.

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use slipway::cli::{BenchCommand, Cli, Command, LessonsCommand};
use slipway::config::{FileSettings, Settings};
use slipway::course::{Course, lint};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("SLIPWAY_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("slipway: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each once: our error types often show their source in
/// their own message already, and anyhow's `{:#}` would repeat it.
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

fn run(cli: Cli) -> Result<ExitCode> {
    let file = FileSettings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve(args) => {
            let settings = Settings::resolve(&args, &file);
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(slipway::web::serve(settings))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Lessons(LessonsCommand::Verify {
            common,
            only,
            catalog_dir,
            jobs,
            settle,
            json,
        }) => {
            let settings = Settings::resolve_common(&common, &file);
            let options = slipway::grader::verify::Options {
                lessons: settings.lessons,
                only,
                catalog_dir,
                jobs,
                settle: std::time::Duration::from_secs(settle),
            };
            let reports = slipway::grader::verify::run(&options)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            }
            let failed = reports.iter().filter(|r| !r.passed).count();
            eprintln!(
                "{} exercises verified: {} passed, {failed} failed",
                reports.len(),
                reports.len() - failed
            );
            Ok(if failed == 0 && !reports.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Lessons(LessonsCommand::Lint { common, strict }) => {
            let settings = Settings::resolve_common(&common, &file);
            let course = Course::load(&settings.lessons);
            let report = lint::lint(&course);
            for p in &report.problems {
                println!("{p}");
            }
            if report.lessons == 0 && course.problems.is_empty() {
                println!("{}: error: no lessons found", settings.lessons.display());
                return Ok(ExitCode::FAILURE);
            }
            eprintln!(
                "{} lessons checked: {} errors, {} warnings",
                report.lessons,
                report.errors(),
                report.warnings()
            );
            Ok(if report.passes(strict) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Import(args) => slipway::import::run(&args),
        Command::Runtime(args) => slipway::runtime_cli::run(&args),
        Command::Playground(args) => {
            let settings = Settings::resolve_common(&args.common, &file);
            slipway::playground_cli::run(&settings, args)
        }
        Command::Images(args) => {
            let settings = Settings::resolve_common(&args.common, &file);
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(slipway::images_cli::run(&settings, args.command))
        }
        Command::Bench(BenchCommand::Runtime { runs, warmup, json }) => {
            let figures = slipway::bench::runtime::run(&slipway::bench::runtime::Options { runs, warmup })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&figures)?);
            } else {
                slipway::bench::runtime::print(&figures);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Images {
            common,
            rebuilds,
            rounds,
            json,
        }) => {
            let settings = Settings::resolve_common(&common, &file);
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let catalog = slipway::catalog::Catalog::open(&settings.images, &settings.data_dir.join("runtime"))?;
            let options = slipway::bench::images::Options { rebuilds, rounds };
            let figures = runtime.block_on(slipway::bench::images::run(&catalog, &options))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&figures)?);
            } else {
                slipway::bench::images::print(&figures);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Grading {
            catalog_dir,
            rounds,
            json,
        }) => {
            let figures = slipway::bench::grading::run(&slipway::bench::grading::Options { catalog_dir, rounds })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&figures)?);
            } else {
                slipway::bench::grading::print(&figures);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Engine {
            catalog_dir,
            runs,
            warmup,
            compose_runs,
            json,
        }) => {
            let options = slipway::bench::engine::Options {
                catalog_dir,
                lessons: slipway::config::default_lessons_dir(),
                runs,
                warmup,
                compose_runs,
            };
            let figures = slipway::bench::engine::run(&options)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&figures)?);
            } else {
                slipway::bench::engine::print(&figures);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Playground {
            catalog_dir,
            runs,
            terminals,
            terminals_per_playground,
            seconds,
            idle,
            json,
        }) => {
            let options = slipway::bench::playground::Options {
                catalog_dir,
                lessons: slipway::config::default_lessons_dir(),
                runs,
                terminals,
                terminals_per_playground,
                seconds,
                idle,
            };
            let figures = slipway::bench::playground::run(&options)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&figures)?);
            } else {
                slipway::bench::playground::print(&figures);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Site {
            common,
            duration,
            connections,
            threads,
            json,
        }) => {
            let settings = Settings::resolve_common(&common, &file);
            let options = slipway::bench::site::Options {
                lessons: settings.lessons,
                duration,
                connections,
                threads,
            };
            let figures = slipway::bench::site::run(&options)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&figures)?);
            } else {
                slipway::bench::site::print(&figures);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
