//! A playground's private network: a network namespace of its own holding a bridge, and
//! one veth per node whose other end is the node's `eth0`.
//!
//! Nothing of it lives in the host's namespace: the host has no address on the bridge and
//! no route to it, so nodes reach each other and nothing else (not the host, not
//! Slipway's ports, not another playground, whose bridge is in another namespace).
//!
//! Links and addresses are set with iproute2's `ip` (and util-linux's `nsenter` for the
//! node's side): a handful of calls per playground, where a netlink client in the server
//! would bring no speed that matters here and more code to keep.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The playground network's prefix, as on Play with Docker (192.168.0.x).
pub const SUBNET: &str = "192.168.0.0/24";

/// Node `n` (1-based) gets 192.168.0.(10 + n).
pub fn node_ip(n: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 0, 10 + n as u8)
}

fn run(args: &[&str]) -> Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {}", args[0]))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The namespace `name` (under /run/netns) with a bridge `br0`, up.
pub fn create(name: &str) -> Result<()> {
    run(&["ip", "netns", "add", name])?;
    let made = (|| {
        run(&["ip", "-n", name, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", name, "link", "set", "br0", "up"])
    })();
    if made.is_err() {
        let _ = remove(name);
    }
    made
}

/// Connects the node whose init is `pid` as `eth0` with address `ip`.
pub fn attach(name: &str, n: usize, pid: i32) -> Result<()> {
    let port = format!("n{n}");
    let pid_s = pid.to_string();
    let ns = format!("--net=/proc/{pid}/ns/net");
    let addr = format!("{}/24", node_ip(n));
    run(&[
        "ip", "-n", name, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &pid_s,
    ])?;
    run(&["ip", "-n", name, "link", "set", &port, "master", "br0", "up"])?;
    run(&["nsenter", &ns, "ip", "addr", "add", &addr, "dev", "eth0"])?;
    run(&["nsenter", &ns, "ip", "link", "set", "eth0", "up"])
}

/// Removes the namespace (and with it the bridge and the nodes' veth ends).
pub fn remove(name: &str) -> Result<()> {
    if !std::path::Path::new("/run/netns").join(name).exists() {
        return Ok(());
    }
    run(&["ip", "netns", "delete", name])
}
