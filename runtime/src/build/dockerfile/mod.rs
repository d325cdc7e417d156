//! The Dockerfile parser of the classic builder, with buildkit's rules (the parser the
//! classic builder vendors): parser directives, comments, line continuations, heredocs,
//! exec (JSON) and shell forms, flags, and the checks Docker makes on each instruction.
//!
//! Parsing happens in two passes, as in Docker. The first ([`lines`]) turns the text into
//! logical lines: directives read, comments and blank lines dropped, continuations joined,
//! heredoc bodies collected, and each line split into its instruction name, flags and
//! arguments. The second ([`instruction`]) checks every instruction and builds its
//! [`Kind`]. So an error the first pass finds anywhere in the file is reported before an
//! error the second pass would find on an earlier line, as Docker does.
//!
//! Nothing here expands variables: values are kept as written (quotes and escapes
//! included) and the builder expands them with [`crate::build::expand`] when it reaches
//! the instruction, with the environment of that moment.

mod duration;
mod heredoc;
mod instruction;
mod json;
mod lines;
mod words;

#[cfg(test)]
mod tests;

use std::time::Duration;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character: `\` unless a `# escape=` directive chose `` ` ``.
    pub escape: char,
    /// The `# syntax=` directive, recorded and otherwise ignored (the classic builder
    /// does not switch frontends).
    pub syntax: Option<String>,
    /// The `# check=` directive (buildkit's lint configuration), recorded and ignored.
    pub check: Option<String>,
    /// The instructions in order.
    pub instructions: Vec<Instruction>,
    /// Warnings Docker prints before the build, such as
    /// `Empty continuation line found in: RUN a b`. The classic builder prints each as
    /// `[WARNING]: <warning>` followed, if there is any, by
    /// `[WARNING]: Empty continuation lines will become errors in a future release.`
    pub warnings: Vec<String>,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The 1-based line where the instruction starts.
    pub line: usize,
    /// The 1-based last line of the instruction, heredoc bodies and terminators included.
    pub end_line: usize,
    /// The instruction as written, continuation lines joined with the escape removed,
    /// comments inside it dropped, and trimmed: what Docker prints in `Step N/M : ...`.
    pub original: String,
    /// What the instruction is.
    pub kind: Kind,
}

/// A command in shell form (run by the stage's SHELL, `/bin/sh -c` by default) or in exec
/// form (a JSON array of strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellOrExec {
    /// The command line as written, to be passed to the shell unchanged (no expansion:
    /// the shell expands it). Empty when the instruction had no argument at all.
    Shell(String),
    /// The JSON array, run without a shell. Its strings are not expanded either.
    Exec(Vec<String>),
}

/// A here-document (`<<EOF ... EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word with its quotes removed (for COPY and ADD, the file name).
    pub name: String,
    /// The lines between the instruction and the delimiter, exactly as written, each with
    /// its line ending. Leading tabs are still there with `<<-`: see [`Heredoc::body`].
    pub content: String,
    /// False when the delimiter was quoted (`<<'EOF'`, `<<"EOF"`, `<<E"O"F`): the content
    /// is then taken literally, with no variable expansion.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from each line of the content and from the
    /// delimiter line.
    pub chomp: bool,
}

impl Heredoc {
    /// The content with leading tabs removed from every line when [`Heredoc::chomp`] is
    /// set. This is what COPY/ADD write and what a lone `RUN <<EOF` runs. When a RUN
    /// has more than the heredoc (`RUN cat <<-EOF > f`), Docker hands the shell the raw
    /// [`Heredoc::content`] and lets it do the stripping.
    pub fn body(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        let mut out = String::with_capacity(self.content.len());
        for line in self.content.split_inclusive('\n') {
            out.push_str(line.trim_start_matches('\t'));
        }
        out
    }
}

/// What a shell-form RUN with heredocs runs (see [`run_script`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunScript {
    /// Run this text with the stage's shell (`SHELL` + `[text]`, `/bin/sh -c` by default).
    Shell(String),
    /// A lone `RUN <<EOF` whose body starts with `#!`: write `body` to a file named
    /// `name`, mode 0755 (buildkit mounts it read-only at `/dev/pipes/<name>`), and execute
    /// that file directly, without the shell.
    File { name: String, body: String },
}

/// For a RUN in shell form, what to run given its heredocs, decided as buildkit decides
/// it. Without heredocs it is the command itself. A command that is nothing but one
/// heredoc word (`RUN <<EOF`) runs that heredoc's body, `<<-` tabs stripped, as a script
/// (variables are then left to the shell even with a quoted delimiter, as in buildkit).
/// Otherwise the shell gets the command line followed by each body and delimiter: a shell
/// script with real here-documents (`RUN cat <<EOF > /f`).
pub fn run_script(cmd: &str, heredocs: &[Heredoc]) -> RunScript {
    let Some(first) = heredocs.first() else {
        return RunScript::Shell(cmd.to_string());
    };
    if heredoc::heredoc_word(cmd).is_some() {
        let body = first.body();
        if body.starts_with("#!") {
            return RunScript::File {
                name: first.name.clone(),
                body,
            };
        }
        return RunScript::Shell(body);
    }
    let mut text = cmd.to_string();
    for h in heredocs {
        text.push('\n');
        text.push_str(&h.content);
        text.push_str(&h.name);
    }
    RunScript::Shell(text)
}

/// What an instruction is and its arguments, as written (not expanded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `FROM [--platform=p] image [AS name]`; `name` is lowercased, as Docker does.
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    /// `RUN [--network=default|none|host] [--mount=spec]... command`. The mount specs are
    /// kept as written (not parsed); the classic builder rejects every RUN flag.
    Run {
        cmd: ShellOrExec,
        heredocs: Vec<Heredoc>,
        network: Option<String>,
        mounts: Vec<String>,
    },
    Cmd(ShellOrExec),
    /// An empty exec form (`ENTRYPOINT []`) or no argument clears the entrypoint.
    Entrypoint(ShellOrExec),
    /// `ENV a=b c="d e"` or legacy `ENV a b c` (value `b c`, the rest of the line). Keys
    /// and values are raw words: expand each with [`crate::build::expand::expand`].
    Env(Vec<(String, String)>),
    /// `ARG a b=c`: raw words, expand each (names too) with `expand`.
    Arg(Vec<(String, Option<String>)>),
    /// The rest of the line as one raw word (`WORKDIR /a b` is the path `/a b`).
    Workdir(String),
    /// The rest of the line as one raw word.
    User(String),
    /// Like [`Kind::Env`].
    Label(Vec<(String, String)>),
    /// Raw words; Docker expands each with `expand_words` (`EXPOSE $PORTS` can give
    /// several ports).
    Expose(Vec<String>),
    /// JSON array or whitespace-separated words; raw, expand each with `expand`.
    Volume(Vec<String>),
    /// The rest of the line as one raw word.
    StopSignal(String),
    /// JSON only.
    Shell(Vec<String>),
    /// Deprecated but accepted; the rest of the line.
    Maintainer(String),
    Healthcheck(Healthcheck),
    /// The trigger, parsed (its `line`/`end_line` are those of the ONBUILD line and its
    /// `original` is the text after `ONBUILD`). Docker itself only checks the trigger's
    /// name when it parses the ONBUILD and parses the rest when a later build triggers it;
    /// here a malformed trigger is an error at once. Store
    /// [`Instruction::onbuild_trigger`] in the image config.
    Onbuild(Box<Instruction>),
    /// `COPY [--from=] [--chown=] [--chmod=] [--link] [--parents] [--exclude=]... src... dest`.
    /// `sources` are the paths (raw words); heredoc sources (`COPY <<EOF /f`) are in
    /// `heredocs`, in order, each named after its delimiter.
    Copy {
        sources: Vec<String>,
        dest: String,
        from: Option<String>,
        chown: Option<String>,
        chmod: Option<String>,
        link: bool,
        parents: bool,
        exclude: Vec<String>,
        heredocs: Vec<Heredoc>,
    },
    /// `ADD [--chown=] [--chmod=] [--checksum=] [--keep-git-dir] [--link] src... dest`.
    Add {
        sources: Vec<String>,
        dest: String,
        chown: Option<String>,
        chmod: Option<String>,
        checksum: Option<String>,
        keep_git_dir: bool,
        link: bool,
        heredocs: Vec<Heredoc>,
    },
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [options] CMD command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// Disables any healthcheck inherited from the base image (`Test: ["NONE"]`).
    None,
    /// `Test` is `["CMD", args...]` for the exec form and `["CMD-SHELL", command]` for the
    /// shell form. A duration of zero, like an absent one, is `None` (inherit or default);
    /// `retries` is `Some` whenever it was given.
    Cmd {
        test: ShellOrExec,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        start_interval: Option<Duration>,
        retries: Option<u32>,
    },
}

impl Kind {
    /// The instruction's name in capitals (`"COPY"`), as Docker writes it in history.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::From { .. } => "FROM",
            Kind::Run { .. } => "RUN",
            Kind::Cmd(_) => "CMD",
            Kind::Entrypoint(_) => "ENTRYPOINT",
            Kind::Env(_) => "ENV",
            Kind::Arg(_) => "ARG",
            Kind::Workdir(_) => "WORKDIR",
            Kind::User(_) => "USER",
            Kind::Label(_) => "LABEL",
            Kind::Expose(_) => "EXPOSE",
            Kind::Volume(_) => "VOLUME",
            Kind::StopSignal(_) => "STOPSIGNAL",
            Kind::Shell(_) => "SHELL",
            Kind::Maintainer(_) => "MAINTAINER",
            Kind::Healthcheck(_) => "HEALTHCHECK",
            Kind::Onbuild(_) => "ONBUILD",
            Kind::Copy { .. } => "COPY",
            Kind::Add { .. } => "ADD",
        }
    }
}

impl Instruction {
    /// For an ONBUILD, the trigger as Docker stores it in the image config's `OnBuild`
    /// list: the text after `ONBUILD`, followed for each heredoc by a newline, its content
    /// and its delimiter. A later build parses each trigger with [`parse_onbuild_trigger`].
    pub fn onbuild_trigger(&self) -> Option<String> {
        let Kind::Onbuild(inner) = &self.kind else { return None };
        let mut text = inner.original.clone();
        for heredoc in instruction::heredocs_of(&inner.kind) {
            text.push('\n');
            text.push_str(&heredoc.content);
            text.push_str(&heredoc.name);
        }
        Some(text)
    }
}

/// Parses an ONBUILD trigger taken from a base image's config (see
/// [`Instruction::onbuild_trigger`]), as a build that inherits it does: it must be one
/// instruction, and not FROM, MAINTAINER or ONBUILD.
pub fn parse_onbuild_trigger(trigger: &str) -> Result<Instruction, ParseError> {
    let raw = lines::parse_lines(trigger)?;
    let [node] = raw.nodes.as_slice() else {
        return Err(ParseError::new(1, "onbuild trigger should be a single expression"));
    };
    let ins = instruction::build(node)?;
    if let Kind::From { .. } | Kind::Maintainer(_) | Kind::Onbuild(_) = ins.kind {
        return Err(ParseError::new(
            ins.line,
            format!("{} isn't allowed as an ONBUILD trigger", ins.kind.name()),
        ));
    }
    Ok(ins)
}

/// A Dockerfile Docker would refuse, with the line it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile parse error on line {line}: {message}")]
pub struct ParseError {
    /// The 1-based line of the instruction (or of the offending line).
    pub line: usize,
    /// Docker's message, e.g. `unknown instruction: FOOO (did you mean FROM?)`.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(line: usize, message: impl Into<String>) -> Self {
        ParseError {
            line,
            message: message.into(),
        }
    }
}

/// Parses a Dockerfile. Never panics, whatever the input. As in Docker, an input without
/// any instruction is an error (`file with no instructions`), and so is an instruction
/// other than ARG before the first FROM (`no build stage in current context`).
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let raw = lines::parse_lines(text)?;
    let mut instructions = Vec::with_capacity(raw.nodes.len());
    let mut in_stage = false;
    for node in &raw.nodes {
        let ins = instruction::build(node)?;
        match ins.kind {
            Kind::From { .. } => in_stage = true,
            Kind::Arg(_) => {}
            _ if !in_stage => return Err(ParseError::new(ins.line, "no build stage in current context")),
            _ => {}
        }
        instructions.push(ins);
    }
    Ok(Dockerfile {
        escape: raw.escape,
        syntax: raw.syntax,
        check: raw.check,
        instructions,
        warnings: raw.warnings,
    })
}
