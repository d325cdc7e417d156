//! `slipway bench`: the speed targets, measured against a peer in the same run.

pub mod engine;
pub mod grading;
pub mod images;
pub mod lab;
pub mod playground;
pub mod runtime;
pub mod site;
pub mod stats;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A `slipway serve` child process with a throw-away data directory.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    data_dir: PathBuf,
}

impl ServerProcess {
    /// Starts this very binary as a server, so the figures are those of a real deployment.
    pub fn start(lessons: &Path) -> Result<ServerProcess> {
        Self::start_with_env(lessons, &[])
    }

    /// As [`ServerProcess::start`], with more environment variables for the server (which
    /// may override the defaults set here).
    pub fn start_with_env(lessons: &Path, env: &[(&str, &str)]) -> Result<ServerProcess> {
        Self::spawn(lessons, env, false)
    }

    /// As [`ServerProcess::start_with_env`], in a process group of its own, so that a
    /// Ctrl-C in the terminal reaches only the benchmark, which can then still clean up
    /// through the server before it stops it. The caller must handle SIGINT.
    pub fn start_in_own_group(lessons: &Path, env: &[(&str, &str)]) -> Result<ServerProcess> {
        Self::spawn(lessons, env, true)
    }

    fn spawn(lessons: &Path, env: &[(&str, &str)], own_group: bool) -> Result<ServerProcess> {
        use std::os::unix::process::CommandExt;
        let data_dir = std::env::temp_dir().join(format!("slipway-bench-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&data_dir)?;
        let mut command = Command::new(std::env::current_exe()?);
        if own_group {
            command.process_group(0);
        }
        let child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .arg("--lessons")
            .arg(lessons)
            .env("SLIPWAY_LOG", "warn")
            .env("SLIPWAY_CATALOG", "none")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting slipway serve")?;
        let mut server = ServerProcess {
            child,
            addr: "127.0.0.1:0".parse()?,
            data_dir,
        };
        let info = server.data_dir.join("server.json");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&info)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                && let Some(url) = v["url"].as_str()
            {
                server.addr = url.trim_start_matches("http://").parse()?;
                return Ok(server);
            }
            if server.child.try_wait()?.is_some() {
                bail!("slipway serve exited before serving");
            }
            if Instant::now() > deadline {
                bail!("slipway serve did not start within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl ServerProcess {
    /// The server's throw-away data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server wrote to `<data-dir>/server.json` (its URL and the admin token).
    pub fn info(&self) -> Result<serde_json::Value> {
        let text = std::fs::read_to_string(self.data_dir.join("server.json"))?;
        Ok(serde_json::from_str(&text)?)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A plain HTTP/1.1 GET for the benchmarks' set-up steps (not what is measured): returns
/// the response head and body.
pub fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<(String, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    Ok((head, raw[split + 4..].to_vec()))
}

/// The first value of a header in a response head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub fn require_tool(name: &str, package: &str) -> Result<PathBuf> {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
    {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("`{name}` is not installed: apt-get install {package}")
}
