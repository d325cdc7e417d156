//! The embedded DNS server of user-defined networks, as Docker's 127.0.0.11: it answers
//! the names of the containers on the same networks (names, aliases, compose service
//! names, in a new order each time, so replicas share the load), and nothing else.
//!
//! Written by hand: the server needs the question and A answers only, a few dozen bytes
//! of RFC 1035; a DNS library would bring far more than it does.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinHandle;

pub type Resolve = Arc<dyn Fn(&str) -> Option<Vec<Ipv4Addr>> + Send + Sync>;

pub struct DnsServer(JoinHandle<()>);

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// Serves DNS on 127.0.0.11:53 in the network namespace of the process `pid`.
pub fn serve(pid: i32, resolve: Resolve) -> std::io::Result<DnsServer> {
    let ns = PathBuf::from(format!("/proc/{pid}/ns/net"));
    let socket = super::in_netns(&ns, || {
        let s = std::net::UdpSocket::bind(SocketAddr::V4(SocketAddrV4::new(ADDRESS, 53)))?;
        s.set_nonblocking(true)?;
        Ok(s)
    })?;
    let socket = tokio::net::UdpSocket::from_std(socket)?;
    Ok(DnsServer(tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            if let Some(reply) = answer(&buf[..n], &resolve) {
                let _ = socket.send_to(&reply, from).await;
            }
        }
    })))
}

/// The question of a query: (name, type, end of the question section).
fn question(q: &[u8]) -> Option<(String, u16, usize)> {
    if q.len() < 12 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    Some((labels.join("."), qtype, i + 4))
}

const A: u16 = 1;
const PTR: u16 = 12;

pub fn answer(q: &[u8], resolve: &Resolve) -> Option<Vec<u8>> {
    let (name, qtype, end) = question(q)?;
    let found = resolve(&name);
    let mut out = Vec::with_capacity(end + 64);
    out.extend_from_slice(&q[..2]);
    // QR, the query's RD, RA; NXDOMAIN for names we do not know.
    let rd = q[2] & 0x01;
    out.push(0x80 | rd);
    let rcode = if found.is_some() { 0 } else { 3 };
    out.push(0x80 | rcode);
    out.extend_from_slice(&[0, 1]);
    let mut ips = if qtype == A {
        found.clone().unwrap_or_default()
    } else {
        Vec::new()
    };
    if qtype == PTR {
        ips.clear();
    }
    // A new order on every answer: round robin across replicas.
    if ips.len() > 1 {
        let k = rand::random_range(0..ips.len());
        ips.rotate_left(k);
    }
    out.extend_from_slice(&(ips.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&q[12..end]);
    for ip in ips {
        out.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
        out.extend_from_slice(&600u32.to_be_bytes());
        out.extend_from_slice(&[0, 4]);
        out.extend_from_slice(&ip.octets());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q
    }

    #[test]
    fn answers_known_names_and_refuses_others() {
        let resolve: Resolve =
            Arc::new(|n: &str| (n == "web").then(|| vec![Ipv4Addr::new(172, 18, 0, 2), Ipv4Addr::new(172, 18, 0, 3)]));
        let r = answer(&query("WEB", A), &resolve).unwrap();
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[3] & 0x0f, 0);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 2);
        let r = answer(&query("db", A), &resolve).unwrap();
        assert_eq!(r[3] & 0x0f, 3);
        let r = answer(&query("web", 28), &resolve).unwrap();
        assert_eq!((r[3] & 0x0f, u16::from_be_bytes([r[6], r[7]])), (0, 0));
        assert!(answer(&[1, 2, 3], &resolve).is_none());
    }
}
