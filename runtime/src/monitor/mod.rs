//! The per-container monitor: a small process (the slipway binary in `runtime monitor`
//! mode, single-threaded) that creates one container and then stays with it, as conmon
//! stays with a Podman container. It is the container init's parent, so it reaps it and
//! keeps its exit code; it holds the container's stdio pipes or console and writes its logs;
//! it starts `exec` processes. The server talks to it over a Unix socket in the container's
//! state directory, so the server can restart without touching running containers: a new
//! server finds the monitors where the old one left them.
//!
//! Protocol: a client sends one JSON [`Request`] line and reads one JSON [`Reply`] line.
//! `attach` and `exec` then turn the connection into a stream of frames, each a kind byte
//! and a big-endian u32 length before the payload.

pub mod client;
pub mod server;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a client sends first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Release the created container's workload.
    Start,
    /// Stream the container's output (and take input); several clients may attach.
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    /// Resize the container's console.
    Resize {
        rows: u16,
        cols: u16,
    },
    /// Run a process in the container and stream it.
    Exec {
        id: String,
        process: Box<oci_spec::runtime::Process>,
    },
    /// Resize an exec'd process's console.
    ExecResize {
        id: String,
        rows: u16,
        cols: u16,
    },
    /// Answer once the container has exited.
    Wait,
    Status,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<Exit>,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply {
            ok: true,
            ..Default::default()
        }
    }
    pub fn error(e: impl ToString) -> Reply {
        Reply {
            ok: false,
            error: Some(e.to_string()),
            ..Default::default()
        }
    }
}

/// How a container (or an exec'd process) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// The exit status, or 128 + the signal that killed it.
    pub code: i32,
    /// Whether the kernel's OOM killer struck in the container's cgroup.
    pub oom_killed: bool,
    /// Unix time in nanoseconds.
    pub finished_at: i128,
}

/// Frame kinds. Monitor to client: STDOUT, STDERR, EXIT (JSON [`Exit`]), ERROR (text).
/// Client to monitor: STDIN, CLOSE_STDIN, RESIZE (rows and columns, u16 each).
pub mod frame {
    pub const STDIN: u8 = 0;
    pub const STDOUT: u8 = 1;
    pub const STDERR: u8 = 2;
    pub const EXIT: u8 = 3;
    pub const ERROR: u8 = 4;
    pub const CLOSE_STDIN: u8 = 5;
    pub const RESIZE: u8 = 6;
    pub const HEADER: usize = 5;

    pub fn encode(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
        out.push(kind);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
    }

    /// Splits the first whole frame off `buf`: (kind, payload, bytes used).
    pub fn decode(buf: &[u8]) -> Option<(u8, &[u8], usize)> {
        if buf.len() < HEADER {
            return None;
        }
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        let end = HEADER + len;
        (buf.len() >= end).then(|| (buf[0], &buf[HEADER..end], end))
    }
}

/// What a monitor is told to run, on its standard input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorConfig {
    pub spec: oci_spec::runtime::Spec,
    pub bundle: PathBuf,
    /// Mount this overlay as the root (at the spec's root.path) instead of binding it.
    #[serde(default)]
    pub overlay: Option<OverlayConfig>,
    /// Keep a pipe to the container's stdin (`docker run -i`).
    #[serde(default)]
    pub open_stdin: bool,
    /// Run a tiny init (tini) as PID 1 in front of the process (`--init`).
    #[serde(default)]
    pub init: bool,
    pub log_path: PathBuf,
    #[serde(default)]
    pub log_max_size: Option<u64>,
    #[serde(default)]
    pub log_max_files: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OverlayConfig {
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
}

/// File names in a container's state directory.
pub const SOCKET: &str = "monitor.sock";
pub const EXIT_FILE: &str = "exit.json";
pub const MONITOR_FILE: &str = "monitor.json";
pub const MONITOR_LOG: &str = "monitor.log";

/// The monitor's own PID, saved so a restarted server can tell whether it still runs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct MonitorProcess {
    pub pid: i32,
    pub start_time: u64,
}
