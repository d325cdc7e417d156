//! The first pass (buildkit's `parser.Parse`): parser directives, comments, blank lines,
//! continuations, heredoc bodies, and each logical line split and dispatched to the line
//! parser of its instruction.

use std::collections::HashSet;

use super::heredoc::heredocs_from_line;
use super::json::parse_json_array;
use super::words::{go_lower, parse_words, split_command, split_once_whitespace, split_whitespace_delimited};
use super::{Heredoc, ParseError};
use crate::build::expand::go_quote;

/// Docker reads a Dockerfile with Go's `bufio.Scanner`, which refuses longer lines.
pub(super) const MAX_LINE: usize = 64 * 1024 - 1;

/// The arguments of a logical line, as its line parser left them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Args {
    /// Words (or a single string, or a JSON array when `Node::json`).
    List(Vec<String>),
    /// ENV and LABEL: name and value pairs.
    Pairs(Vec<(String, String)>),
    /// ONBUILD: the trigger.
    Sub(Box<Node>),
}

/// A logical line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Node {
    pub start: usize,
    pub end: usize,
    /// The joined line (for a trigger, the text after `ONBUILD` and its flags).
    pub original: String,
    /// The instruction name as written.
    pub cmd: String,
    pub flags: Vec<String>,
    pub args: Args,
    /// The arguments were a JSON array.
    pub json: bool,
    pub heredocs: Vec<Heredoc>,
}

impl Node {
    /// The args as a list (ONBUILD's are the trigger's name then its args).
    pub fn arg_list(&self) -> Vec<String> {
        match &self.args {
            Args::List(v) => v.clone(),
            Args::Pairs(p) => p.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect(),
            Args::Sub(child) => {
                let mut v = vec![child.cmd.clone()];
                v.extend(child.arg_list());
                v
            }
        }
    }
}

pub(super) struct RawFile {
    pub escape: char,
    pub syntax: Option<String>,
    pub check: Option<String>,
    pub nodes: Vec<Node>,
    pub warnings: Vec<String>,
}

/// Parser directives: `# escape=`, `# syntax=`, `# check=`, only before anything else.
struct Directives {
    done: bool,
    seen: HashSet<String>,
    escape: char,
    syntax: Option<String>,
    check: Option<String>,
}

fn is_regex_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{0c}' | '\r' | ' ')
}

impl Directives {
    /// Looks at one line while directives are still possible (buildkit's
    /// `DirectiveParser.ParseLine` and `possibleParserDirective`).
    fn line(&mut self, line: &str) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        let Some(body) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(());
        };
        let Some((key, value)) = directive(body.trim_start()) else {
            self.done = true;
            return Ok(());
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(());
        }
        if !self.seen.insert(key.clone()) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        match key.as_str() {
            "escape" => match value {
                "`" => self.escape = '`',
                "\\" => self.escape = '\\',
                _ => return Err(format!("invalid escape token '{value}' does not match ` or \\")),
            },
            "syntax" => self.syntax = Some(value.to_string()),
            _ => self.check = Some(value.to_string()),
        }
        Ok(())
    }
}

/// Matches `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`.
fn directive(s: &str) -> Option<(&str, &str)> {
    let key_len = s.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(s.len());
    let key = &s[..key_len];
    if !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let rest = s[key_len..].trim_start_matches(is_regex_space).strip_prefix('=')?;
    if rest.is_empty() {
        return None;
    }
    let value = rest.trim_matches(is_regex_space);
    if !value.is_empty() {
        return Some((key, value));
    }
    // Only blanks after `=`: the lazy group still takes one character, the last one.
    let last = rest.char_indices().last().map_or(0, |(i, _)| i);
    Some((key, &rest[last..]))
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// A line ending in the escape character (then blanks) continues on the next one, unless
/// that escape is itself escaped. Returns the line without the escape, and whether the
/// logical line ends here.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    let Some(before) = body.strip_suffix(escape) else {
        return (line, true);
    };
    if before.ends_with(escape) {
        return (line, true);
    }
    (before, false)
}

/// The physical lines, counted as they are read.
struct Reader<'a> {
    lines: std::str::SplitInclusive<'a, char>,
    /// How many lines have been read.
    line: usize,
}

impl<'a> Reader<'a> {
    fn next(&mut self) -> Result<Option<&'a str>, ParseError> {
        let Some(mut raw) = self.lines.next() else {
            return Ok(None);
        };
        self.line += 1;
        if self.line == 1 {
            raw = raw.strip_prefix('\u{feff}').unwrap_or(raw);
        }
        if raw.strip_suffix('\n').unwrap_or(raw).len() > MAX_LINE {
            return Err(ParseError::new(
                self.line,
                format!("dockerfile line greater than max allowed size of {MAX_LINE}"),
            ));
        }
        Ok(Some(raw))
    }
}

/// Trims the line ending (and, for the first line of an instruction, leading
/// whitespace), lets the directive parser look at it, and blanks it if it is a comment.
fn process_line<'a>(d: &mut Directives, raw: &'a str, strip_left: bool) -> Result<&'a str, String> {
    let mut token = trim_newline(raw);
    if strip_left {
        token = token.trim_start();
    }
    d.line(token)?;
    Ok(if is_comment(token) { "" } else { token })
}

pub(super) fn parse_lines(text: &str) -> Result<RawFile, ParseError> {
    let mut rd = Reader {
        lines: text.split_inclusive('\n'),
        line: 0,
    };
    let mut d = Directives {
        done: false,
        seen: HashSet::new(),
        escape: '\\',
        syntax: None,
        check: None,
    };
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();

    while let Some(raw) = rd.next()? {
        let first = process_line(&mut d, raw, true).map_err(|m| ParseError::new(rd.line, m))?;
        let start = rd.line;
        let (first, mut end_of_line) = trim_continuation(first, d.escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut line = first.to_string();
        let mut empty_continuation = false;
        while !end_of_line {
            let Some(raw) = rd.next()? else { break };
            let text = process_line(&mut d, raw, false).map_err(|m| ParseError::new(rd.line, m))?;
            if is_comment(raw) {
                continue;
            }
            if text.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (text, eol) = trim_continuation(text, d.escape);
            line.push_str(text);
            end_of_line = eol;
        }
        if empty_continuation {
            warnings.push(format!("Empty continuation line found in: {line}"));
        }

        let mut node = node_from_line(&line, d.escape, true).map_err(|m| ParseError::new(start, m))?;
        if can_contain_heredoc(&node) && line.contains("<<") {
            let words = heredocs_from_line(&line).map_err(|m| ParseError::new(start, m))?;
            for word in words {
                let mut content = String::new();
                let mut terminated = false;
                while let Some(raw) = rd.next()? {
                    let mut candidate = trim_newline(raw);
                    if word.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == word.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(raw);
                }
                if !terminated {
                    return Err(ParseError::new(start, "unterminated heredoc"));
                }
                node.heredocs.push(Heredoc {
                    name: word.name,
                    content,
                    expand: word.expand,
                    chomp: word.chomp,
                });
            }
        }
        node.start = start;
        node.end = rd.line;
        nodes.push(node);
    }

    if nodes.is_empty() {
        return Err(ParseError::new(rd.line.max(1), "file with no instructions"));
    }
    Ok(RawFile {
        escape: d.escape,
        syntax: d.syntax,
        check: d.check,
        nodes,
        warnings,
    })
}

/// RUN, COPY and ADD (also as an ONBUILD trigger) read heredocs, unless in JSON form.
fn can_contain_heredoc(node: &Node) -> bool {
    let node = match &node.args {
        Args::Sub(child) if go_lower(&node.cmd) == "onbuild" => child,
        _ => node,
    };
    matches!(go_lower(&node.cmd).as_str(), "add" | "copy" | "run") && !node.json
}

/// Splits a logical line and runs the line parser of its instruction (buildkit's
/// `newNodeFromLine`). An ONBUILD's trigger is parsed one level deep (`allow_sub`).
fn node_from_line(line: &str, escape: char, allow_sub: bool) -> Result<Node, String> {
    let split = split_command(line, escape);
    let rest = split.rest.as_str();
    let (args, json) = match go_lower(&split.cmd).as_str() {
        "add" | "copy" | "volume" => maybe_json_to_list(rest)?,
        "cmd" | "entrypoint" | "run" | "shell" => maybe_json(rest)?,
        "arg" => (Args::List(parse_words(rest, escape)), false),
        "env" => (name_val(rest, "ENV", escape)?, false),
        "label" => (name_val(rest, "LABEL", escape)?, false),
        "expose" | "from" => (Args::List(split_whitespace_delimited(rest)), false),
        "healthcheck" => health_config(rest)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => (
            Args::List(if rest.is_empty() {
                vec![]
            } else {
                vec![rest.to_string()]
            }),
            false,
        ),
        "onbuild" if !rest.is_empty() && allow_sub => {
            (Args::Sub(Box::new(node_from_line(rest, escape, false)?)), false)
        }
        // Unknown instructions (and a nested ONBUILD) keep no arguments; the second pass
        // reports them.
        _ => (Args::List(vec![]), false),
    };
    Ok(Node {
        start: 0,
        end: 0,
        original: line.to_string(),
        cmd: split.cmd,
        flags: split.flags,
        args,
        json,
        heredocs: Vec::new(),
    })
}

fn maybe_json(rest: &str) -> Result<(Args, bool), String> {
    if rest.is_empty() {
        return Ok((Args::List(vec![]), false));
    }
    match parse_json_array(rest) {
        Ok(Some(v)) => Ok((Args::List(v), true)),
        Ok(None) => Ok((Args::List(vec![rest.to_string()]), false)),
        Err(e) => Err(e.to_string()),
    }
}

fn maybe_json_to_list(rest: &str) -> Result<(Args, bool), String> {
    match parse_json_array(rest) {
        Ok(Some(v)) => Ok((Args::List(v), true)),
        Ok(None) => Ok((Args::List(split_whitespace_delimited(rest)), false)),
        Err(e) => Err(e.to_string()),
    }
}

/// ENV and LABEL: `k=v ...`, or the legacy `k v...` when the first word has no `=`.
fn name_val(rest: &str, key: &str, escape: char) -> Result<Args, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Args::Pairs(vec![]));
    };
    if !first.contains('=') {
        return match split_once_whitespace(rest) {
            (name, Some(value)) => Ok(Args::Pairs(vec![(name.to_string(), value.to_string())])),
            (_, None) => Err(format!("{key} must have two arguments")),
        };
    }
    let mut pairs = Vec::with_capacity(words.len());
    for word in &words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                go_quote(word)
            ));
        };
        pairs.push((k.to_string(), v.to_string()));
    }
    Ok(Args::Pairs(pairs))
}

/// HEALTHCHECK: the type word, then a command in JSON or shell form.
fn health_config(rest: &str) -> Result<(Args, bool), String> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((Args::List(vec![]), false));
    }
    let (typ, cmd) = rest.split_at(sep);
    let (cmd_args, json) = maybe_json(cmd.trim_start())?;
    let mut args = vec![typ.to_string()];
    if let Args::List(v) = cmd_args {
        args.extend(v);
    }
    Ok((Args::List(args), json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_values() {
        assert_eq!(directive("escape=`"), Some(("escape", "`")));
        assert_eq!(directive("escape = ` "), Some(("escape", "`")));
        assert_eq!(
            directive("syntax=docker/dockerfile:1 "),
            Some(("syntax", "docker/dockerfile:1"))
        );
        assert_eq!(directive("escape= "), Some(("escape", " ")));
        assert_eq!(directive("escape="), None);
        assert_eq!(directive("1escape=x"), None);
        assert_eq!(directive("escape:=x"), None);
        assert_eq!(directive("hello world"), None);
    }

    #[test]
    fn continuation_rules() {
        assert_eq!(trim_continuation("RUN a \\", '\\'), ("RUN a ", false));
        assert_eq!(trim_continuation("RUN a \\  \t", '\\'), ("RUN a ", false));
        assert_eq!(trim_continuation("\\", '\\'), ("", false));
        assert_eq!(trim_continuation("RUN a \\\\", '\\'), ("RUN a \\\\", true));
        assert_eq!(trim_continuation("RUN a `", '`'), ("RUN a ", false));
        assert_eq!(trim_continuation("RUN a \\", '`'), ("RUN a \\", true));
        assert_eq!(trim_continuation("RUN a", '\\'), ("RUN a", true));
    }
}
