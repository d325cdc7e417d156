//! Helpers for the end-to-end tests: find the real `slipway` binary, run it as a server
//! against a throw-away data directory, and talk to it over HTTP.

pub mod bundle;
pub mod lab;
pub mod node;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository's root directory.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `slipway` binary under test: `$SLIPWAY_BIN`, or the one cargo built beside this test.
pub fn slipway_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SLIPWAY_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test> -> target/<profile>/slipway
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let bin = profile_dir.join("slipway");
    assert!(
        bin.is_file(),
        "{} does not exist: build it first (cargo build --workspace), or set SLIPWAY_BIN",
        bin.display()
    );
    // `cargo test` rebuilds the library these tests link, not the binary they run: a stale
    // binary would test old code.
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .expect("binary mtime");
    if let Some(newer) = newest_source_after(built) {
        panic!(
            "{} is older than {}: run `cargo build --workspace` first",
            bin.display(),
            newer.display()
        );
    }
    bin
}

fn newest_source_after(time: std::time::SystemTime) -> Option<PathBuf> {
    let mut stack: Vec<PathBuf> = ["server/src", "runtime/src", "web/templates", "web/static", "migrations"]
        .iter()
        .map(|d| repo().join(d))
        .collect();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.modified().is_ok_and(|m| m > time) {
                return Some(path);
            }
        }
    }
    None
}

/// Runs `slipway` with arguments and returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(slipway_bin())
        .args(args)
        .output()
        .expect("running slipway");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `slipway serve` process on a free port with its own data directory; killed on drop.
pub struct Server {
    child: Child,
    pub url: String,
    pub data_dir: tempfile::TempDir,
    log: PathBuf,
}

impl Server {
    pub fn start(lessons: &Path) -> Server {
        Self::start_with(lessons, &[])
    }

    pub fn start_with(lessons: &Path, env: &[(&str, &str)]) -> Server {
        let data_dir = tempfile::Builder::new()
            .prefix("slipway-test-")
            .tempdir()
            .expect("temp dir");
        let log = data_dir.path().join("server.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(slipway_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path())
            .arg("--lessons")
            .arg(lessons)
            .env("SLIPWAY_LOG", "info")
            // No catalog build unless a test asks for one, and build cgroups of the tests' own.
            .env("SLIPWAY_CATALOG", "none")
            .env("SLIPWAY_CGROUP_ROOT", "slipway-test-server")
            .stdout(Stdio::null())
            .stderr(log_file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("starting slipway serve");
        let mut server = Server {
            child,
            url: String::new(),
            data_dir,
            log,
        };
        server.url = server.wait_for_address();
        server
    }

    fn wait_for_address(&mut self) -> String {
        let info = self.data_dir.path().join("server.json");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("server status") {
                panic!("slipway serve exited with {status}:\n{}", self.log());
            }
            if let Ok(text) = std::fs::read_to_string(&info)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                && let Some(url) = v["url"].as_str()
            {
                return url.to_string();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("slipway serve did not start within 30 s:\n{}", self.log());
    }

    /// Whether the server answers its health check.
    pub fn answers(&self) -> bool {
        reqwest::blocking::get(format!("{}/healthz", self.url)).is_ok_and(|r| r.status().is_success())
    }

    /// The admin token the server wrote beside its address.
    pub fn admin_token(&self) -> String {
        let text = std::fs::read_to_string(self.data_dir.path().join("server.json")).expect("server.json");
        let v: serde_json::Value = serde_json::from_str(&text).expect("server.json is JSON");
        v["admin_token"].as_str().expect("an admin token").to_string()
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().map(|s| s.is_none()).unwrap_or(false)
    }

    pub fn client(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .expect("http client")
    }
}

impl Server {
    /// Removes every playground the server has (they outlive their server by design; a
    /// test's must not outlive the test, even a failed one).
    pub fn remove_playgrounds(&self) {
        if let Ok(text) = std::fs::read_to_string(self.data_dir.path().join("server.json"))
            && let Ok(info) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(token) = info["admin_token"].as_str()
        {
            let client = reqwest::blocking::Client::new();
            let list = client
                .get(format!("{}/api/playgrounds", self.url))
                .bearer_auth(token)
                .send();
            if let Ok(Ok(serde_json::Value::Array(all))) = list.map(|r| r.json::<serde_json::Value>()) {
                for p in all {
                    let id = p["id"].as_str().unwrap_or_default();
                    let _ = client
                        .delete(format!("{}/api/playgrounds/{id}", self.url))
                        .bearer_auth(token)
                        .send();
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.remove_playgrounds();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every `href` in a page that starts with `prefix`, in order.
pub fn links(html: &str, prefix: &str) -> Vec<String> {
    let needle = format!("href=\"{prefix}");
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(&needle) {
        let start = i + "href=\"".len();
        let end = rest[start..].find('"').map(|e| start + e).unwrap_or(rest.len());
        found.push(rest[start..end].to_string());
        rest = &rest[end..];
    }
    found
}

/// The course notes in the shared folder beside the repository, if this machine has them.
pub fn course_notes() -> Option<PathBuf> {
    let dir = std::env::var_os("SLIPWAY_COURSE_NOTES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/course-notes"));
    dir.is_dir().then_some(dir)
}
