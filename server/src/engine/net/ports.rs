//! Published ports: a userland proxy (as docker-proxy is) listening in the node's network
//! namespace, so `curl localhost:8080` in the node and the playground's port links reach
//! the container, with no firewall rules anywhere.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use tokio::task::JoinHandle;

/// A port being proxied; the proxy stops (listener and connections) when dropped.
pub struct Published {
    pub port: u16,
    task: JoinHandle<()>,
}

impl Drop for Published {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("Bind for {ip}:{port} failed: port is already allocated")]
    InUse { ip: Ipv4Addr, port: u16 },
    #[error("publishing {ip}:{port}: {source}")]
    Io {
        ip: Ipv4Addr,
        port: u16,
        source: std::io::Error,
    },
}

/// Listens on `ip:port` (port 0: one the kernel picks) in the node whose init is
/// `node_pid`, and forwards each TCP connection to `target`.
pub fn publish_tcp(node_pid: i32, ip: Ipv4Addr, port: u16, target: SocketAddrV4) -> Result<Published, PublishError> {
    let ns = PathBuf::from(format!("/proc/{node_pid}/ns/net"));
    let addr = SocketAddr::V4(SocketAddrV4::new(ip, port));
    let listener = super::in_netns(&ns, move || {
        let l = std::net::TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        Ok(l)
    })
    .map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            PublishError::InUse { ip, port }
        } else {
            PublishError::Io { ip, port, source: e }
        }
    })?;
    let actual = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| PublishError::Io { ip, port, source: e })?;
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                continue;
            };
            let ns = ns.clone();
            conns.spawn(async move {
                // The container's address is reachable from the node's namespace only.
                let upstream = tokio::task::spawn_blocking(move || {
                    super::in_netns(&ns, move || {
                        let s = std::net::TcpStream::connect_timeout(
                            &SocketAddr::V4(target),
                            std::time::Duration::from_secs(3),
                        )?;
                        s.set_nonblocking(true)?;
                        Ok(s)
                    })
                })
                .await;
                let Ok(Ok(upstream)) = upstream else { return };
                let Ok(mut upstream) = tokio::net::TcpStream::from_std(upstream) else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
            // Reap finished connections so the set does not grow without bound.
            while conns.try_join_next().is_some() {}
        }
    });
    Ok(Published { port: actual, task })
}
