//! `slipway runtime`: the embedded runtime over plain OCI bundles, with runc's commands, so
//! the very same bundle can be run by crun, runc and Slipway.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;
use slipway_runtime::Runtime;

use crate::cli::{RuntimeArgs, RuntimeCommand};

/// "TERM", "SIGTERM", "15" and "sigterm" all name SIGTERM.
pub fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).with_context(|| format!("no signal {n}"));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().with_context(|| format!("no signal {s}"))
}

pub fn run(args: &RuntimeArgs) -> Result<ExitCode> {
    if let RuntimeCommand::Spec {
        bundle,
        args,
        no_terminal,
    } = &args.command
    {
        let argv: Vec<&str> = if args.is_empty() {
            vec!["sh"]
        } else {
            args.iter().map(String::as_str).collect()
        };
        let spec = slipway_runtime::spec::docker_default(&argv, !no_terminal);
        let path = bundle.join("config.json");
        if path.exists() {
            bail!("{} exists already", path.display());
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&spec)?)
            .with_context(|| format!("writing {}", path.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
    if let RuntimeCommand::Monitor { id } = &args.command {
        slipway_runtime::monitor::server::run(&args.root, id)?;
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = Runtime::new(&args.root)?;
    match &args.command {
        RuntimeCommand::Spec { .. } | RuntimeCommand::Monitor { .. } => unreachable!("handled above"),
        RuntimeCommand::Run { bundle, detach, id } => {
            let code = runtime.run(id, bundle, *detach)?;
            Ok(ExitCode::from(code.clamp(0, 255) as u8))
        }
        RuntimeCommand::Create {
            bundle,
            console_socket,
            pid_file,
            id,
        } => {
            let options = slipway_runtime::container::CreateOptions {
                console_socket: console_socket.clone(),
                pid_file: pid_file.clone(),
            };
            runtime.create(id, bundle, &options)?;
            Ok(ExitCode::SUCCESS)
        }
        RuntimeCommand::Start { id } => {
            runtime.start(id)?;
            Ok(ExitCode::SUCCESS)
        }
        RuntimeCommand::State { id } => {
            println!("{}", serde_json::to_string_pretty(&runtime.state(id)?)?);
            Ok(ExitCode::SUCCESS)
        }
        RuntimeCommand::Kill { id, signal } => {
            let signal = parse_signal(signal.as_deref().unwrap_or("TERM"))?;
            runtime.kill(id, signal)?;
            Ok(ExitCode::SUCCESS)
        }
        RuntimeCommand::Delete { force, id } => {
            runtime.delete(id, *force)?;
            Ok(ExitCode::SUCCESS)
        }
        RuntimeCommand::List => {
            println!("{:<24} {:>8} {:<10} BUNDLE", "ID", "PID", "STATUS");
            for id in runtime.state_dir().list() {
                if let Ok(saved) = runtime.state_dir().load(&id) {
                    let status = runtime.status(&saved);
                    println!("{:<24} {:>8} {:<10} {}", id, saved.pid, status, saved.bundle.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        for s in ["TERM", "SIGTERM", "sigterm", "15"] {
            assert_eq!(parse_signal(s).unwrap(), Signal::SIGTERM);
        }
        assert!(parse_signal("NOPE").is_err());
    }
}
