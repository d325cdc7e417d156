//! Bridges and veth pairs, with iproute2 in batch mode inside the right namespace.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Runs `ip -batch -` in the network namespace of `pid` (with `-force`, so every line is
/// tried and the failures reported together).
fn ip_batch(pid: i32, lines: &[String], tolerate: &[&str]) -> Result<()> {
    let mut child = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["ip", "-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ip")?;
    child
        .stdin
        .take()
        .context("ip's stdin")?
        .write_all((lines.join("\n") + "\n").as_bytes())?;
    let out = child.wait_with_output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    let real: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !tolerate.iter().any(|t| l.contains(t)) && !l.starts_with("Command failed"))
        .collect();
    if !out.status.success() && !real.is_empty() {
        bail!("ip: {}", real.join("; "));
    }
    Ok(())
}

/// The bridge `name` with `gateway/prefix`, up, in the node (made if missing).
pub fn ensure_bridge(node_pid: i32, name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<()> {
    ip_batch(
        node_pid,
        &[
            format!("link add {name} type bridge"),
            format!("addr add {gateway}/{prefix} dev {name}"),
            format!("link set {name} up"),
        ],
        &["File exists", "Address already assigned"],
    )
}

pub fn remove_bridge(node_pid: i32, name: &str) -> Result<()> {
    ip_batch(node_pid, &[format!("link delete {name}")], &["Cannot find device"])
}

/// One container endpoint: a veth from the node's bridge to `ifname` in the container.
pub struct Endpoint<'a> {
    pub bridge: &'a str,
    pub ifname: &'a str,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub mac: &'a str,
    /// The default route, for the container's first network that has one.
    pub gateway: Option<Ipv4Addr>,
}

/// Connects the container whose init is `pid` (created, waiting for start).
pub fn attach(node_pid: i32, pid: i32, ep: &Endpoint) -> Result<()> {
    let host_end = format!("veth{}", &hex::encode(rand::random::<[u8; 4]>())[..7]);
    ip_batch(
        node_pid,
        &[
            format!("link add {host_end} type veth peer name {} netns {pid}", ep.ifname),
            format!("link set {host_end} master {} up", ep.bridge),
        ],
        &[],
    )?;
    let mut lines = vec![
        format!("link set lo up"),
        format!("link set {} address {}", ep.ifname, ep.mac),
        format!("addr add {}/{} dev {}", ep.ip, ep.prefix, ep.ifname),
        format!("link set {} up", ep.ifname),
    ];
    if let Some(gw) = ep.gateway {
        lines.push(format!("route add default via {gw}"));
    }
    ip_batch(pid, &lines, &["File exists"])
}

/// Takes `ifname` out of a running container (its pair goes with it).
pub fn detach(pid: i32, ifname: &str) -> Result<()> {
    ip_batch(pid, &[format!("link delete {ifname}")], &["Cannot find device"])
}
