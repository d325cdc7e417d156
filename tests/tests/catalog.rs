//! The offline catalog behaves as the Docker Official Images the course relies on:
//! the tags say the versions inside, the configs carry the official CMD, ENTRYPOINT,
//! WORKDIR, EXPOSE, VOLUME and STOPSIGNAL, and the servers start from their entrypoints
//! and answer (nginx's welcome page, postgres and mariadb initialised from their
//! environment variables).
//!
//! The catalog is built once per machine by `scripts/test.sh` into
//! `$SLIPWAY_CATALOG_DIR` (default `/var/cache/slipway/catalog`); these tests only read
//! it, and build small throw-away images on top (RUN steps with loopback only).

use std::path::PathBuf;
use std::process::Command;

use slipway_e2e::slipway_bin;

fn catalog_dir() -> PathBuf {
    let dir = std::env::var_os("SLIPWAY_CATALOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/slipway/catalog"));
    assert!(
        dir.join("images").is_dir(),
        "no catalog at {}: run `slipway images --data-dir {} ensure` (scripts/test.sh does)",
        dir.display(),
        dir.display()
    );
    dir
}

fn images(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(slipway_bin())
        .arg("images")
        .arg("--data-dir")
        .arg(catalog_dir())
        .args(args)
        .env(
            "SLIPWAY_CGROUP_ROOT",
            format!("slipway-test-catalog-{}", std::process::id()),
        )
        .output()
        .expect("running slipway images");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn config(name: &str) -> serde_json::Value {
    let (code, out, err) = images(&["inspect", name]);
    assert_eq!(code, 0, "inspect {name}: {err}");
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["Config"].clone()
}

/// Builds `FROM image` plus one RUN of `script` (bash, loopback network only, no cache);
/// returns the build's output.
fn run_in(image: &str, script: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {image}\nSHELL [\"/bin/bash\", \"-c\"]\nUSER 0\nRUN {script}\n"),
    )
    .unwrap();
    // Tagged so that removing the tag removes the step's image too: the catalog's store
    // is kept between runs.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let tag = format!(
        "slipway-test/run-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let (code, out, err) = images(&[
        "build",
        "--no-cache",
        "--network",
        "none",
        "-t",
        &tag,
        dir.path().to_str().unwrap(),
    ]);
    let _ = images(&["rm", &tag]);
    assert_eq!(code, 0, "build on {image} failed:\n{out}\n{err}");
    out
}

fn cleanup_cgroups() {
    let root = format!("slipway-test-catalog-{}", std::process::id());
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let _ = std::fs::remove_dir(hierarchy.path().join(&root).join("builds"));
        let _ = std::fs::remove_dir(hierarchy.path().join(&root));
    }
}

struct Cleanup;
impl Drop for Cleanup {
    fn drop(&mut self) {
        cleanup_cgroups();
    }
}

#[test]
fn the_catalog_lists_every_image_with_the_versions_inside() {
    let (code, out, err) = images(&["ls"]);
    assert_eq!(code, 0, "{err}");
    let has = |repo: &str, tag_prefix: &str| {
        out.lines().any(|l| {
            let mut f = l.split_whitespace();
            f.next() == Some(repo) && f.next().is_some_and(|t| t.starts_with(tag_prefix))
        })
    };
    for (repo, tag) in [
        ("busybox", "1."),
        ("debian", "trixie-slim"),
        ("debian", "13."),
        ("python", "3.13-slim"),
        ("python", "3.13."),
        ("node", "20."),
        ("nginx", "1.26."),
        ("httpd", "2.4."),
        ("redis", "8.0."),
        ("postgres", "17."),
        ("mariadb", "11.8."),
        ("golang", "1.24."),
        ("slipway/node", "latest"),
    ] {
        assert!(has(repo, tag), "no {repo}:{tag}* in:\n{out}");
        assert!(has(repo, "latest"), "no {repo}:latest in:\n{out}");
    }
    // The exact tags are what the programs inside report.
    let _c = Cleanup;
    let python = run_in(
        "python:3.13",
        "python --version; pip --version; python -m venv /tmp/v && /tmp/v/bin/python -c 'print(\"venv ok\")'",
    );
    let exact = out
        .lines()
        .filter(|l| l.starts_with("python "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .find(|t| t.matches('.').count() == 2 && !t.contains('-'))
        .expect("an exact python tag");
    assert!(python.contains(&format!("Python {exact}")), "{python}");
    assert!(python.contains("venv ok") && python.contains("pip "), "{python}");
    let node = run_in("node:20", "node --version; npm --version");
    assert!(node.lines().any(|l| l.starts_with("v20.")), "{node}");
}

#[test]
fn configs_follow_the_official_images() {
    let nginx = config("nginx");
    assert_eq!(nginx["Cmd"], serde_json::json!(["nginx", "-g", "daemon off;"]));
    assert!(nginx["ExposedPorts"]["80/tcp"].is_object());
    assert_eq!(nginx["StopSignal"], "SIGQUIT");
    assert_eq!(config("python")["Cmd"], serde_json::json!(["python3"]));
    assert_eq!(config("node")["Cmd"], serde_json::json!(["node"]));
    let redis = config("redis");
    assert_eq!(redis["Cmd"], serde_json::json!(["redis-server"]));
    assert_eq!(redis["WorkingDir"], "/data");
    assert!(redis["Volumes"]["/data"].is_object() && redis["ExposedPorts"]["6379/tcp"].is_object());
    let pg = config("postgres");
    assert!(pg["Volumes"]["/var/lib/postgresql/data"].is_object() && pg["ExposedPorts"]["5432/tcp"].is_object());
    assert_eq!(pg["StopSignal"], "SIGINT");
    let maria = config("mariadb");
    assert!(maria["Volumes"]["/var/lib/mysql"].is_object() && maria["ExposedPorts"]["3306/tcp"].is_object());
    assert_eq!(config("httpd")["Cmd"], serde_json::json!(["httpd-foreground"]));
    assert_eq!(config("golang")["WorkingDir"], "/go");
}

#[test]
fn nginx_serves_its_welcome_page_and_logs_to_stdout() {
    let _c = Cleanup;
    let out = run_in(
        "nginx",
        "(/docker-entrypoint.sh nginx -g 'daemon off;' > /tmp/out 2>&1 &); \
         for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/80) 2>/dev/null && break; sleep 0.1; done; \
         exec 3<>/dev/tcp/127.0.0.1/80; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3 | grep -E 'HTTP/|<title>'; \
         sleep 0.3; grep -c 'GET / HTTP/1.0' /tmp/out; ls /etc/nginx/conf.d",
    );
    assert!(out.contains("HTTP/1.1 200 OK"), "{out}");
    assert!(out.contains("<title>Welcome to nginx!</title>"), "{out}");
    assert!(out.contains("default.conf"), "{out}");
}

#[test]
fn postgres_initialises_from_its_environment() {
    let _c = Cleanup;
    let out = run_in(
        "postgres",
        "(POSTGRES_PASSWORD=pw POSTGRES_USER=alice POSTGRES_DB=shop docker-entrypoint.sh postgres > /tmp/log 2>&1 &); \
         for i in $(seq 150); do pg_isready -q -h 127.0.0.1 -U alice -d shop && break; sleep 0.2; done; \
         PGPASSWORD=pw psql -h 127.0.0.1 -U alice -d shop -tAc 'select current_user || chr(47) || current_database()'; \
         PGPASSWORD=wrong psql -h 127.0.0.1 -U alice -d shop -tAc 'select 1' 2>&1 | grep -o 'password authentication failed'; \
         test -s /var/lib/postgresql/data/PG_VERSION && echo data-in-volume-path",
    );
    assert!(out.contains("alice/shop"), "{out}");
    assert!(out.contains("password authentication failed"), "{out}");
    assert!(out.contains("data-in-volume-path"), "{out}");
}

#[test]
fn mariadb_initialises_from_its_environment() {
    let _c = Cleanup;
    let out = run_in(
        "mariadb",
        "(MARIADB_ROOT_PASSWORD=rootpw MARIADB_DATABASE=shop MARIADB_USER=bob MARIADB_PASSWORD=pw docker-entrypoint.sh mariadbd > /tmp/log 2>&1 &); \
         for i in $(seq 200); do mariadb-admin ping -h127.0.0.1 -ubob -ppw --silent 2>/dev/null && break; sleep 0.2; done; \
         mariadb -h127.0.0.1 -ubob -ppw shop -Nse 'select concat(current_user(), chr(47), database())'; \
         mariadb -h127.0.0.1 -uroot -prootpw -Nse 'select concat(chr(114),chr(111),chr(111),chr(116),chr(61),1)'; \
         test -d /var/lib/mysql/shop && echo data-in-volume-path",
    );
    assert!(out.contains("bob@%/shop"), "{out}");
    assert!(out.contains("root=1"), "{out}");
    assert!(out.contains("data-in-volume-path"), "{out}");
}

#[test]
fn redis_runs_with_its_client_beside_it() {
    let _c = Cleanup;
    let out = run_in(
        "redis",
        "(docker-entrypoint.sh redis-server > /tmp/log 2>&1 &); \
         for i in $(seq 100); do redis-cli ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done; \
         redis-cli set greeting hello >/dev/null; echo \"got $(redis-cli get greeting)\"; ps -o user= -C redis-server || stat -c %U /data",
    );
    assert!(out.contains("got hello"), "{out}");
    assert!(out.contains("redis"), "the server dropped to the redis user:\n{out}");
}
