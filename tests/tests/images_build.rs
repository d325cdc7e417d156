//! The image store and the classic builder through the real `slipway images` command:
//! a multi-stage build with `.dockerignore`, build args, heredocs and every instruction;
//! rebuilds from the cache and what a change invalidates; Docker's errors for broken
//! Dockerfiles; save, load and garbage collection; hostile archives refused.
//!
//! Each test has its own store (a `slipway-test-` directory) holding only `busybox`,
//! which the catalog makes from Debian's busybox-static in a second.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use slipway_e2e::slipway_bin;

/// A throw-away store with busybox in it, and a cgroup root of its own.
struct Store {
    dir: tempfile::TempDir,
    cgroup_root: String,
}

impl Drop for Store {
    fn drop(&mut self) {
        // Build containers' cgroups are gone with them; their parents are ours to remove.
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            let root = hierarchy.path().join(&self.cgroup_root);
            let _ = std::fs::remove_dir(root.join("builds"));
            let _ = std::fs::remove_dir(&root);
        }
    }
}

fn cgroup_root(dir: &Path) -> String {
    format!(
        "slipway-test-{}",
        dir.file_name().unwrap().to_string_lossy().rsplit('-').next().unwrap()
    )
}

impl Store {
    fn new() -> Store {
        let dir = tempfile::Builder::new()
            .prefix("slipway-test-images-")
            .tempdir_in("/var/tmp")
            .expect("temp dir");
        let store = Store {
            cgroup_root: cgroup_root(dir.path()),
            dir,
        };
        let (code, out, err) = store.run(&["ensure", "busybox"]);
        assert_eq!(code, 0, "ensure busybox: {out}{err}");
        store
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_in(None, args)
    }

    fn run_in(&self, cwd: Option<&Path>, args: &[&str]) -> (i32, String, String) {
        let mut cmd = Command::new(slipway_bin());
        cmd.arg("images").arg("--data-dir").arg(self.dir.path()).args(args);
        cmd.env("SLIPWAY_CGROUP_ROOT", &self.cgroup_root);
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        let out = cmd.output().expect("running slipway images");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Builds `dir`, asserting success; returns the build's output.
    fn build(&self, dir: &Path, extra: &[&str]) -> String {
        let mut args = vec!["build"];
        args.extend_from_slice(extra);
        let d = dir.to_str().unwrap();
        args.push(d);
        let (code, out, err) = self.run(&args);
        assert_eq!(code, 0, "build failed:\n{out}\n{err}");
        out
    }

    fn inspect(&self, name: &str) -> serde_json::Value {
        let (code, out, err) = self.run(&["inspect", name]);
        assert_eq!(code, 0, "inspect {name}: {err}");
        serde_json::from_str(&out).expect("inspect prints JSON")
    }

    /// Runs a shell script in a RUN step of an image built `FROM image`; returns what it printed.
    fn look_inside(&self, image: &str, script: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!("FROM {image}\nUSER 0\nRUN echo '--- begin'; {script}; echo '--- end'\n"),
        )
        .unwrap();
        let out = self.build(dir.path(), &["--no-cache"]);
        let start = out.find("--- begin\n").expect("the script ran") + "--- begin\n".len();
        let end = out[start..].find("--- end").expect("the script finished") + start;
        out[start..end].to_string()
    }
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// A tar holding one file, for ADD's auto-extraction.
fn small_tar(name: &str, text: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, text.as_bytes()).unwrap();
    b.into_inner().unwrap()
}

const APP_DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
# escape=\
ARG BASE=busybox
FROM ${BASE} AS build
ARG GREETING=hello
ENV APP=/app \
    MODE=${GREETING:+set}
WORKDIR $APP
COPY src/ ./src/
RUN <<EOT
echo "${GREETING:-none} from build, mode $MODE" > built.txt
ls src > listing.txt
EOT
RUN cat src/*.txt > all.txt && echo "unused=${UNSET:-fallback}" >> all.txt

FROM busybox AS unused
RUN echo never needed > /never

FROM busybox
LABEL org.example.course="slipway tests" version=1
COPY --from=build --chown=1000:1000 --chmod=640 /app/built.txt /app/all.txt /app/listing.txt /out/
ADD data.tar /unpacked/
COPY src/*.txt /texts/
EXPOSE 8080/tcp 53/udp
VOLUME ["/data"]
WORKDIR /srv
USER 1000:1000
HEALTHCHECK --interval=5s --timeout=2s --retries=2 CMD ["true"]
STOPSIGNAL SIGINT
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo triggered > /tmp/onbuild
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /out/built.txt"]
"#;

fn app_context() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("Dockerfile", APP_DOCKERFILE),
            ("src/a.txt", "alpha\n"),
            ("src/b.txt", "beta\n"),
            ("src/debug.log", "ignored\n"),
            ("src/keep.log", "kept by an exception\n"),
            ("secret/key", "must not reach the builder\n"),
            // Docker's rules: a leading slash is the context root, `!` re-includes.
            (".dockerignore", "/secret\nsrc/*.log\n!src/keep.log\n**/*.tmp\n"),
            ("src/scratch.tmp", "ignored too\n"),
        ],
    );
    std::fs::write(dir.path().join("data.tar"), small_tar("inside/f.txt", "from the tar\n")).unwrap();
    dir
}

fn steps_using_cache(out: &str) -> Vec<usize> {
    let mut step = 0;
    let mut cached = Vec::new();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Step ") {
            step = rest.split('/').next().unwrap().parse().unwrap();
        } else if line.trim() == "---> Using cache" {
            cached.push(step);
        }
    }
    cached
}

fn built_id(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .expect("the build printed its ID")
        .trim()
        .to_string()
}

#[test]
fn multi_stage_build_rebuilds_from_cache_and_keeps_only_the_last_stage() {
    let store = Store::new();
    let ctx = app_context();
    let first = store.build(ctx.path(), &["-t", "app:1", "--build-arg", "GREETING=hi"]);
    // The classic builder's stream, which the docker CLI prints as it is.
    let steps = APP_DOCKERFILE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with(' ') && !l.trim().is_empty())
        .filter(|l| !l.starts_with("echo") && !l.starts_with("ls") && !l.starts_with("EOT"))
        .count();
    assert!(first.contains(&format!("Step 1/{steps} : ARG BASE=busybox")), "{first}");
    assert!(
        first.contains(&format!("Step 2/{steps} : FROM ${{BASE}} AS build")),
        "{first}"
    );
    assert!(first.contains(" ---> Running in "), "{first}");
    assert!(first.contains("Successfully tagged app:1"), "{first}");
    assert!(
        steps_using_cache(&first).is_empty(),
        "a fresh store has no cache:\n{first}"
    );
    let id = built_id(&first);

    // Unchanged: every step after a FROM is a cache hit, and the image is the same one.
    let again = store.build(ctx.path(), &["-t", "app:1", "--build-arg", "GREETING=hi"]);
    assert_eq!(built_id(&again), id, "{again}");
    let froms: Vec<usize> = again
        .lines()
        .filter_map(|l| l.strip_prefix("Step "))
        .filter(|l| l.contains(" : FROM ") || l.contains(" : ARG BASE"))
        .map(|l| l.split('/').next().unwrap().parse().unwrap())
        .collect();
    let expected: Vec<usize> = (1..=steps).filter(|s| !froms.contains(s)).collect();
    assert_eq!(steps_using_cache(&again), expected, "{again}");
    assert!(!again.contains("Running in"), "{again}");

    // A file only the build stage copies changes: the first stage's steps before its COPY
    // stay cached, everything after it is rebuilt; the final stage's LABEL (whose parent
    // is busybox) stays cached, its COPY --from does not.
    std::fs::write(ctx.path().join("src/a.txt"), "ALPHA\n").unwrap();
    let changed = store.build(ctx.path(), &["-t", "app:1", "--build-arg", "GREETING=hi"]);
    let cached = steps_using_cache(&changed);
    let step_of = |text: &str| -> usize {
        changed
            .lines()
            .find(|l| l.starts_with("Step ") && l.contains(text))
            .and_then(|l| l[5..].split('/').next())
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(cached.contains(&step_of("WORKDIR $APP")), "{changed}");
    assert!(!cached.contains(&step_of("COPY src/ ./src/")), "{changed}");
    assert!(!cached.contains(&step_of("RUN cat src")), "{changed}");
    assert!(cached.contains(&step_of("LABEL org.example")), "{changed}");
    assert!(!cached.contains(&step_of("COPY --from=build")), "{changed}");
    assert_ne!(built_id(&changed), id);

    // A different build arg misses the cache from the step that uses it.
    let other = store.build(ctx.path(), &["-t", "app:2", "--build-arg", "GREETING=bye"]);
    assert!(!steps_using_cache(&other).contains(&step_of("RUN <<EOT")), "{other}");

    // What is inside the final image: only what the last stage made.
    let inside = store.look_inside(
        "app:1",
        "ls -ln /out | tail -n +2 | awk '{print $1, $3, $4, $9}'; cat /out/built.txt /out/listing.txt /out/all.txt; \
         cat /unpacked/inside/f.txt; ls /texts; pwd; \
         for p in /app /never /secret; do test -e $p && echo \"$p exists\"; done; true",
    );
    let expected = "-rw-r----- 1000 1000 all.txt\n\
                    -rw-r----- 1000 1000 built.txt\n\
                    -rw-r----- 1000 1000 listing.txt\n\
                    hi from build, mode set\n\
                    a.txt\nb.txt\nkeep.log\n\
                    ALPHA\nbeta\nunused=fallback\n\
                    from the tar\n\
                    a.txt\nb.txt\n\
                    /srv\n";
    assert_eq!(inside, expected.replace("\n                    ", "\n"));

    // ONBUILD fires in a child build.
    let child = store.look_inside("app:1", "cat /tmp/onbuild");
    assert_eq!(child, "triggered\n");
}

#[test]
fn the_image_config_records_every_instruction() {
    let store = Store::new();
    let ctx = app_context();
    store.build(ctx.path(), &["-t", "app:cfg", "--target", "build"]);
    let build_stage = store.inspect("app:cfg");
    assert_eq!(build_stage["Config"]["WorkingDir"], "/app");
    assert!(
        store
            .look_inside("app:cfg", "cat /app/built.txt")
            .contains("hello from build")
    );

    store.build(ctx.path(), &["-t", "app:cfg"]);
    let v = store.inspect("app:cfg");
    let c = &v["Config"];
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["cat /out/built.txt"]));
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["WorkingDir"], "/srv");
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(c["OnBuild"], serde_json::json!(["RUN echo triggered > /tmp/onbuild"]));
    assert_eq!(c["Labels"]["org.example.course"], "slipway tests");
    assert_eq!(c["Labels"]["version"], "1");
    assert!(c["ExposedPorts"]["8080/tcp"].is_object() && c["ExposedPorts"]["53/udp"].is_object());
    assert!(c["Volumes"]["/data"].is_object());
    assert_eq!(c["Healthcheck"]["Test"], serde_json::json!(["CMD", "true"]));
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000u64);
    assert_eq!(c["Healthcheck"]["Retries"], 2);
    // ENV from the build stage does not leak into the final one.
    assert!(!c["Env"].to_string().contains("APP="), "{c}");
    // History: one entry per step of the final stage, busybox's first.
    let (code, history, _) = store.run(&["history", "app:cfg"]);
    assert_eq!(code, 0);
    assert!(history.contains("#(nop) ADD "), "{history}");
    assert!(history.contains("CMD [\"cat /out/built.txt\"]"), "{history}");
}

#[test]
fn broken_dockerfiles_fail_with_dockers_messages_and_hurt_nothing() {
    let store = Store::new();
    let cases: &[(&str, &str)] = &[
        ("FROM busybox\nFROBNICATE x\n", "unknown instruction: FROBNICATE"),
        ("FROM busybox\nCOPY nothere.txt /x\n", "nothere.txt"),
        ("FROM busybox\nRUN exit 3\n", "returned a non-zero code: 3"),
        ("RUN true\n", "no build stage in current context"),
        ("FROM busybox\nCOPY\n", "COPY requires at least two arguments"),
        ("FROM busybox\nENV\n", "ENV requires at least one argument"),
        ("FROM busybox\nRUN <<EOF\necho never closed\n", "heredoc"),
        ("FROM busybox\nCOPY --from=nostage /x /y\n", "nostage"),
        ("FROM no-such-image-here\n", "no-such-image-here"),
        ("", "no instructions"),
        ("\u{0}\u{1}\u{2}FROM\n", "unknown instruction"),
        ("FROM busybox\nHEALTHCHECK --interval=forever CMD true\n", "forever"),
    ];
    for (dockerfile, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
        let (code, out, err) = store.run(&["build", dir.path().to_str().unwrap()]);
        assert_ne!(code, 0, "{dockerfile:?} built:\n{out}");
        assert!(
            err.contains(expected) || out.contains(expected),
            "{dockerfile:?}: expected {expected:?} in:\n{out}\n{err}"
        );
    }
    // Non-UTF-8 bytes are words like any other.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), b"FROM busybox\nLABEL x=\xff\xfe\n").unwrap();
    store.build(dir.path(), &["-t", "odd"]);
    // No Dockerfile at all.
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = store.run(&["build", empty.path().to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("Cannot locate specified Dockerfile"), "{err}");
    // The store is still whole.
    let (code, out, _) = store.run(&["ls"]);
    assert_eq!(code, 0);
    assert!(out.contains("busybox"), "{out}");
}

#[test]
fn save_load_and_garbage_collection() {
    let store = Store::new();
    let ctx = app_context();
    store.build(ctx.path(), &["-t", "app:saved"]);
    let id = store.inspect("app:saved")["Id"].as_str().unwrap().to_string();
    let archive = store.dir.path().join("app.tar");
    let (code, _, err) = store.run(&["save", "-o", archive.to_str().unwrap(), "app:saved"]);
    assert_eq!(code, 0, "{err}");

    // The archive is both docker save's format and an OCI layout.
    let mut names = Vec::new();
    for entry in tar::Archive::new(std::fs::File::open(&archive).unwrap())
        .entries()
        .unwrap()
    {
        names.push(entry.unwrap().path().unwrap().to_string_lossy().into_owned());
    }
    for required in ["manifest.json", "oci-layout", "index.json"] {
        assert!(names.iter().any(|n| n == required), "{required} missing from {names:?}");
    }

    // Loaded into an empty store, it is the same image and it runs.
    let other = tempfile::Builder::new()
        .prefix("slipway-test-images-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let other = Store {
        cgroup_root: cgroup_root(other.path()),
        dir: other,
    };
    let (code, out, err) = other.run(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Loaded image: app:saved"), "{out}");
    assert_eq!(other.inspect("app:saved")["Id"], id.as_str());
    assert!(
        other
            .look_inside("app:saved", "cat /out/built.txt")
            .contains("hello from build")
    );

    // Removing the image leaves its blobs until gc, which frees what nothing needs
    // and keeps busybox's.
    let (code, _, err) = store.run(&["rm", "app:saved"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = store.run(&["gc"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.trim().is_empty(), "gc says what it freed");
    assert!(store.look_inside("busybox", "echo still here").contains("still here"));
    let (code, _, _) = store.run(&["inspect", &id]);
    assert_ne!(code, 0, "the image is gone");
}

/// A `docker save` archive around one layer tar.
fn archive_with_layer(layer: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    let diff_id = format!("sha256:{}", hex(&sha2::Sha256::digest(layer)));
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", hex(&sha2::Sha256::digest(&config)));
    let manifest = serde_json::json!([{"Config": config_name, "RepoTags": ["evil:latest"], "Layers": ["layer.tar"]}]);
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
        (config_name.as_str(), config),
        ("layer.tar", layer.to_vec()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A layer tar with raw names (the `tar` crate refuses to write `..`).
fn raw_layer(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

#[test]
fn hostile_layers_in_an_archive_are_refused() {
    let store = Store::new();
    let victim = tempfile::Builder::new()
        .prefix("slipway-test-victim-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let target = victim.path().join("pwned");
    let depth = "../".repeat(8);
    let escape = format!("{depth}{}", target.display().to_string().trim_start_matches('/'));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dotdot", raw_layer(&[(&escape, tar::EntryType::Regular, "", b"x")])),
        (
            "absolute",
            raw_layer(&[(target.to_str().unwrap(), tar::EntryType::Regular, "", b"x")]),
        ),
        (
            "symlink then write through it",
            raw_layer(&[
                ("link", tar::EntryType::Symlink, victim.path().to_str().unwrap(), b""),
                ("link/pwned", tar::EntryType::Regular, "", b"x"),
            ]),
        ),
        (
            "hardlink to a host file",
            raw_layer(&[("shadow", tar::EntryType::Link, "/etc/shadow", b"")]),
        ),
    ];
    for (what, layer) in cases {
        let path = store.dir.path().join("evil.tar");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&archive_with_layer(&layer))
            .unwrap();
        let (code, out, err) = store.run(&["load", "-i", path.to_str().unwrap()]);
        assert_ne!(code, 0, "{what}: loaded:\n{out}");
        assert!(!target.exists(), "{what}: wrote outside the layer");
        assert!(!err.trim().is_empty(), "{what}: no error message");
        let (_, ls, _) = store.run(&["ls"]);
        assert!(!ls.contains("evil"), "{what}: tagged anyway:\n{ls}");
    }
}
