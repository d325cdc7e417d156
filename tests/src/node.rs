//! Playgrounds for the Engine API tests: one lab server per test binary (started on first
//! use, stopped with every playground when the binary exits, failed or not), a playground
//! per test (removed when the test ends, on a panic too), and [`Node`], which runs a bash
//! script in a node through the exec API and reports what it printed.
//!
//! Scripts run under `set -e` with a trap that names the command that failed, inside
//! `timeout`, so a hung client fails the test instead of hanging it.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::lab::LabServer;

/// The lab server shared by a test binary's tests.
static LAB: Mutex<Option<LabServer>> = Mutex::new(None);
/// What tests need of it, copied out so no test holds the lock.
static LAB_INFO: OnceLock<LabInfo> = OnceLock::new();

#[derive(Clone)]
struct LabInfo {
    url: String,
    token: String,
    log: PathBuf,
}

unsafe extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
}

/// Statics are never dropped: this stops the shared server (and removes its playgrounds
/// and cgroups) when the test binary exits.
extern "C" fn stop_lab() {
    if let Ok(mut lab) = LAB.lock() {
        lab.take();
    }
}

fn lab() -> LabInfo {
    LAB_INFO
        .get_or_init(|| {
            // Generous playground limits: compose stacks with redis and nginx, several builds.
            let lab = LabServer::start("memory_mib = 2048\npids = 2048\ndisk_mib = 4096");
            let info = LabInfo {
                url: lab.server.url.clone(),
                token: lab.server.admin_token(),
                log: lab.server.data_dir.path().join("server.log"),
            };
            *LAB.lock().unwrap_or_else(|p| p.into_inner()) = Some(lab);
            // SAFETY: registers a plain function with no arguments; it runs once at exit.
            unsafe { atexit(stop_lab) };
            info
        })
        .clone()
}

/// The end of the shared server's log, for failure messages.
pub fn server_log_tail(lines: usize) -> String {
    let Some(info) = LAB_INFO.get() else {
        return String::new();
    };
    let text = std::fs::read_to_string(&info.log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A playground on the shared lab server, removed on drop.
pub struct Playground {
    pub id: String,
    /// The playground's record as the API returned it.
    pub record: serde_json::Value,
    lab: LabInfo,
    http: reqwest::blocking::Client,
}

impl Playground {
    pub fn new(nodes: usize) -> Playground {
        let lab = lab();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(900))
            .build()
            .expect("http client");
        let r = http
            .post(format!("{}/api/playgrounds", lab.url))
            .bearer_auth(&lab.token)
            .json(&serde_json::json!({ "nodes": nodes }))
            .send()
            .expect("POST /api/playgrounds");
        let status = r.status();
        let text = r.text().unwrap_or_default();
        assert_eq!(
            status.as_u16(),
            201,
            "making a playground: {text}\n{}",
            server_log_tail(30)
        );
        let record: serde_json::Value = serde_json::from_str(&text).expect("a playground record");
        let id = record["id"].as_str().expect("an id").to_string();
        Playground { id, record, lab, http }
    }

    pub fn node(&self, name: &str) -> Node<'_> {
        let info = self.record["nodes"]
            .as_array()
            .and_then(|ns| ns.iter().find(|n| n["name"] == name))
            .unwrap_or_else(|| panic!("no {name} in {}", self.record));
        Node {
            pg: self,
            name: name.to_string(),
            docker_host: info["docker_host"].as_str().unwrap_or_default().to_string(),
        }
    }

    pub fn node1(&self) -> Node<'_> {
        self.node("node1")
    }

    pub fn url(&self) -> &str {
        &self.lab.url
    }

    pub fn token(&self) -> &str {
        &self.lab.token
    }

    pub fn http(&self) -> &reqwest::blocking::Client {
        &self.http
    }
}

impl Drop for Playground {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/api/playgrounds/{}", self.lab.url, self.id))
            .bearer_auth(&self.lab.token)
            .send();
    }
}

/// One node of a playground.
pub struct Node<'a> {
    pg: &'a Playground,
    pub name: String,
    /// `unix:///…/docker.sock`: this node's Engine API on the host.
    pub docker_host: String,
}

/// What a script printed, and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    node: String,
    script: String,
}

/// Prepended to every script `ok` runs: stop at the first failing command and say which
/// it was. (`run` and `fails` leave it out: their scripts' stderr is asserted on.)
const STRICT: &str = r#"set -e
trap 'rc=$?; echo "slipway-test: line $((LINENO - @OFFSET@)): \`$BASH_COMMAND\` exited $rc" >&2' ERR
"#;

/// Prepended to every script: helpers.
const PRELUDE: &str = r#"export LC_ALL=C.UTF-8
# wait_for SECONDS COMMAND...: runs COMMAND every 0.2 s until it succeeds.
wait_for() {
  local deadline=$(( SECONDS + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then echo "slipway-test: timed out waiting for: $*" >&2; return 1; fi
    sleep 0.2
  done
}
# tmux_wait SESSION TEXT [SECONDS]: waits until the pane shows TEXT (tmux trims trailing
# blanks: a prompt is matched without its last space).
tmux_wait() {
  wait_for "${3:-20}" sh -c "tmux capture-pane -p -t '$1' | grep -qF -- '$2'" || { echo "--- pane $1:" >&2; tmux capture-pane -p -t "$1" >&2; return 1; }
}
"#;

impl Node<'_> {
    /// Runs a bash script in the node (as root, in /root), at most 120 s.
    pub fn run(&self, script: &str) -> Run {
        self.run_for(120, script, false)
    }

    /// `strict`: stop at the first failing command, naming it on stderr.
    pub fn run_for(&self, seconds: u32, script: &str, strict: bool) -> Run {
        let prelude = if strict {
            // The trap's line numbers count from the script's first line.
            let lines = STRICT.lines().count() + PRELUDE.lines().count() + 1;
            format!("{}{PRELUDE}", STRICT.replace("@OFFSET@", &lines.to_string()))
        } else {
            PRELUDE.to_string()
        };
        let full = format!("{prelude}\n{script}");
        let r = self
            .pg
            .http
            .post(format!(
                "{}/api/playgrounds/{}/nodes/{}/exec",
                self.pg.lab.url, self.pg.id, self.name
            ))
            .bearer_auth(&self.pg.lab.token)
            .json(&serde_json::json!({
                "cmd": ["timeout", "-k", "5", seconds.to_string(), "bash", "-c", full],
            }))
            .send()
            .unwrap_or_else(|e| panic!("exec in {}: {e}\n{}", self.name, server_log_tail(30)));
        let status = r.status();
        let text = r.text().unwrap_or_default();
        assert_eq!(status.as_u16(), 200, "exec in {}: {text}", self.name);
        let v: serde_json::Value = serde_json::from_str(&text).expect("exec answers JSON");
        Run {
            code: v["exit_code"].as_i64().unwrap_or(-1) as i32,
            stdout: v["stdout"].as_str().unwrap_or_default().to_string(),
            stderr: v["stderr"].as_str().unwrap_or_default().to_string(),
            node: self.name.clone(),
            script: script.to_string(),
        }
    }

    /// Runs a script that must succeed.
    #[track_caller]
    pub fn ok(&self, script: &str) -> Run {
        let run = self.run_for(120, script, true);
        if run.code != 0 {
            panic!("expected success\n{run}\n--- server log (end)\n{}", server_log_tail(20));
        }
        run
    }

    /// Runs a script that must fail; gives what it printed.
    #[track_caller]
    pub fn fails(&self, script: &str) -> Run {
        let run = self.run(script);
        if run.code == 0 {
            panic!("expected a failure\n{run}");
        }
        run
    }

    /// Writes a file in the node (parents made).
    pub fn write(&self, path: &str, content: &str) {
        use std::fmt::Write as _;
        let mut hex = String::with_capacity(content.len() * 4);
        for b in content.bytes() {
            let _ = write!(hex, "\\x{b:02x}");
        }
        self.ok(&format!(
            "mkdir -p \"$(dirname '{path}')\" && printf '%b' '{hex}' > '{path}'"
        ));
    }

    /// The node's Engine API socket on the host (the path in `docker_host`).
    pub fn socket(&self) -> &str {
        self.docker_host.strip_prefix("unix://").unwrap_or(&self.docker_host)
    }
}

impl Run {
    /// Standard output, trimmed.
    pub fn out(&self) -> &str {
        self.stdout.trim()
    }

    pub fn err(&self) -> &str {
        self.stderr.trim()
    }

    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().filter(|l| !l.trim().is_empty()).collect()
    }

    /// Asserts that standard output holds `text`.
    #[track_caller]
    pub fn has(&self, text: &str) -> &Run {
        assert!(self.stdout.contains(text), "stdout lacks {text:?}\n{self}");
        self
    }

    /// Asserts that standard output does not hold `text`.
    #[track_caller]
    pub fn lacks(&self, text: &str) -> &Run {
        assert!(!self.stdout.contains(text), "stdout holds {text:?}\n{self}");
        self
    }

    /// Asserts that standard error holds `text`.
    #[track_caller]
    pub fn err_has(&self, text: &str) -> &Run {
        assert!(self.stderr.contains(text), "stderr lacks {text:?}\n{self}");
        self
    }

    #[track_caller]
    pub fn code_is(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "exit code\n{self}");
        self
    }

    /// Asserts that trimmed standard output is exactly `text`.
    #[track_caller]
    pub fn out_is(&self, text: &str) -> &Run {
        assert_eq!(self.out(), text, "stdout\n{self}");
        self
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let timed_out = if self.code == 124 || self.code == 137 {
            " (124/137: the script's time limit may have run out)"
        } else {
            ""
        };
        write!(
            f,
            "--- script in {} exited {}{timed_out}:\n{}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.node,
            self.code,
            self.script.trim(),
            self.stdout,
            self.stderr
        )
    }
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The host's docker CLI for the second-client tests: `$SLIPWAY_DOCKER_CLI`, else
/// Debian's `/usr/bin/docker` (docker-cli from trixie, installed by scripts/test.sh), else
/// `docker` on the PATH.
pub fn host_docker() -> PathBuf {
    if let Some(p) = std::env::var_os("SLIPWAY_DOCKER_CLI") {
        return PathBuf::from(p);
    }
    let debian = PathBuf::from("/usr/bin/docker");
    if debian.is_file() {
        return debian;
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = PathBuf::from(dir).join("docker");
        if p.is_file() {
            return p;
        }
    }
    panic!("no docker CLI on the host: run scripts/test.sh (it installs Debian's docker-cli)");
}

/// Runs the host's docker CLI against a node's Engine API (`-H docker_host`), at most
/// 120 s: (exit code, stdout, stderr).
pub fn host_docker_run(docker_host: &str, args: &[&str]) -> (i32, String, String) {
    use std::process::{Command, Stdio};
    let mut child = Command::new("timeout")
        .args(["-k", "5", "120"])
        .arg(host_docker())
        .arg("-H")
        .arg(docker_host)
        .args(args)
        .env_remove("DOCKER_CONTEXT")
        .env("DOCKER_CONFIG", std::env::temp_dir().join("slipway-test-docker-config"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the host's docker CLI");
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let _ = so.read_to_string(&mut out);
    err.push_str(&t.join().unwrap_or_default());
    let status = child.wait().expect("docker CLI status");
    (status.code().unwrap_or(-1), out, err)
}
