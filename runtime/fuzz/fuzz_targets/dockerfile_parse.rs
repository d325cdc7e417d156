//! Parses arbitrary input as a Dockerfile; when it parses, expands every word the builder
//! would expand (and heredoc bodies), re-parses every ONBUILD trigger, and checks the
//! line numbers and ONBUILD's restrictions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_runtime_fuzz::build::dockerfile::{self, Healthcheck, Heredoc, Instruction, Kind, ShellOrExec};
use slipway_runtime_fuzz::build::expand::{expand, expand_heredoc, expand_words};

/// Some variables are unset, some empty, some hold blanks and newlines.
fn lookup(name: &str) -> Option<String> {
    match name.len() % 4 {
        0 => None,
        1 => Some(String::new()),
        2 => Some(format!("{name} v\nw*?")),
        _ => Some(name.repeat(3)),
    }
}

fn word(w: &str, escape: char) {
    let _ = expand(w, &lookup, escape);
    let _ = expand_words(w, &lookup, escape);
}

/// COPY and ADD expand an unquoted heredoc's body.
fn file_heredocs(heredocs: &[Heredoc]) {
    for h in heredocs {
        let _ = expand_heredoc(&h.body(), &lookup);
    }
}

fn shell_or_exec(c: &ShellOrExec, escape: char) {
    match c {
        ShellOrExec::Shell(s) => word(s, escape),
        ShellOrExec::Exec(v) => v.iter().for_each(|w| word(w, escape)),
    }
}

fn instruction(ins: &Instruction, escape: char) {
    assert!(ins.line >= 1 && ins.line <= ins.end_line, "{ins:?}");
    match &ins.kind {
        Kind::From { image, name, platform } => {
            word(image, escape);
            name.iter().chain(platform).for_each(|w| word(w, escape));
        }
        Kind::Run {
            cmd,
            heredocs,
            network,
            mounts,
        } => {
            shell_or_exec(cmd, escape);
            if let ShellOrExec::Shell(cmd) = cmd {
                let _ = dockerfile::run_script(cmd, heredocs);
            }
            network.iter().chain(mounts).for_each(|w| word(w, escape));
        }
        Kind::Cmd(c) | Kind::Entrypoint(c) => shell_or_exec(c, escape),
        Kind::Env(pairs) | Kind::Label(pairs) => pairs.iter().for_each(|(k, v)| {
            word(k, escape);
            word(v, escape);
        }),
        Kind::Arg(pairs) => pairs.iter().for_each(|(k, v)| {
            word(k, escape);
            v.iter().for_each(|v| word(v, escape));
        }),
        Kind::Workdir(w) | Kind::User(w) | Kind::StopSignal(w) | Kind::Maintainer(w) => word(w, escape),
        Kind::Expose(v) | Kind::Volume(v) | Kind::Shell(v) => v.iter().for_each(|w| word(w, escape)),
        Kind::Healthcheck(Healthcheck::None) => {}
        Kind::Healthcheck(Healthcheck::Cmd { test, .. }) => shell_or_exec(test, escape),
        Kind::Onbuild(inner) => {
            assert!(!matches!(
                inner.kind,
                Kind::Onbuild(_) | Kind::From { .. } | Kind::Maintainer(_)
            ));
            instruction(inner, escape);
            if let Some(trigger) = ins.onbuild_trigger() {
                let _ = dockerfile::parse_onbuild_trigger(&trigger);
            }
        }
        Kind::Copy {
            sources,
            dest,
            from,
            chown,
            chmod,
            exclude,
            heredocs,
            ..
        } => {
            sources
                .iter()
                .chain([dest])
                .chain(from)
                .chain(chown)
                .chain(chmod)
                .chain(exclude)
                .for_each(|w| word(w, escape));
            file_heredocs(heredocs);
        }
        Kind::Add {
            sources,
            dest,
            chown,
            chmod,
            checksum,
            heredocs,
            ..
        } => {
            sources
                .iter()
                .chain([dest])
                .chain(chown)
                .chain(chmod)
                .chain(checksum)
                .for_each(|w| word(w, escape));
            file_heredocs(heredocs);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(df) = dockerfile::parse(&text) else { return };
    assert!(!df.instructions.is_empty());
    assert!(df.escape == '\\' || df.escape == '`');
    let mut last = 0;
    for ins in &df.instructions {
        assert!(ins.line > last, "lines go forward");
        last = ins.end_line;
        instruction(ins, df.escape);
    }
});
