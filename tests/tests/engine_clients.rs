//! The Engine API from the host through two other clients, so it is not tuned to the
//! docker CLI inside the node: docker-py (from PyPI, in the venv scripts/test.sh makes;
//! tests/engine_py/check.py) and the host's own docker CLI (Debian's docker-cli), both
//! pointed at a node's `docker_host`.

use std::path::PathBuf;
use std::process::Command;

use slipway_e2e::node::{Playground, host_docker, host_docker_run, server_log_tail};
use slipway_e2e::repo;

/// The venv's Python: `$SLIPWAY_ENGINE_VENV/bin/python` (scripts/test.sh makes it).
fn python() -> PathBuf {
    let venv = std::env::var_os("SLIPWAY_ENGINE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/slipway/engine-venv"));
    let py = venv.join("bin/python");
    assert!(
        py.is_file(),
        "no docker-py venv at {}: run scripts/test.sh (or python3 -m venv {0} && {0}/bin/pip install docker)",
        venv.display()
    );
    py
}

/// Runs one section of check.py against a fresh one-node playground.
fn docker_py(section: &str) {
    let pg = Playground::new(1);
    let node = pg.node1();
    let out = Command::new("timeout")
        .args(["-k", "5", "300"])
        .arg(python())
        .arg(repo().join("tests/engine_py/check.py"))
        .arg(section)
        .env("DOCKER_HOST", &node.docker_host)
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .output()
        .expect("running python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(&format!("ok {section}")),
        "docker-py section {section} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server log (end)\n{}",
        out.status,
        server_log_tail(20)
    );
}

#[test]
fn docker_py_version_and_info() {
    docker_py("version");
}

#[test]
fn docker_py_containers_logs_wait() {
    docker_py("containers");
}

#[test]
fn docker_py_exec_with_exit_codes() {
    docker_py("exec");
}

#[test]
fn docker_py_attach() {
    docker_py("attach");
}

#[test]
fn docker_py_volumes() {
    docker_py("volumes");
}

#[test]
fn docker_py_networks() {
    docker_py("networks");
}

#[test]
fn docker_py_images() {
    docker_py("images");
}

#[test]
fn docker_py_events() {
    docker_py("events");
}

/// The host's docker CLI with `-H docker_host`, asserting success.
#[track_caller]
fn host_ok(docker_host: &str, args: &[&str]) -> String {
    let (code, out, err) = host_docker_run(docker_host, args);
    assert_eq!(
        code,
        0,
        "{} -H {docker_host} {}\n--- stdout\n{out}\n--- stderr\n{err}\n--- server log (end)\n{}",
        host_docker().display(),
        args.join(" "),
        server_log_tail(20)
    );
    out
}

#[test]
fn host_docker_cli_against_a_node() {
    let pg = Playground::new(1);
    let node = pg.node1();
    let h = node.docker_host.as_str();
    let v = host_ok(h, &["version", "--format", "{{.Server.Os}} {{.Server.APIVersion}}"]);
    assert!(v.trim().starts_with("linux 1."), "{v}");
    // The CLI must not need to downgrade: the server's API is at least what it asks for,
    // or it negotiates down without complaint.
    let (code, _, err) = host_docker_run(h, &["info"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("ERROR"), "{err}");

    // run, logs, ps, inspect, exec, cp, stop, rm.
    let out = host_ok(h, &["run", "--rm", "busybox", "echo", "from-host"]);
    assert_eq!(out.trim(), "from-host");
    let id = host_ok(
        h,
        &[
            "run",
            "-d",
            "--name",
            "hosted",
            "-l",
            "via=host",
            "busybox",
            "sh",
            "-c",
            "echo logged; sleep 300",
        ],
    );
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    let ps = host_ok(h, &["ps", "--filter", "label=via=host", "--format", "{{.Names}}"]);
    assert_eq!(ps.trim(), "hosted");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while host_ok(h, &["logs", "hosted"]).trim() != "logged" {
        assert!(std::time::Instant::now() < deadline, "no log line");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (code, _, _) = host_docker_run(h, &["exec", "hosted", "sh", "-c", "exit 6"]);
    assert_eq!(code, 6);
    assert_eq!(host_ok(h, &["exec", "hosted", "hostname"]).trim(), &id[..12]);
    // cp both ways through the host's filesystem.
    let dir = tempfile::Builder::new().prefix("slipway-test-cp-").tempdir().unwrap();
    let file = dir.path().join("up.txt");
    std::fs::write(&file, "up from the host\n").unwrap();
    host_ok(h, &["cp", file.to_str().unwrap(), "hosted:/tmp/up.txt"]);
    assert_eq!(
        host_ok(h, &["exec", "hosted", "cat", "/tmp/up.txt"]),
        "up from the host\n"
    );
    let back = dir.path().join("back.txt");
    host_ok(h, &["cp", "hosted:/tmp/up.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "up from the host\n");
    // The container is the node's: the node's own CLI sees it.
    node.ok("docker ps --format '{{.Names}}'").out_is("hosted");

    // Volumes and networks.
    host_ok(h, &["volume", "create", "hostvol"]);
    host_ok(
        h,
        &[
            "run",
            "--rm",
            "-v",
            "hostvol:/d",
            "busybox",
            "sh",
            "-c",
            "echo kept > /d/f",
        ],
    );
    assert_eq!(
        host_ok(h, &["run", "--rm", "-v", "hostvol:/d", "busybox", "cat", "/d/f"]).trim(),
        "kept"
    );
    host_ok(h, &["network", "create", "hostnet"]);
    host_ok(h, &["network", "connect", "--alias", "hz", "hostnet", "hosted"]);
    host_ok(
        h,
        &[
            "run",
            "--rm",
            "--network",
            "hostnet",
            "busybox",
            "ping",
            "-c1",
            "-W2",
            "hz",
        ],
    );

    // Errors as Docker's.
    let (code, _, err) = host_docker_run(h, &["rm", "nosuch"]);
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "Error response from daemon: No such container: nosuch");
    let (code, _, err) = host_docker_run(h, &["run", "--name", "hosted", "busybox", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("Conflict. The container name \"/hosted\" is already in use"),
        "{err}"
    );

    host_ok(h, &["stop", "-t", "1", "hosted"]);
    host_ok(h, &["rm", "-f", "hosted"]);
    host_ok(h, &["network", "rm", "hostnet"]);
    host_ok(h, &["volume", "rm", "hostvol"]);
    assert_eq!(host_ok(h, &["ps", "-aq"]).trim(), "");
}
