//! The second pass (buildkit's `instructions.ParseInstruction`): each logical line checked
//! and turned into a [`Kind`], with Docker's messages.

use std::collections::HashMap;
use std::time::Duration;

use super::duration::parse_go_duration;
use super::heredoc::heredoc_word;
use super::lines::{Args, Node};
use super::words::go_lower;
use super::{Healthcheck, Heredoc, Instruction, Kind, ParseError, ShellOrExec};

/// Every instruction name, for "did you mean" suggestions.
const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Builds the instruction of a logical line.
pub(super) fn build(node: &Node) -> Result<Instruction, ParseError> {
    let kind = kind_of(node, &node.heredocs).map_err(|m| ParseError::new(node.start, m))?;
    Ok(Instruction {
        line: node.start,
        end_line: node.end,
        original: node.original.trim().to_string(),
        kind,
    })
}

/// The heredocs an instruction carries.
pub(super) fn heredocs_of(kind: &Kind) -> &[Heredoc] {
    match kind {
        Kind::Run { heredocs, .. } | Kind::Copy { heredocs, .. } | Kind::Add { heredocs, .. } => heredocs,
        _ => &[],
    }
}

fn kind_of(node: &Node, heredocs: &[Heredoc]) -> Result<Kind, String> {
    let args = node.arg_list();
    let flags = Flags { args: &node.flags };
    let lower = go_lower(&node.cmd);
    Ok(match lower.as_str() {
        "from" => {
            let name = stage_name(&args)?;
            let v = flags.parse(&[("platform", FlagType::String)])?;
            Kind::From {
                image: args[0].clone(),
                name,
                platform: v.string("platform"),
            }
        }
        "run" => {
            let v = flags.parse(&[("mount", FlagType::Strings), ("network", FlagType::String)])?;
            let network = v.string_given("network");
            if let Some(n) = &network
                && !matches!(n.as_str(), "default" | "none" | "host")
            {
                return Err(format!("invalid network mode {}", go_quote(n)));
            }
            Kind::Run {
                cmd: shell_or_exec(&args, node.json),
                heredocs: heredocs.to_vec(),
                network,
                mounts: v.strings("mount"),
            }
        }
        "cmd" => {
            flags.parse(&[])?;
            Kind::Cmd(shell_or_exec(&args, node.json))
        }
        "entrypoint" => {
            flags.parse(&[])?;
            Kind::Entrypoint(shell_or_exec(&args, node.json))
        }
        "env" | "label" => {
            flags.parse(&[])?;
            let name = if lower == "env" { "ENV" } else { "LABEL" };
            let Args::Pairs(pairs) = &node.args else {
                return Err(format!("{name} requires at least one argument"));
            };
            if pairs.is_empty() {
                return Err(format!("{name} requires at least one argument"));
            }
            if pairs.iter().any(|(k, _)| k.is_empty()) {
                return Err(format!("{name} names can not be blank"));
            }
            if lower == "env" {
                Kind::Env(pairs.clone())
            } else {
                Kind::Label(pairs.clone())
            }
        }
        "arg" => {
            // Docker does not look at ARG's flags.
            if args.is_empty() {
                return Err("ARG requires at least one argument".into());
            }
            let mut pairs = Vec::with_capacity(args.len());
            for arg in &args {
                match arg.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".into()),
                    Some((k, v)) => pairs.push((k.to_string(), Some(v.to_string()))),
                    None => pairs.push((arg.clone(), None)),
                }
            }
            Kind::Arg(pairs)
        }
        "workdir" => Kind::Workdir(one_arg("WORKDIR", &args, Some(&flags))?),
        "user" => Kind::User(one_arg("USER", &args, Some(&flags))?),
        "maintainer" => Kind::Maintainer(one_arg("MAINTAINER", &args, Some(&flags))?),
        // Docker does not look at STOPSIGNAL's flags.
        "stopsignal" => Kind::StopSignal(one_arg("STOPSIGNAL", &args, None)?),
        "expose" => {
            if args.is_empty() {
                return Err("EXPOSE requires at least one argument".into());
            }
            flags.parse(&[])?;
            Kind::Expose(args)
        }
        "volume" => {
            if args.is_empty() {
                return Err("VOLUME requires at least one argument".into());
            }
            flags.parse(&[])?;
            let mut volumes = Vec::with_capacity(args.len());
            for v in &args {
                let v = v.trim();
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                volumes.push(v.to_string());
            }
            Kind::Volume(volumes)
        }
        "shell" => {
            flags.parse(&[])?;
            if args.is_empty() {
                return Err("SHELL requires at least one argument".into());
            }
            if !node.json {
                return Err("SHELL requires the arguments to be in JSON form".into());
            }
            Kind::Shell(args)
        }
        "healthcheck" => Kind::Healthcheck(healthcheck(&args, node.json, &flags)?),
        "onbuild" => {
            if args.is_empty() {
                return Err("ONBUILD requires at least one argument".into());
            }
            flags.parse(&[])?;
            let trigger = args[0].trim().to_uppercase();
            match trigger.as_str() {
                "ONBUILD" => return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
                "MAINTAINER" | "FROM" => return Err(format!("{trigger} isn't allowed as an ONBUILD trigger")),
                _ => {}
            }
            let Args::Sub(child) = &node.args else {
                return Err("ONBUILD requires at least one argument".into());
            };
            let inner = kind_of(child, heredocs)?;
            Kind::Onbuild(Box::new(Instruction {
                line: node.start,
                end_line: node.end,
                original: strip_onbuild(&node.original),
                kind: inner,
            }))
        }
        "copy" => {
            if args.len() < 2 {
                return Err(no_destination("COPY"));
            }
            let v = flags.parse(&[
                ("chown", FlagType::String),
                ("from", FlagType::String),
                ("chmod", FlagType::String),
                ("link", FlagType::Bool),
                ("exclude", FlagType::Strings),
                ("parents", FlagType::Bool),
            ])?;
            let (sources, dest, heredocs) = sources_and_dest(&args, heredocs, "COPY")?;
            Kind::Copy {
                sources,
                dest,
                from: v.string("from"),
                chown: v.string("chown"),
                chmod: v.string("chmod"),
                link: v.bool("link"),
                parents: v.bool("parents"),
                exclude: v.strings("exclude"),
                heredocs,
            }
        }
        "add" => {
            if args.len() < 2 {
                return Err(no_destination("ADD"));
            }
            let v = flags.parse(&[
                ("chown", FlagType::String),
                ("chmod", FlagType::String),
                ("link", FlagType::Bool),
                ("keep-git-dir", FlagType::Bool),
                ("checksum", FlagType::String),
            ])?;
            let (sources, dest, heredocs) = sources_and_dest(&args, heredocs, "ADD")?;
            Kind::Add {
                sources,
                dest,
                chown: v.string("chown"),
                chmod: v.string("chmod"),
                checksum: v.string("checksum"),
                keep_git_dir: v.bool("keep-git-dir"),
                link: v.bool("link"),
                heredocs,
            }
        }
        _ => {
            let mut message = format!("unknown instruction: {}", node.cmd);
            if let Some(s) = suggest(&node.cmd, &INSTRUCTIONS, false) {
                message.push_str(&format!(" (did you mean {s}?)"));
            }
            return Err(message);
        }
    })
}

fn go_quote(s: &str) -> String {
    crate::build::expand::go_quote(s)
}

fn no_destination(cmd: &str) -> String {
    format!("{cmd} requires at least two arguments, but only one was provided. Destination could not be determined")
}

fn one_arg(cmd: &str, args: &[String], flags: Option<&Flags>) -> Result<String, String> {
    if args.len() != 1 {
        return Err(format!("{cmd} requires exactly one argument"));
    }
    if let Some(flags) = flags {
        flags.parse(&[])?;
    }
    Ok(args[0].clone())
}

/// `ONBUILD RUN x` -> `RUN x` (buildkit's `(?i)^\s*ONBUILD\s*`).
fn strip_onbuild(original: &str) -> String {
    let s = original.trim_start();
    let s = match s.get(..7) {
        Some(head) if head.eq_ignore_ascii_case("onbuild") => &s[7..],
        _ => s,
    };
    s.trim().to_string()
}

fn shell_or_exec(args: &[String], json: bool) -> ShellOrExec {
    if json {
        ShellOrExec::Exec(args.to_vec())
    } else {
        ShellOrExec::Shell(args.join(" "))
    }
}

/// FROM's `image [AS name]`.
fn stage_name(args: &[String]) -> Result<Option<String>, String> {
    // Go's `strings.EqualFold(args[1], "as")`: `ſ` folds to `s`.
    let is_as = |w: &str| {
        let mut c = w.chars();
        matches!(
            (c.next(), c.next(), c.next()),
            (Some('a' | 'A'), Some('s' | 'S' | '\u{17f}'), None)
        )
    };
    if args.len() == 3 && is_as(&args[1]) {
        let name = go_lower(&args[2]);
        let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(format!(
                "invalid name for build stage: {}, name can't start with a number or contain symbols",
                go_quote(&args[2])
            ));
        }
        return Ok(Some(name));
    }
    if args.len() != 1 {
        return Err("FROM requires either one or three arguments".into());
    }
    Ok(None)
}

/// COPY/ADD: the last word is the destination; heredoc words among the sources become
/// heredoc sources with the body read after the line.
fn sources_and_dest(
    args: &[String],
    heredocs: &[Heredoc],
    cmd: &str,
) -> Result<(Vec<String>, String, Vec<Heredoc>), String> {
    let (dest, srcs) = args.split_last().ok_or_else(|| no_destination(cmd))?;
    if heredoc_word(dest).is_some() {
        return Err(format!("{cmd} cannot accept a heredoc as a destination"));
    }
    let bodies: HashMap<&str, &str> = heredocs.iter().map(|h| (h.name.as_str(), h.content.as_str())).collect();
    let mut sources = Vec::new();
    let mut docs = Vec::new();
    for src in srcs {
        match heredoc_word(src) {
            Some(word) => docs.push(Heredoc {
                content: bodies
                    .get(word.name.as_str())
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                name: word.name,
                expand: word.expand,
                chomp: word.chomp,
            }),
            None => sources.push(src.clone()),
        }
    }
    Ok((sources, dest.clone(), docs))
}

fn healthcheck(args: &[String], json: bool, flags: &Flags) -> Result<Healthcheck, String> {
    let Some(typ) = args.first() else {
        return Err("HEALTHCHECK requires at least one argument".into());
    };
    let typ = typ.to_uppercase();
    let cmd = &args[1..];
    if typ == "NONE" {
        // Docker ignores any flag given with NONE.
        if !cmd.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Healthcheck::None);
    }
    let v = flags.parse(&[
        ("interval", FlagType::String),
        ("timeout", FlagType::String),
        ("start-period", FlagType::String),
        ("start-interval", FlagType::String),
        ("retries", FlagType::String),
    ])?;
    if typ != "CMD" {
        return Err(format!("Unknown type {} in HEALTHCHECK (try CMD)", go_quote(&typ)));
    }
    if cmd.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".into());
    }
    let interval = |name: &str| -> Result<Option<Duration>, String> {
        let Some(s) = v.string(name) else { return Ok(None) };
        let nanos = parse_go_duration(&s)?;
        if nanos == 0 {
            return Ok(None);
        }
        if nanos < 1_000_000 {
            return Err(format!("Interval {} cannot be less than 1ms", go_quote(name)));
        }
        Ok(Some(Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))))
    };
    let interval_value = interval("interval")?;
    let timeout = interval("timeout")?;
    let start_period = interval("start-period")?;
    let start_interval = interval("start-interval")?;
    let retries = match v.string("retries") {
        None => None,
        Some(s) => {
            let n = parse_go_int32(&s)?;
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})"));
            }
            Some(n as u32)
        }
    };
    Ok(Healthcheck::Cmd {
        test: shell_or_exec(cmd, json),
        interval: interval_value,
        timeout,
        start_period,
        start_interval,
        retries,
    })
}

/// Go's `strconv.ParseInt(s, 10, 32)` with its messages.
fn parse_go_int32(s: &str) -> Result<i32, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(s)));
    }
    s.trim_start_matches('+')
        .parse::<i32>()
        .map_err(|_| format!("strconv.ParseInt: parsing {}: value out of range", go_quote(s)))
}

// ---- Flags, with the rules and messages of Docker 26's `BFlags`.

#[derive(Clone, Copy, PartialEq)]
enum FlagType {
    Bool,
    String,
    Strings,
}

struct Flags<'a> {
    args: &'a [String],
}

#[derive(Default)]
struct FlagValues {
    bools: HashMap<String, bool>,
    strings: HashMap<String, String>,
    lists: HashMap<String, Vec<String>>,
}

impl FlagValues {
    fn bool(&self, name: &str) -> bool {
        self.bools.get(name).copied().unwrap_or(false)
    }

    /// The value of a string flag, `None` when absent or empty (Docker treats both alike).
    fn string(&self, name: &str) -> Option<String> {
        self.strings.get(name).filter(|s| !s.is_empty()).cloned()
    }

    /// The value of a string flag whenever it was given.
    fn string_given(&self, name: &str) -> Option<String> {
        self.strings.get(name).cloned()
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.lists.get(name).cloned().unwrap_or_default()
    }
}

impl Flags<'_> {
    fn parse(&self, defs: &[(&str, FlagType)]) -> Result<FlagValues, String> {
        let mut values = FlagValues::default();
        let mut used = vec![false; defs.len()];
        for arg in self.args {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {arg}"));
            };
            if body.is_empty() {
                break;
            }
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(index) = defs.iter().position(|(n, _)| *n == name) else {
                let mut message = format!("unknown flag: {name}");
                let names: Vec<&str> = defs.iter().map(|(n, _)| *n).collect();
                if let Some(s) = suggest(name, &names, true) {
                    message.push_str(&format!(" (did you mean {s}?)"));
                }
                return Err(message);
            };
            let typ = defs[index].1;
            if used[index] && typ != FlagType::Strings {
                return Err(format!("duplicate flag specified: {name}"));
            }
            used[index] = true;
            match typ {
                FlagType::Bool => {
                    if value == Some("") {
                        return Err(format!("missing a value on flag: {name}"));
                    }
                    let b = match value.map(str::to_lowercase).as_deref() {
                        None | Some("true") => true,
                        Some("false") => false,
                        Some(_) => {
                            return Err(format!(
                                "expecting boolean value for flag {name}, not: {}",
                                value.unwrap_or_default()
                            ));
                        }
                    };
                    values.bools.insert(name.to_string(), b);
                }
                FlagType::String => {
                    let Some(value) = value else {
                        return Err(format!("missing a value on flag: {name}"));
                    };
                    values.strings.insert(name.to_string(), value.to_string());
                }
                FlagType::Strings => {
                    let Some(value) = value else {
                        return Err(format!("missing a value on flag: {name}"));
                    };
                    values
                        .lists
                        .entry(name.to_string())
                        .or_default()
                        .push(value.to_string());
                }
            }
        }
        Ok(values)
    }
}

// ---- "Did you mean" (buildkit's `suggest.Search`: Levenshtein distance below 3).

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

fn suggest(value: &str, options: &[&str], case_sensitive: bool) -> Option<String> {
    // Names longer than any option are far from all of them; skip the work.
    if value.chars().count() > 32 {
        return None;
    }
    let val = if case_sensitive {
        value.to_string()
    } else {
        value.to_lowercase()
    };
    let mut best: Option<String> = None;
    let mut min = 3;
    for opt in options {
        let opt = if case_sensitive {
            opt.to_string()
        } else {
            opt.to_lowercase()
        };
        if val == opt {
            return None;
        }
        let d = levenshtein(&val, &opt);
        if d < min {
            min = d;
            best = Some(if case_sensitive {
                opt
            } else if value == value.to_lowercase() {
                opt.to_lowercase()
            } else if value == value.to_uppercase() {
                opt.to_uppercase()
            } else {
                opt
            });
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("FOOO", &INSTRUCTIONS, false).as_deref(), Some("FROM"));
        assert_eq!(suggest("fooo", &INSTRUCTIONS, false).as_deref(), Some("from"));
        assert_eq!(suggest("Cpy", &INSTRUCTIONS, false).as_deref(), Some("copy"));
        assert_eq!(suggest("BANANA", &INSTRUCTIONS, false), None);
        assert_eq!(
            suggest("frm", &["chown", "from", "chmod"], true).as_deref(),
            Some("from")
        );
        assert_eq!(suggest("FROM", &["from"], true), None);
    }

    #[test]
    fn levenshtein_distances() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("run", "run"), 0);
    }

    #[test]
    fn go_int32() {
        assert_eq!(parse_go_int32("3"), Ok(3));
        assert_eq!(parse_go_int32("+3"), Ok(3));
        assert_eq!(parse_go_int32("-3"), Ok(-3));
        assert_eq!(
            parse_go_int32("x"),
            Err("strconv.ParseInt: parsing \"x\": invalid syntax".into())
        );
        assert_eq!(
            parse_go_int32("99999999999"),
            Err("strconv.ParseInt: parsing \"99999999999\": value out of range".into())
        );
    }
}
