//! The TCP ports a node listens on, and connections to them.
//!
//! A node lives in a network namespace of its own, which the host has no route into (see
//! `network`): Slipway reaches a learner's web server by opening the connection from
//! inside that namespace. Both functions take a descriptor of the node init's `/proc/<pid>`
//! (`Playgrounds::node_proc`), which stays tied to that process.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::fcntl::{OFlag, openat};
use nix::sched::{CloneFlags, setns};
use nix::sys::stat::Mode;

/// How long a connection to a node may take: the peer is on the same machine, so only a
/// full accept queue makes it slow.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The TCP ports in LISTEN state in the node's network namespace, sorted, each once.
pub fn listening(proc: BorrowedFd<'_>) -> Vec<u16> {
    let mut ports: Vec<u16> = listeners(proc).into_iter().map(|(_, port)| port).collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Every listening socket as (local address, port). `/proc/<pid>/net/tcp` shows the table
/// of that process's network namespace, whoever reads it.
fn listeners(proc: BorrowedFd<'_>) -> Vec<(IpAddr, u16)> {
    let mut found = Vec::new();
    for table in ["net/tcp", "net/tcp6"] {
        let Ok(fd) = openat(proc, table, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()) else {
            continue;
        };
        let Ok(text) = io::read_to_string(std::fs::File::from(fd)) else {
            continue;
        };
        found.extend(text.lines().skip(1).filter_map(parse_listener));
    }
    found
}

/// One line of /proc/net/tcp{,6}, if its socket listens:
/// `  0: 0100007F:1F90 00000000:0000 0A ...` (state 0A is LISTEN).
fn parse_listener(line: &str) -> Option<(IpAddr, u16)> {
    let mut fields = line.split_whitespace();
    let local = fields.nth(1)?;
    let state = fields.nth(1)?;
    if state != "0A" {
        return None;
    }
    let (addr, port) = local.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // The address is printed as 32-bit words in the machine's byte order.
    let mut bytes = Vec::with_capacity(16);
    for word in addr.as_bytes().chunks(8) {
        let word = u32::from_str_radix(std::str::from_utf8(word).ok()?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => return None,
    };
    Some((ip, port))
}

/// Where to connect to reach `port`: loopback for a socket on every address or on
/// loopback, else the one address it is bound to (a server bound to the node's own IP).
fn candidates(proc: BorrowedFd<'_>, port: u16) -> Vec<IpAddr> {
    let mut addrs = Vec::new();
    for (ip, _) in listeners(proc).into_iter().filter(|(_, p)| *p == port) {
        let to = match ip {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            // An IPv4 address in a v6 socket's table (::ffff:a.b.c.d).
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
            other => other,
        };
        if !addrs.contains(&to) {
            addrs.push(to);
        }
    }
    let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    if addrs.is_empty() || (addrs.contains(&IpAddr::V6(Ipv6Addr::LOCALHOST)) && !addrs.contains(&v4)) {
        // Nothing listens (yet): try anyway, for a clear "refused". A v6 wildcard socket
        // usually takes IPv4 too, and 127.0.0.1 is what the learner would try.
        addrs.insert(0, v4);
    }
    addrs
}

/// A TCP connection to `port` on the node's loopback (or the address the server is bound
/// to), made inside the node's network namespace.
///
/// setns(2) moves only the calling thread into the namespace, and for good: a tokio
/// worker that did it would open every later socket (of any task) in the node. So a fresh
/// thread enters the namespace, connects, hands the socket back and ends. The socket stays
/// in the namespace it was made in.
pub async fn connect(proc: BorrowedFd<'_>, port: u16) -> io::Result<tokio::net::TcpStream> {
    let netns = openat(proc, "ns/net", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    let addrs = candidates(proc, port);
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("slipway-pg-connect".into())
        .spawn(move || {
            let _ = tx.send(connect_inside(netns, &addrs, port));
        })?;
    let stream = rx
        .await
        .map_err(|_| io::Error::other("the connecting thread ended without a result"))??;
    tokio::net::TcpStream::from_std(stream)
}

/// Runs on its own thread, which it leaves in the node's network namespace.
fn connect_inside(netns: OwnedFd, addrs: &[IpAddr], port: u16) -> io::Result<std::net::TcpStream> {
    setns(netns.as_fd(), CloneFlags::CLONE_NEWNET)?;
    let mut last = io::Error::from(io::ErrorKind::ConnectionRefused);
    for ip in addrs {
        match std::net::TcpStream::connect_timeout(&SocketAddr::new(*ip, port), CONNECT_TIMEOUT) {
            Ok(stream) => {
                stream.set_nonblocking(true)?;
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listeners_from_both_tables() {
        let v4 = "  1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0";
        assert_eq!(parse_listener(v4), Some((IpAddr::V4(Ipv4Addr::LOCALHOST), 8080)));
        let any = "  0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0";
        assert_eq!(parse_listener(any), Some((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 80)));
        let established = "  2: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0";
        assert_eq!(parse_listener(established), None);
        let v6 = "  0: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0";
        if cfg!(target_endian = "little") {
            assert_eq!(parse_listener(v6), Some((IpAddr::V6(Ipv6Addr::LOCALHOST), 8081)));
        }
        assert_eq!(parse_listener("garbage"), None);
    }

    #[test]
    fn lists_this_process_s_own_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let proc = nix::fcntl::open("/proc/self", OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        assert!(listening(proc.as_fd()).contains(&port));
        assert_eq!(candidates(proc.as_fd(), port), vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    }
}
