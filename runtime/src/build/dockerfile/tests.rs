//! Parser tests: real Dockerfiles in the shapes the course uses, every instruction and
//! form, and Docker's error messages with their line numbers.

use std::time::Duration;

use super::*;

fn parsed(text: &str) -> Dockerfile {
    parse(text).unwrap_or_else(|e| panic!("{e}\n--- input ---\n{}", text.chars().take(300).collect::<String>()))
}

fn kinds(text: &str) -> Vec<Kind> {
    parsed(text).instructions.into_iter().map(|i| i.kind).collect()
}

/// The one instruction of `text`, parsed after a FROM.
fn one(text: &str) -> Kind {
    let mut k = kinds(&format!("FROM scratch\n{text}"));
    assert_eq!(k.len(), 2, "{text}");
    k.remove(1)
}

fn err(text: &str) -> (usize, String) {
    match parse(text) {
        Ok(d) => panic!(
            "expected an error for {:?}, got {:#?}",
            text.chars().take(300).collect::<String>(),
            d.instructions
        ),
        Err(e) => (e.line, e.message),
    }
}

fn s(v: &str) -> String {
    v.to_string()
}

fn sv(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn shell(v: &str) -> ShellOrExec {
    ShellOrExec::Shell(v.to_string())
}

fn exec(v: &[&str]) -> ShellOrExec {
    ShellOrExec::Exec(sv(v))
}

fn copy(sources: &[&str], dest: &str) -> Kind {
    Kind::Copy {
        sources: sv(sources),
        dest: s(dest),
        from: None,
        chown: None,
        chmod: None,
        link: false,
        parents: false,
        exclude: vec![],
        heredocs: vec![],
    }
}

fn run(cmd: ShellOrExec) -> Kind {
    Kind::Run {
        cmd,
        heredocs: vec![],
        network: None,
        mounts: vec![],
    }
}

fn from(image: &str, name: Option<&str>) -> Kind {
    Kind::From {
        image: s(image),
        name: name.map(s),
        platform: None,
    }
}

// ---- Whole Dockerfiles.

#[test]
fn node_app_from_the_course() {
    let d = parsed(
        "FROM node:14\n\
         \n\
         WORKDIR /app\n\
         \n\
         COPY package.json .\n\
         \n\
         RUN npm install\n\
         \n\
         COPY . .\n\
         \n\
         EXPOSE 80\n\
         \n\
         CMD [\"node\", \"server.js\"]\n",
    );
    assert_eq!(d.escape, '\\');
    assert_eq!(d.syntax, None);
    let k: Vec<Kind> = d.instructions.iter().map(|i| i.kind.clone()).collect();
    assert_eq!(
        k,
        [
            from("node:14", None),
            Kind::Workdir(s("/app")),
            copy(&["package.json"], "."),
            run(shell("npm install")),
            copy(&["."], "."),
            Kind::Expose(sv(&["80"])),
            Kind::Cmd(exec(&["node", "server.js"])),
        ]
    );
    let lines: Vec<usize> = d.instructions.iter().map(|i| i.line).collect();
    assert_eq!(lines, [1, 3, 5, 7, 9, 11, 13]);
    assert_eq!(d.instructions[6].original, "CMD [\"node\", \"server.js\"]");
}

#[test]
fn flask_app_with_legacy_env_and_inline_comment() {
    // Syllabus errata 14: the legacy form takes the rest of the line, comment included.
    let k = kinds(
        "FROM python:3.9-slim\n\
         WORKDIR /app\n\
         ENV FLASK_APP app.py  # the entry point\n\
         ENV FLASK_RUN_HOST=0.0.0.0\n\
         COPY requirements.txt .\n\
         RUN pip install --no-cache-dir -r requirements.txt\n\
         COPY . .\n\
         EXPOSE 5000\n\
         CMD [\"flask\", \"run\"]\n",
    );
    assert_eq!(k[2], Kind::Env(vec![(s("FLASK_APP"), s("app.py  # the entry point"))]));
    assert_eq!(k[3], Kind::Env(vec![(s("FLASK_RUN_HOST"), s("0.0.0.0"))]));
    assert_eq!(k[5], run(shell("pip install --no-cache-dir -r requirements.txt")));
    assert_eq!(k[8], Kind::Cmd(exec(&["flask", "run"])));
}

#[test]
fn multi_stage_go_build() {
    let d = parsed(
        "# syntax=docker/dockerfile:1\n\
         FROM golang:1.21-alpine AS builder\n\
         WORKDIR /src\n\
         COPY go.mod ./\n\
         COPY main.go ./\n\
         RUN CGO_ENABLED=0 go build -o /out/server .\n\
         \n\
         FROM scratch\n\
         COPY --from=builder /out/server /server\n\
         EXPOSE 8080\n\
         ENTRYPOINT [\"/server\"]\n",
    );
    assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1"));
    let k: Vec<Kind> = d.instructions.iter().map(|i| i.kind.clone()).collect();
    assert_eq!(k[0], from("golang:1.21-alpine", Some("builder")));
    assert_eq!(k[5], from("scratch", None));
    let Kind::Copy {
        from, sources, dest, ..
    } = &k[6]
    else {
        panic!("{:?}", k[6])
    };
    assert_eq!(
        (from.as_deref(), sources.as_slice(), dest.as_str()),
        (Some("builder"), &sv(&["/out/server"])[..], "/server")
    );
    assert_eq!(k[8], Kind::Entrypoint(exec(&["/server"])));
    assert_eq!(d.instructions[0].line, 2);
    assert_eq!(d.instructions[5].line, 8);
}

#[test]
fn every_instruction() {
    let d = parsed(
        r#"ARG BASE=alpine:3.18
FROM --platform=linux/amd64 ${BASE} AS Base
MAINTAINER Jane Doe <jane@example.com>
ARG APP_VERSION=1.0 DEBUG
ENV APP_ENV=production PATH="/app/bin:$PATH" MSG='hello world' ESC=a\ b
LABEL org.opencontainers.image.title="Demo app" version="$APP_VERSION"
WORKDIR /app
USER app:app
RUN --network=none --mount=type=cache,target=/root/.cache pip install -r requirements.txt
RUN ["/bin/sh", "-c", "echo hi"]
COPY --from=build --chown=app:app --chmod=755 --link --parents --exclude=*.md --exclude=docs a/ b/ /dst/
ADD --checksum=sha256:abc --chown=1:1 --chmod=644 --keep-git-dir --link https://example.com/a.tar.gz /tmp/
EXPOSE 80 443/udp $PORT
VOLUME ["/data", "/var/log"]
VOLUME /a /b
STOPSIGNAL SIGQUIT
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --start-interval=1s --retries=3 CMD curl -f http://localhost/ || exit 1
ONBUILD COPY . /app/src
ENTRYPOINT ["python", "app.py"]
CMD ["World"]
"#,
    );
    let k: Vec<Kind> = d.instructions.iter().map(|i| i.kind.clone()).collect();
    let expected = vec![
        Kind::Arg(vec![(s("BASE"), Some(s("alpine:3.18")))]),
        Kind::From {
            image: s("${BASE}"),
            name: Some(s("base")),
            platform: Some(s("linux/amd64")),
        },
        Kind::Maintainer(s("Jane Doe <jane@example.com>")),
        Kind::Arg(vec![(s("APP_VERSION"), Some(s("1.0"))), (s("DEBUG"), None)]),
        Kind::Env(vec![
            (s("APP_ENV"), s("production")),
            (s("PATH"), s("\"/app/bin:$PATH\"")),
            (s("MSG"), s("'hello world'")),
            (s("ESC"), s("a\\ b")),
        ]),
        Kind::Label(vec![
            (s("org.opencontainers.image.title"), s("\"Demo app\"")),
            (s("version"), s("\"$APP_VERSION\"")),
        ]),
        Kind::Workdir(s("/app")),
        Kind::User(s("app:app")),
        Kind::Run {
            cmd: shell("pip install -r requirements.txt"),
            heredocs: vec![],
            network: Some(s("none")),
            mounts: sv(&["type=cache,target=/root/.cache"]),
        },
        run(exec(&["/bin/sh", "-c", "echo hi"])),
        Kind::Copy {
            sources: sv(&["a/", "b/"]),
            dest: s("/dst/"),
            from: Some(s("build")),
            chown: Some(s("app:app")),
            chmod: Some(s("755")),
            link: true,
            parents: true,
            exclude: sv(&["*.md", "docs"]),
            heredocs: vec![],
        },
        Kind::Add {
            sources: sv(&["https://example.com/a.tar.gz"]),
            dest: s("/tmp/"),
            chown: Some(s("1:1")),
            chmod: Some(s("644")),
            checksum: Some(s("sha256:abc")),
            keep_git_dir: true,
            link: true,
            heredocs: vec![],
        },
        Kind::Expose(sv(&["80", "443/udp", "$PORT"])),
        Kind::Volume(sv(&["/data", "/var/log"])),
        Kind::Volume(sv(&["/a", "/b"])),
        Kind::StopSignal(s("SIGQUIT")),
        Kind::Shell(sv(&["/bin/bash", "-o", "pipefail", "-c"])),
        Kind::Healthcheck(Healthcheck::Cmd {
            test: shell("curl -f http://localhost/ || exit 1"),
            interval: Some(Duration::from_secs(30)),
            timeout: Some(Duration::from_secs(3)),
            start_period: Some(Duration::from_secs(5)),
            start_interval: Some(Duration::from_secs(1)),
            retries: Some(3),
        }),
        Kind::Onbuild(Box::new(Instruction {
            line: 19,
            end_line: 19,
            original: s("COPY . /app/src"),
            kind: copy(&["."], "/app/src"),
        })),
        Kind::Entrypoint(exec(&["python", "app.py"])),
        Kind::Cmd(exec(&["World"])),
    ];
    assert_eq!(k.len(), expected.len());
    for (i, (got, want)) in k.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "instruction {}", i + 1);
    }
    let names: Vec<&str> = k.iter().map(Kind::name).collect();
    assert_eq!(
        names,
        [
            "ARG",
            "FROM",
            "MAINTAINER",
            "ARG",
            "ENV",
            "LABEL",
            "WORKDIR",
            "USER",
            "RUN",
            "RUN",
            "COPY",
            "ADD",
            "EXPOSE",
            "VOLUME",
            "VOLUME",
            "STOPSIGNAL",
            "SHELL",
            "HEALTHCHECK",
            "ONBUILD",
            "ENTRYPOINT",
            "CMD"
        ]
    );
    assert_eq!(d.instructions[18].onbuild_trigger().as_deref(), Some("COPY . /app/src"));
    assert_eq!(d.instructions[17].onbuild_trigger(), None);
}

#[test]
fn raw_values_expand_as_docker_expands_them() {
    let k = one("ENV A=\"x y\" B='$HOME' C=$HOME/bin D=\"${MISSING:-def}\"");
    let Kind::Env(pairs) = k else { panic!() };
    let lookup = |k: &str| (k == "HOME").then(|| s("/root"));
    let values: Vec<String> = pairs
        .iter()
        .map(|(_, v)| crate::build::expand::expand(v, &lookup, '\\').unwrap())
        .collect();
    assert_eq!(values, ["x y", "$HOME", "/root/bin", "def"]);
}

// ---- Comments, directives, continuations.

#[test]
fn comments_only_at_line_start() {
    // Syllabus errata 5: `# Layer N` after an instruction is part of it.
    let k = kinds(
        "FROM python:3.9-slim\n\
         WORKDIR /app # Layer 2\n\
         COPY . . # Layer 3\n\
         RUN pip install flask # Layer 4\n\
         \t  # an indented comment\n",
    );
    assert_eq!(k[1], Kind::Workdir(s("/app # Layer 2")));
    assert_eq!(k[2], copy(&[".", ".", "#", "Layer"], "3"));
    assert_eq!(k[3], run(shell("pip install flask # Layer 4")));
    assert_eq!(k.len(), 4);
    assert_eq!(
        err("FROM python:3.9-slim # Layer 1: base image\n"),
        (1, s("FROM requires either one or three arguments"))
    );
}

#[test]
fn continuation_with_comments_and_blank_lines() {
    let d = parsed(
        "FROM debian\n\
         RUN apt-get update \\\n    # install curl\n    && apt-get install -y curl \\\n\n    && rm -rf /var/lib/apt/lists/*\n\
         ENV NODE_ENV=production \\\n    PORT=3000\n",
    );
    let run = &d.instructions[1];
    let text = "apt-get update     && apt-get install -y curl     && rm -rf /var/lib/apt/lists/*";
    assert_eq!(run.kind, super::tests::run(shell(text)));
    assert_eq!(run.original, format!("RUN {text}"));
    assert_eq!((run.line, run.end_line), (2, 6));
    assert_eq!(d.warnings, [format!("Empty continuation line found in: RUN {text}")]);
    let env = &d.instructions[2];
    assert_eq!(
        env.kind,
        Kind::Env(vec![(s("NODE_ENV"), s("production")), (s("PORT"), s("3000"))])
    );
    assert_eq!((env.line, env.end_line), (7, 8));
}

#[test]
fn continuation_edge_cases() {
    // An escaped escape at the end does not continue.
    let k = kinds("FROM a\nRUN echo a\\\\\nRUN echo b\n");
    assert_eq!(k[1], run(shell("echo a\\\\")));
    assert_eq!(k.len(), 3);
    // Blanks after the escape are allowed.
    assert_eq!(kinds("FROM a\nRUN echo a \\  \t\n b\n")[1], run(shell("echo a  b")));
    // A continuation at the end of the file ends the instruction.
    let d = parsed("FROM a\nRUN echo \\");
    assert_eq!(d.instructions[1].kind, run(shell("echo")));
    assert_eq!(d.instructions[1].end_line, 2);
    // A line holding only the escape joins the next line to it.
    let d = parsed("\\\nFROM alpine\n");
    assert_eq!(d.instructions[0].kind, from("alpine", None));
    assert_eq!(d.instructions[0].line, 1);
    // Only the first line of an instruction loses its indentation.
    assert_eq!(kinds("   FROM a\n  RUN x \\\n   y")[1], run(shell("x    y")));
}

#[test]
fn escape_directive_backtick() {
    let d = parsed(
        "# escape=`\n\
         FROM mcr.microsoft.com/windows/servercore\n\
         COPY testfile.txt c:\\\n\
         RUN dir c:\\\n\
         RUN echo a `\n    b\n",
    );
    assert_eq!(d.escape, '`');
    let k: Vec<Kind> = d.instructions.iter().map(|i| i.kind.clone()).collect();
    assert_eq!(k[1], copy(&["testfile.txt"], "c:\\"));
    assert_eq!(k[2], run(shell("dir c:\\")));
    assert_eq!(k[3], run(shell("echo a     b")));
}

#[test]
fn directives() {
    let d = parsed("# syntax=docker/dockerfile:1.7\n#  ESCAPE = `\n# check=skip=all\nFROM a\n");
    assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1.7"));
    assert_eq!(d.escape, '`');
    assert_eq!(d.check.as_deref(), Some("skip=all"));
    assert_eq!(d.instructions[0].line, 4);
    // After a comment, a blank line or an instruction, it is just a comment.
    for text in [
        "# hello\n# escape=`\nFROM a\nRUN x \\\n y\n",
        "\n# escape=`\nFROM a\nRUN x \\\n y\n",
        "FROM a\n# escape=`\nRUN x \\\n y\n",
        "# foo=bar\n# escape=`\nFROM a\nRUN x \\\n y\n",
    ] {
        let d = parsed(text);
        assert_eq!(d.escape, '\\', "{text:?}");
        assert_eq!(d.instructions[1].kind, run(shell("x  y")), "{text:?}");
    }
    assert_eq!(parsed("  # escape=`\nFROM a\n").escape, '`');
    assert_eq!(
        err("# escape=\\\n# escape=`\nFROM a\n"),
        (2, s("only one escape parser directive can be used"))
    );
    assert_eq!(
        err("# escape=x\nFROM a\n"),
        (1, s("invalid escape token 'x' does not match ` or \\"))
    );
    assert_eq!(
        err("# syntax=a\n# syntax=b\nFROM a\n"),
        (2, s("only one syntax parser directive can be used"))
    );
}

#[test]
fn case_insensitive_names_and_bom_and_crlf() {
    let k = kinds("\u{feff}from alpine AS Base\r\nRun echo hi \\\r\n  there\r\nworkdir /x\r\n");
    assert_eq!(
        k,
        [
            from("alpine", Some("base")),
            run(shell("echo hi   there")),
            Kind::Workdir(s("/x"))
        ]
    );
    // Names are lowered as Go lowers them, one character for one, and `AS` is compared
    // with Unicode folding.
    assert_eq!(kinds("FROM a a\u{17f} b\nWORKD\u{130}R /x")[1], Kind::Workdir(s("/x")));
    assert_eq!(kinds("FROM a a\u{17f} b\n")[0], from("a", Some("b")));
    // Flags are case-sensitive.
    assert_eq!(err("FROM a\nCOPY --FROM=base a b\n"), (2, s("unknown flag: FROM")));
}

// ---- Exec and shell forms.

#[test]
fn json_or_shell_form() {
    assert_eq!(
        one("CMD [\"python\", \"app.py\"]"),
        Kind::Cmd(exec(&["python", "app.py"]))
    );
    // Not JSON: shell form, unchanged.
    assert_eq!(one("CMD [python, app.py]"), Kind::Cmd(shell("[python, app.py]")));
    assert_eq!(
        one("CMD ['python', 'app.py']"),
        Kind::Cmd(shell("['python', 'app.py']"))
    );
    assert_eq!(
        one("ENTRYPOINT [\"python\", \"app.py\"] # run it"),
        Kind::Entrypoint(shell("[\"python\", \"app.py\"] # run it"))
    );
    assert_eq!(
        one("CMD echo \"Hello, $NAME\""),
        Kind::Cmd(shell("echo \"Hello, $NAME\""))
    );
    assert_eq!(one("CMD"), Kind::Cmd(shell("")));
    assert_eq!(one("ENTRYPOINT []"), Kind::Entrypoint(exec(&[])));
    assert_eq!(one("RUN [ \"echo\" , \"a\\tb\" ]"), run(exec(&["echo", "a\tb"])));
    // Valid JSON that is not all strings is an error.
    assert_eq!(
        err("FROM a\nCMD [\"a\", 1]\n"),
        (
            2,
            s("when using JSON array syntax, arrays must be comprised of strings only")
        )
    );
    assert_eq!(err("FROM a\nVOLUME [[\"/a\"]]\n").1, super::json::NOT_STRINGS);
    assert_eq!(
        one("COPY [\"file with space.txt\", \"/dest/\"]"),
        copy(&["file with space.txt"], "/dest/")
    );
}

// ---- Heredocs.

#[test]
fn heredocs() {
    let d = parsed(
        "FROM alpine\n\
         RUN <<EOF\n\
         echo hello\n\
         echo $HOME\n\
         EOF\n\
         COPY <<-\"EOT\" /etc/motd\n\
         \tWelcome\n\
         \tEOT\n\
         RUN <<A cat >/a && <<B cat >/b\n\
         a\n\
         A\n\
         b\n\
         B\n\
         RUN cat <<'END' > /f\n\
         $not_expanded\n\
         END\n",
    );
    let i = &d.instructions;
    assert_eq!((i[1].line, i[1].end_line), (2, 5));
    assert_eq!(
        i[1].kind,
        Kind::Run {
            cmd: shell("<<EOF"),
            heredocs: vec![Heredoc {
                name: s("EOF"),
                content: s("echo hello\necho $HOME\n"),
                expand: true,
                chomp: false
            }],
            network: None,
            mounts: vec![],
        }
    );
    let motd = Heredoc {
        name: s("EOT"),
        content: s("\tWelcome\n"),
        expand: false,
        chomp: true,
    };
    assert_eq!(motd.body(), "Welcome\n");
    assert_eq!(
        i[2].kind,
        Kind::Copy {
            sources: vec![],
            dest: s("/etc/motd"),
            from: None,
            chown: None,
            chmod: None,
            link: false,
            parents: false,
            exclude: vec![],
            heredocs: vec![motd]
        }
    );
    assert_eq!((i[2].line, i[2].end_line), (6, 8));
    let Kind::Run { heredocs, cmd, .. } = &i[3].kind else {
        panic!()
    };
    assert_eq!(*cmd, shell("<<A cat >/a && <<B cat >/b"));
    let names: Vec<(&str, &str)> = heredocs.iter().map(|h| (h.name.as_str(), h.content.as_str())).collect();
    assert_eq!(names, [("A", "a\n"), ("B", "b\n")]);
    assert_eq!((i[3].line, i[3].end_line), (9, 13));
    let Kind::Run { heredocs, .. } = &i[4].kind else {
        panic!()
    };
    assert!(!heredocs[0].expand);
    assert_eq!(heredocs[0].content, "$not_expanded\n");
    assert_eq!(i.len(), 5);
}

#[test]
fn heredoc_details() {
    // Several files into one COPY.
    let k = one("COPY <<a.txt <<b.txt /dir/\nA\na.txt\nB\nb.txt\n");
    let Kind::Copy {
        heredocs,
        sources,
        dest,
        ..
    } = k
    else {
        panic!()
    };
    assert!(sources.is_empty());
    assert_eq!(dest, "/dir/");
    assert_eq!(
        heredocs
            .iter()
            .map(|h| (h.name.as_str(), h.content.as_str()))
            .collect::<Vec<_>>(),
        [("a.txt", "A\n"), ("b.txt", "B\n")]
    );
    // CRLF bodies keep their line endings; the delimiter line matches without them.
    let Kind::Run { heredocs, .. } = one("RUN <<EOF\r\nx\r\nEOF\r\n") else {
        panic!()
    };
    assert_eq!(heredocs[0].content, "x\r\n");
    // `<< EOF` (with a blank) is a heredoc too; `cat<<EOF` is not.
    let Kind::Run { heredocs, .. } = one("RUN cat << EOF\nhi\nEOF\n") else {
        panic!()
    };
    assert_eq!(heredocs[0].name, "EOF");
    assert_eq!(kinds("FROM a\nRUN cat<<EOF\nRUN true\n").len(), 3);
    // JSON form and other instructions do not read heredocs.
    assert_eq!(kinds("FROM a\nRUN [\"cat\", \"<<EOF\"]\nRUN true\n").len(), 3);
    assert_eq!(kinds("FROM a\nENV A=<<EOF\nRUN true\n").len(), 3);
    // Without chomp the delimiter must start the line.
    let Kind::Run { heredocs, .. } = one("RUN <<EOF\n\tEOF\nEOF\n") else {
        panic!()
    };
    assert_eq!(heredocs[0].content, "\tEOF\n");
    // ONBUILD RUN keeps its heredoc, and stores it in the trigger text.
    let d = parsed("FROM alpine\nONBUILD RUN <<EOF\necho triggered\nEOF\n");
    let Kind::Onbuild(inner) = &d.instructions[1].kind else {
        panic!()
    };
    let Kind::Run { heredocs, .. } = &inner.kind else {
        panic!()
    };
    assert_eq!(heredocs[0].content, "echo triggered\n");
    assert_eq!(
        d.instructions[1].onbuild_trigger().as_deref(),
        Some("RUN <<EOF\necho triggered\nEOF")
    );
    let again = parse_onbuild_trigger(&d.instructions[1].onbuild_trigger().unwrap()).unwrap();
    assert_eq!(again.kind, inner.kind);
    // Errors.
    assert_eq!(err("FROM a\nRUN <<EOF\necho\n"), (2, s("unterminated heredoc")));
    assert_eq!(
        err("FROM a\nCOPY a <<EOF\nx\nEOF\n"),
        (2, s("COPY cannot accept a heredoc as a destination"))
    );
}

// ---- Each instruction's checks and messages.

#[test]
fn error_messages_with_line_numbers() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "FROM alpine\nRUN echo ok\nFOOO bar\n",
            3,
            "unknown instruction: FOOO (did you mean FROM?)",
        ),
        ("FROM alpine\nBANANA\n", 2, "unknown instruction: BANANA"),
        (
            "FROM alpine\n# comment\nRUN true\n\nENV =x\n",
            5,
            "ENV names can not be blank",
        ),
        ("FROM a\nENV\n", 2, "ENV requires at least one argument"),
        ("FROM a\nENV onlyname\n", 2, "ENV must have two arguments"),
        (
            "FROM a\nENV a=b c\n",
            2,
            "Syntax error - can't find = in \"c\". Must be of the form: name=value",
        ),
        ("FROM a\nLABEL\n", 2, "LABEL requires at least one argument"),
        ("FROM a\nLABEL =x\n", 2, "LABEL names can not be blank"),
        ("FROM a\nARG\n", 2, "ARG requires at least one argument"),
        ("FROM a\nARG =x\n", 2, "ARG names can not be blank"),
        (
            "FROM a\nCOPY onlyone\n",
            2,
            "COPY requires at least two arguments, but only one was provided. Destination could not be determined",
        ),
        (
            "FROM a\nADD x\n",
            2,
            "ADD requires at least two arguments, but only one was provided. Destination could not be determined",
        ),
        (
            "FROM a\nCOPY --frm=builder a b\n",
            2,
            "unknown flag: frm (did you mean from?)",
        ),
        ("FROM a\nCOPY --from a b\n", 2, "missing a value on flag: from"),
        (
            "FROM a\nCOPY --from=a --from=b x y\n",
            2,
            "duplicate flag specified: from",
        ),
        (
            "FROM a\nCOPY --link=yes a b\n",
            2,
            "expecting boolean value for flag link, not: yes",
        ),
        ("FROM a\nCOPY --link= a b\n", 2, "missing a value on flag: link"),
        ("FROM a\nADD --unpack=true a b\n", 2, "unknown flag: unpack"),
        (
            "FROM a\nRUN --network=bridge true\n",
            2,
            "invalid network mode \"bridge\"",
        ),
        ("FROM a\nRUN --security=insecure true\n", 2, "unknown flag: security"),
        ("FROM a\nCMD --foo x\n", 2, "unknown flag: foo"),
        (
            "FROM golang:1.20 as 1builder\n",
            1,
            "invalid name for build stage: \"1builder\", name can't start with a number or contain symbols",
        ),
        ("FROM a b\n", 1, "FROM requires either one or three arguments"),
        ("FROM\n", 1, "FROM requires either one or three arguments"),
        ("FROM --platform a\n", 1, "missing a value on flag: platform"),
        ("FROM a\nWORKDIR\n", 2, "WORKDIR requires exactly one argument"),
        ("FROM a\nUSER\n", 2, "USER requires exactly one argument"),
        ("FROM a\nMAINTAINER\n", 2, "MAINTAINER requires exactly one argument"),
        ("FROM a\nSTOPSIGNAL\n", 2, "STOPSIGNAL requires exactly one argument"),
        ("FROM a\nEXPOSE\n", 2, "EXPOSE requires at least one argument"),
        ("FROM a\nVOLUME\n", 2, "VOLUME requires at least one argument"),
        ("FROM a\nVOLUME []\n", 2, "VOLUME requires at least one argument"),
        (
            "FROM a\nVOLUME [\"\"]\n",
            2,
            "VOLUME specified can not be an empty string",
        ),
        (
            "FROM a\nSHELL /bin/bash -c\n",
            2,
            "SHELL requires the arguments to be in JSON form",
        ),
        ("FROM a\nSHELL []\n", 2, "SHELL requires at least one argument"),
        ("FROM a\nONBUILD\n", 2, "ONBUILD requires at least one argument"),
        (
            "FROM a\nONBUILD ONBUILD RUN x\n",
            2,
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
        (
            "FROM a\nONBUILD FROM alpine\n",
            2,
            "FROM isn't allowed as an ONBUILD trigger",
        ),
        (
            "FROM a\nONBUILD maintainer me\n",
            2,
            "MAINTAINER isn't allowed as an ONBUILD trigger",
        ),
        (
            "FROM a\nONBUILD COPY x\n",
            2,
            "COPY requires at least two arguments, but only one was provided. Destination could not be determined",
        ),
        ("FROM a\nHEALTHCHECK\n", 2, "HEALTHCHECK requires at least one argument"),
        ("FROM a\nHEALTHCHECK CMD\n", 2, "Missing command after HEALTHCHECK CMD"),
        (
            "FROM a\nHEALTHCHECK FOO bar\n",
            2,
            "Unknown type \"FOO\" in HEALTHCHECK (try CMD)",
        ),
        ("FROM a\nHEALTHCHECK NONE x\n", 2, "HEALTHCHECK NONE takes no arguments"),
        (
            "FROM a\nHEALTHCHECK --interval=500us CMD true\n",
            2,
            "Interval \"interval\" cannot be less than 1ms",
        ),
        (
            "FROM a\nHEALTHCHECK --timeout=-1s CMD true\n",
            2,
            "Interval \"timeout\" cannot be less than 1ms",
        ),
        (
            "FROM a\nHEALTHCHECK --interval=5 CMD true\n",
            2,
            "time: missing unit in duration \"5\"",
        ),
        (
            "FROM a\nHEALTHCHECK --retries=-1 CMD true\n",
            2,
            "--retries cannot be negative (-1)",
        ),
        (
            "FROM a\nHEALTHCHECK --retries=x CMD true\n",
            2,
            "strconv.ParseInt: parsing \"x\": invalid syntax",
        ),
        ("FROM a\nHEALTHCHECK --foo=1 CMD true\n", 2, "unknown flag: foo"),
        ("", 1, "file with no instructions"),
        ("# only a comment\n\n", 2, "file with no instructions"),
    ];
    for (text, line, message) in cases {
        assert_eq!(err(text), (*line, s(message)), "{text:?}");
    }
    let e = parse("FROM alpine\nRUN echo ok\nFOOO bar\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "dockerfile parse error on line 3: unknown instruction: FOOO (did you mean FROM?)"
    );
}

#[test]
fn first_pass_errors_come_first() {
    // Docker reads the whole file before it checks instructions: the ENV on line 3 is
    // reported although the unknown instruction on line 2 comes before it.
    assert_eq!(
        err("FROM alpine\nFOOO\nENV onlyname\n"),
        (3, s("ENV must have two arguments"))
    );
    // Error lines name the first line of a continued instruction.
    assert_eq!(err("FROM a\nRUN true\nCOPY \\\n  onlyone\n").0, 3);
}

#[test]
fn healthcheck_forms() {
    assert_eq!(one("HEALTHCHECK NONE"), Kind::Healthcheck(Healthcheck::None));
    // Docker ignores flags given with NONE.
    assert_eq!(
        one("HEALTHCHECK --interval=5s NONE"),
        Kind::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        one("healthcheck cmd [\"pg_isready\", \"-U\", \"postgres\"]"),
        Kind::Healthcheck(Healthcheck::Cmd {
            test: exec(&["pg_isready", "-U", "postgres"]),
            interval: None,
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: None,
        })
    );
    let Kind::Healthcheck(Healthcheck::Cmd {
        interval,
        timeout,
        retries,
        ..
    }) = one("HEALTHCHECK --interval=0s --timeout=1m30s --retries=0 CMD true")
    else {
        panic!()
    };
    assert_eq!(
        (interval, timeout, retries),
        (None, Some(Duration::from_secs(90)), Some(0))
    );
}

#[test]
fn arguments_kept_as_written() {
    assert_eq!(one("USER a b"), Kind::User(s("a b")));
    assert_eq!(one("WORKDIR /path with spaces"), Kind::Workdir(s("/path with spaces")));
    assert_eq!(one("ARG A B="), Kind::Arg(vec![(s("A"), None), (s("B"), Some(s("")))]));
    assert_eq!(
        one("LABEL description=\"A \\\"quoted\\\" app\" x=1"),
        Kind::Label(vec![
            (s("description"), s("\"A \\\"quoted\\\" app\"")),
            (s("x"), s("1"))
        ])
    );
    // Flags take quotes and escapes; `--` ends them.
    let Kind::Copy { chown, .. } = one("COPY --chown=\"app user\" a b") else {
        panic!()
    };
    assert_eq!(chown.as_deref(), Some("app user"));
    assert_eq!(one("RUN -- --version"), run(shell("--version")));
    // Flags of ARG and STOPSIGNAL are ignored, as in Docker.
    assert_eq!(one("ARG --x=1 A"), Kind::Arg(vec![(s("A"), None)]));
    assert_eq!(one("STOPSIGNAL --x SIGTERM"), Kind::StopSignal(s("SIGTERM")));
    assert_eq!(one("COPY --link=false a b"), copy(&["a"], "b"));
}

// ---- Robustness.

#[test]
fn hostile_inputs_do_not_crash() {
    // A line longer than Docker's scanner accepts.
    let long = format!("FROM a\nRUN {}\n", "x".repeat(70_000));
    assert_eq!(
        err(&long),
        (2, s("dockerfile line greater than max allowed size of 65535"))
    );
    let fits = format!("FROM a\nRUN {}\n", "x".repeat(65_531));
    assert_eq!(parsed(&fits).instructions.len(), 2);
    // Chained ONBUILDs.
    let chained = format!("FROM a\n{}RUN x\n", "ONBUILD ".repeat(8_000));
    assert_eq!(
        err(&chained),
        (2, s("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"))
    );
    // Deep JSON.
    assert_eq!(
        one(&format!("CMD {}", "[".repeat(60_000))),
        Kind::Cmd(shell(&"[".repeat(60_000)))
    );
    let deep = format!("CMD {}{}", "[".repeat(5_000), "]".repeat(5_000));
    assert_eq!(err(&deep).1, super::json::NOT_STRINGS);
    // Deep substitutions on a heredoc line.
    let subst = |depth: usize| {
        format!(
            "FROM a\nRUN <<EOF {}x{}\nEOF\n",
            "${a:-".repeat(depth),
            "}".repeat(depth)
        )
    };
    assert_eq!(parsed(&subst(20)).instructions.len(), 2);
    // Past the nesting limit the line cannot be lexed, so (as for an unclosed quote) its
    // heredocs are not seen and the body is read as instructions; Docker has no limit.
    assert_eq!(
        err(&subst(10_000)),
        (3, s("unknown instruction: EOF (did you mean ENV?)"))
    );
    // Many continuation lines.
    let many = format!("FROM a\nRUN a \\\n{}b\n", "  c \\\n".repeat(100_000));
    let d = parsed(&many);
    assert_eq!(d.instructions[1].end_line, 100_003);
    // Odd bytes.
    for text in [
        "\0",
        "RUN \u{0}",
        "\u{feff}",
        "FROM a\n\u{2028}RUN b",
        "ONBUILD",
        "ONBUILD \u{131}",
        "RUN <<",
        "COPY <<\u{fffd} x\n\u{fffd}\n",
    ] {
        let _ = parse(text);
    }
}

#[test]
fn step_text_is_what_docker_prints() {
    let d = parsed("FROM alpine   \n  COPY --chown=1:1 \\\n    a b  \n");
    assert_eq!(d.instructions[0].original, "FROM alpine");
    assert_eq!(d.instructions[1].original, "COPY --chown=1:1     a b");
}

#[test]
fn fuzz_seed_corpus_parses() {
    // The seeds of runtime/fuzz must stay valid Dockerfiles, or the fuzzer starts from
    // error paths only.
    let seeds = [
        include_str!("../../../fuzz/corpus/dockerfile_parse/node_app"),
        include_str!("../../../fuzz/corpus/dockerfile_parse/flask_legacy_env"),
        include_str!("../../../fuzz/corpus/dockerfile_parse/go_multistage"),
        include_str!("../../../fuzz/corpus/dockerfile_parse/heredocs"),
        include_str!("../../../fuzz/corpus/dockerfile_parse/backtick_escape"),
        include_str!("../../../fuzz/corpus/dockerfile_parse/every_instruction"),
    ];
    let counts: Vec<usize> = seeds.iter().map(|s| parsed(s).instructions.len()).collect();
    assert_eq!(counts, [8, 10, 11, 5, 7, 13]);
    let d = parsed(seeds[4]);
    assert_eq!((d.escape, d.check.as_deref()), ('`', Some("skip=all")));
    assert_eq!(
        d.instructions[3].kind,
        run(shell("New-Item -ItemType Directory C:\\Example     ; Write-Host done"))
    );
}

#[test]
fn instructions_need_a_stage() {
    assert_eq!(
        err("RUN echo hi\nFROM alpine\n"),
        (1, s("no build stage in current context"))
    );
    assert_eq!(
        err("# comment\nARG V=1\nENV A=$V\nFROM alpine\n"),
        (3, s("no build stage in current context"))
    );
    // An error in the instruction itself comes first, as in Docker.
    assert_eq!(err("COPY x\nFROM alpine\n").1, no_dest("COPY"));
    let d = parsed("ARG A=1\nARG B\nFROM alpine:${A}\n");
    assert_eq!(d.instructions.len(), 3);
}

fn no_dest(cmd: &str) -> String {
    format!("{cmd} requires at least two arguments, but only one was provided. Destination could not be determined")
}

#[test]
fn onbuild_triggers_parse_back() {
    let d = parsed("FROM alpine\nONBUILD COPY --chown=1:1 . /app\nONBUILD RUN <<-EOF\n\techo hi\n\tEOF\n");
    let triggers: Vec<String> = d.instructions.iter().filter_map(Instruction::onbuild_trigger).collect();
    assert_eq!(triggers, ["COPY --chown=1:1 . /app", "RUN <<-EOF\n\techo hi\nEOF"]);
    for (trigger, ins) in triggers.iter().zip(&d.instructions[1..]) {
        let Kind::Onbuild(inner) = &ins.kind else { panic!() };
        assert_eq!(parse_onbuild_trigger(trigger).unwrap().kind, inner.kind);
    }
    assert_eq!(
        parse_onbuild_trigger("RUN a\nRUN b").unwrap_err().message,
        "onbuild trigger should be a single expression"
    );
    assert_eq!(
        parse_onbuild_trigger("FROM x").unwrap_err().message,
        "FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        parse_onbuild_trigger("FOOO x").unwrap_err().message,
        "unknown instruction: FOOO (did you mean FROM?)"
    );
}

#[test]
fn what_a_run_with_heredocs_runs() {
    let d = parsed(
        "FROM alpine\n\
         RUN echo plain\n\
         RUN <<-EOF\n\techo one\n\tEOF\n\
         RUN <<'PY'\n#!/usr/bin/env python3\nprint(1)\nPY\n\
         RUN cat <<A > /a && cat <<-B > /b\na\nA\n\tb\n\tB\n",
    );
    let scripts: Vec<RunScript> = d.instructions[1..]
        .iter()
        .map(|i| match &i.kind {
            Kind::Run {
                cmd: ShellOrExec::Shell(cmd),
                heredocs,
                ..
            } => run_script(cmd, heredocs),
            k => panic!("{k:?}"),
        })
        .collect();
    assert_eq!(
        scripts,
        [
            RunScript::Shell(s("echo plain")),
            RunScript::Shell(s("echo one\n")),
            RunScript::File {
                name: s("PY"),
                body: s("#!/usr/bin/env python3\nprint(1)\n")
            },
            RunScript::Shell(s("cat <<A > /a && cat <<-B > /b\na\nA\n\tb\nB")),
        ]
    );
}
