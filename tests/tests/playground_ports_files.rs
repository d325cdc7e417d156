//! Learners' own web servers and files, against the real server and a real node: a port
//! listened on in a node is listed and proxied (by path and by host name, HTTP and a
//! WebSocket-style upgrade) for its owner only; files go in and out of the node, resolved
//! inside it, so `..`, symlinks and magic links never reach the host's files, and devices
//! and kernel files are refused; oversized files are refused.
//!
//! The node image comes from the catalog (`$SLIPWAY_CATALOG_DIR`, built by
//! scripts/test.sh). The node has no Python and no busybox httpd: its web servers here are
//! bash and netcat.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use slipway_e2e::lab::LabServer;

struct Lab {
    lab: LabServer,
}

impl std::ops::Deref for Lab {
    type Target = LabServer;
    fn deref(&self) -> &LabServer {
        &self.lab
    }
}

impl Lab {
    fn start(limits: &str) -> Lab {
        Lab {
            lab: LabServer::start(limits),
        }
    }

    /// A browser with an identity of its own.
    fn learner(&self) -> Client {
        let c = self.server.client();
        c.get(format!("{}/", self.server.url)).send().unwrap();
        c
    }

    /// A playground of one node owned by `learner`.
    fn playground(&self, learner: &Client) -> String {
        let r = learner
            .post(format!("{}/api/playgrounds", self.server.url))
            .json(&serde_json::json!({"nodes": 1}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201, "{}", self.server.log());
        let pg: serde_json::Value = r.json().unwrap();
        pg["id"].as_str().unwrap().to_string()
    }

    fn exec(&self, learner: &Client, id: &str, script: &str) -> (i64, String) {
        let r = learner
            .post(format!("{}/api/playgrounds/{id}/nodes/node1/exec", self.server.url))
            .json(&serde_json::json!({"cmd": ["bash", "-c", script]}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().unwrap();
        (
            v["exit_code"].as_i64().unwrap(),
            format!("{}{}", v["stdout"].as_str().unwrap(), v["stderr"].as_str().unwrap()),
        )
    }

    fn files_url(&self, id: &str, path: &str) -> String {
        format!("{}/api/playgrounds/{id}/nodes/node1/files?path={path}", self.server.url)
    }
}

/// A web server of bash and netcat, one request at a time, in the background: it answers
/// every request with /srv/index.html and tells the path it was asked for in `X-Path`.
const HTTPD: &str = r#"
mkdir -p /srv && printf 'hello from node1' > /srv/index.html
cat > /usr/local/bin/httpd <<'EOF'
#!/bin/bash
export LC_ALL=C
while true; do
  rm -f /tmp/httpd.fifo && mkfifo /tmp/httpd.fifo
  nc -N -l 8080 < /tmp/httpd.fifo | {
    read -r method path version
    while read -r line && [ "${line%$'\r'}" != "" ]; do :; done
    body=$(cat /srv/index.html)
    printf 'HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\nX-Path: %s\r\nSet-Cookie: slipway_learner=forged; Path=/\r\nSet-Cookie: app=1; Path=/\r\nConnection: close\r\n\r\n%s' "${#body}" "$path" "$body"
  } > /tmp/httpd.fifo
done
EOF
chmod +x /usr/local/bin/httpd
setsid /usr/local/bin/httpd > /dev/null 2>&1 < /dev/null &
"#;

/// The other end of an upgrade: answers 101, then echoes whatever comes.
const ECHO: &str = r#"
cat > /usr/local/bin/echo-ws <<'EOF'
#!/bin/bash
while true; do
  rm -f /tmp/ws.fifo && mkfifo /tmp/ws.fifo
  nc -N -l 127.0.0.1 8081 < /tmp/ws.fifo | {
    while read -r line && [ "${line%$'\r'}" != "" ]; do :; done
    printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'
    cat
  } > /tmp/ws.fifo
done
EOF
chmod +x /usr/local/bin/echo-ws
setsid /usr/local/bin/echo-ws > /dev/null 2>&1 < /dev/null &
"#;

fn listed_ports(client: &Client, url: &str, id: &str) -> serde_json::Value {
    let r = client.get(format!("{url}/api/playgrounds/{id}/ports")).send().unwrap();
    assert_eq!(r.status(), 200);
    r.json().unwrap()
}

fn has_port(list: &serde_json::Value, port: u64) -> bool {
    list.as_array()
        .unwrap()
        .iter()
        .any(|p| p["node"] == "node1" && p["port"] == port)
}

/// Sends a request to a node's server, again while the server is between two connections
/// (the bash servers take one at a time; meanwhile the port refuses, which is a 502).
fn served(request: impl Fn() -> reqwest::blocking::RequestBuilder) -> reqwest::blocking::Response {
    for _ in 0..100 {
        let r = request().send().unwrap();
        if r.status() != 502 {
            return r;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the node's server kept refusing");
}

/// Asks for an upgrade through the proxy on a raw connection; gives the connection once
/// the answer is a 101.
fn upgraded(addr: &str, path: &str, admin: &str) -> std::net::TcpStream {
    for _ in 0..100 {
        let mut ws = std::net::TcpStream::connect(addr).unwrap();
        ws.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        write!(
            ws,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {admin}\r\n"
        )
        .unwrap();
        write!(
            ws,
            "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
        )
        .unwrap();
        let head = read_head(&mut ws);
        if !head.starts_with("HTTP/1.1 502") {
            assert!(head.starts_with("HTTP/1.1 101"), "{head}");
            return ws;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the echo server kept refusing");
}

#[test]
fn ports_are_listed_and_proxied_for_their_owner_only() {
    let lab = Lab::start("");
    let base = lab.server.url.clone();
    let admin = lab.server.admin_token();
    let alice = lab.learner();
    let bob = lab.learner();
    let id = lab.playground(&alice);

    let (code, out) = lab.exec(&alice, &id, &format!("{HTTPD}\n{ECHO}"));
    assert_eq!(code, 0, "{out}");
    let deadline = Instant::now() + Duration::from_secs(15);
    let list = loop {
        let list = listed_ports(&alice, &base, &id);
        if has_port(&list, 8080) && has_port(&list, 8081) {
            break list;
        }
        assert!(Instant::now() < deadline, "the servers never showed up: {list}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let entry = list.as_array().unwrap().iter().find(|p| p["port"] == 8080).unwrap();
    assert_eq!(entry["url"], format!("/pg/{id}/node1/8080/"));
    assert!(
        entry.get("host_url").is_none(),
        "no host-name links under an IP address: {entry}"
    );
    let status = |r: reqwest::blocking::RequestBuilder| r.send().unwrap().status().as_u16();
    assert_eq!(status(bob.get(format!("{base}/api/playgrounds/{id}/ports"))), 404);

    // By path, for the owner: the prefix is stripped, Slipway's cookies stay Slipway's.
    let r = served(|| alice.get(format!("{base}/pg/{id}/node1/8080/")));
    assert_eq!(r.status(), 200, "{}", lab.server.log());
    assert_eq!(r.headers()["x-path"], "/");
    let cookies: Vec<_> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let forged = cookies.iter().any(|c| c.contains("forged"));
    assert!(cookies.iter().any(|c| c.starts_with("app=")) && !forged, "{cookies:?}");
    assert_eq!(r.text().unwrap(), "hello from node1");
    let r = served(|| alice.get(format!("{base}/pg/{id}/node1/8080/deep/page.html?q=1")));
    assert_eq!(r.headers()["x-path"], "/deep/page.html?q=1");
    let r = served(|| alice.get(format!("{base}/pg/{id}/node1/8080")));
    let landed = (r.status().as_u16(), r.url().path().to_string());
    assert_eq!(
        landed,
        (200, format!("/pg/{id}/node1/8080/")),
        "redirected to the slash"
    );
    // Alice is still herself after the app tried to set her identity cookie.
    assert_eq!(status(alice.get(format!("{base}/api/playgrounds/{id}"))), 200);

    // Not for another learner, nor for nobody; for the admin's token.
    assert_eq!(status(bob.get(format!("{base}/pg/{id}/node1/8080/"))), 404);
    assert_eq!(status(Client::new().get(format!("{base}/pg/{id}/node1/8080/"))), 404);
    let r = served(|| {
        Client::new()
            .get(format!("{base}/pg/{id}/node1/8080/"))
            .bearer_auth(&admin)
    });
    assert_eq!(r.status(), 200);
    // Shared, the link opens for anyone (a workshop showing its work); only the owner
    // shares, and unsharing closes it again.
    let share = |who: &Client, on: bool| {
        status(
            who.post(format!("{base}/api/playgrounds/{id}/share"))
                .json(&serde_json::json!({ "shared": on })),
        )
    };
    assert_eq!(share(&bob, true), 404);
    assert_eq!(share(&alice, true), 200);
    assert_eq!(
        served(|| Client::new().get(format!("{base}/pg/{id}/node1/8080/"))).status(),
        200
    );
    assert_eq!(
        status(bob.get(format!("{base}/api/playgrounds/{id}"))),
        404,
        "sharing ports shares nothing else"
    );
    assert_eq!(share(&alice, false), 200);
    assert_eq!(status(Client::new().get(format!("{base}/pg/{id}/node1/8080/"))), 404);
    // A port nothing listens on, a node that does not exist.
    assert_eq!(status(alice.get(format!("{base}/pg/{id}/node1/9/"))), 502);
    assert_eq!(status(alice.get(format!("{base}/pg/{id}/node7/8080/"))), 404);
    // The terminals' route is still the terminals' (a WebSocket route, refusing a plain GET).
    assert_ne!(
        status(alice.get(format!("{base}/pg/{id}/nodes/node1/terminals/1/ws"))),
        404
    );

    // An upgrade goes through, and the bytes both ways.
    let addr = base.strip_prefix("http://").unwrap();
    let mut ws = upgraded(addr, &format!("/pg/{id}/node1/8081/socket"), &admin);
    let frame = b"\x81\x19hello, through the tunnel";
    ws.write_all(frame).unwrap();
    let mut echoed = vec![0u8; frame.len()];
    ws.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, frame);
    drop(ws);

    // By host name: the admin's token works at once; a learner's link carries a token
    // that becomes a cookie of that host.
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let host = format!("{id}-node1-8080.localhost");
    let local: std::net::SocketAddr = addr.parse().unwrap();
    let at = |name: &str, jar: bool| {
        Client::builder()
            .cookie_store(jar)
            .resolve(name, local)
            .build()
            .unwrap()
    };
    let r = served(|| {
        at(&host, false)
            .get(format!("http://{host}:{port}/x"))
            .bearer_auth(&admin)
    });
    assert_eq!(
        (r.status().as_u16(), r.headers()["x-path"].to_str().unwrap()),
        (200, "/x")
    );
    assert_eq!(status(at(&host, false).get(format!("http://{host}:{port}/"))), 404);
    // (Between two connections, the bash server is briefly not listening.)
    let link = (0..100)
        .find_map(|_| {
            let list: serde_json::Value = Client::new()
                .get(format!("{base}/api/playgrounds/{id}/ports"))
                .header("host", format!("localhost:{port}"))
                .bearer_auth(&admin)
                .send()
                .unwrap()
                .json()
                .unwrap();
            let entry = list.as_array().unwrap().iter().find(|p| p["port"] == 8080).cloned();
            if entry.is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            entry
        })
        .expect("port 8080 stays listed")["host_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(link.starts_with(&format!("//{host}:{port}/?slipway_token=")), "{link}");
    let browser = at(&host, true);
    let r = served(|| browser.get(format!("http:{link}")));
    assert_eq!(r.status(), 200);
    assert_eq!(r.url().query(), None, "the token is taken out of the address");
    assert_eq!(r.headers()["x-path"], "/", "and out of what the app sees");
    let r = served(|| browser.get(format!("http://{host}:{port}/again")));
    assert_eq!(r.status(), 200, "the cookie stays");
    // A forged or altered token opens nothing; a cookie of one host opens no other.
    let forged = link.replace("slipway_token=", "slipway_token=0");
    assert_eq!(status(at(&host, true).get(format!("http:{forged}"))), 404);
    let other = format!("{id}-node1-8081.localhost");
    assert_eq!(status(at(&other, true).get(format!("http://{other}:{port}/"))), 404);
}

fn read_head(stream: &mut std::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn files_move_inside_the_node_and_nowhere_else() {
    let lab = Lab::start("upload_mib = 1");
    let alice = lab.learner();
    let bob = lab.learner();
    let id = lab.playground(&alice);

    // Up, then read in the node, then down again.
    let data: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let r = alice
        .put(lab.files_url(&id, "/root/made/here/data.bin"))
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let (code, out) = lab.exec(
        &alice,
        &id,
        "sha256sum /root/made/here/data.bin && stat -c %a /root/made/here/data.bin",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with(&sha256_hex(&data)), "{out}");
    assert!(out.trim_end().ends_with("644"), "{out}");
    let r = alice
        .get(lab.files_url(&id, "/root/made/here/data.bin"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"data.bin\"")
    );
    assert_eq!(r.bytes().unwrap().to_vec(), data);
    // Overwritten in place.
    assert_eq!(
        alice
            .put(lab.files_url(&id, "/root/made/here/data.bin"))
            .body("short")
            .send()
            .unwrap()
            .status(),
        201
    );
    assert_eq!(lab.exec(&alice, &id, "cat /root/made/here/data.bin").1, "short");

    // Not Bob's to read or write.
    assert_eq!(
        bob.get(lab.files_url(&id, "/root/made/here/data.bin"))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        bob.put(lab.files_url(&id, "/root/bob"))
            .body("x")
            .send()
            .unwrap()
            .status(),
        404
    );

    // Ways out of the node lead back into it. The host has a file the node does not.
    let secret = format!("slipway-host-secret-{}", std::process::id());
    let host_secret = std::path::Path::new("/tmp").join(&secret);
    std::fs::write(&host_secret, "the host's").unwrap();
    let _cleanup = Cleanup(vec![
        host_secret.clone(),
        PathBuf::from("/tmp").join(format!("{secret}-written")),
    ]);
    let (code, out) = lab.exec(
        &alice,
        &id,
        "ln -s /etc /link && ln -s / /root/top && ln -s ../../../../../../tmp /root/up && mknod /root/disk b 7 0; \
         echo node-shadow-marker >> /etc/shadow",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        lab.exec(&alice, &id, "[ -b /root/disk ]").0,
        0,
        "mknod did not make a device"
    );
    let node_shadow = lab.exec(&alice, &id, "cat /etc/shadow").1;
    let got = alice.get(lab.files_url(&id, "/link/shadow")).send().unwrap();
    assert_eq!(got.status(), 200);
    let got = got.text().unwrap();
    assert_eq!(got, node_shadow, "the node's /etc/shadow, through its own symlink");
    assert!(got.contains("node-shadow-marker"));
    let got = alice
        .get(lab.files_url(&id, "/../../../../etc/shadow"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(got, node_shadow, "`..` stops at the node's /");
    for path in [
        format!("/link/../../tmp/{secret}"),
        format!("/root/top/tmp/{secret}"),
        format!("/root/up/{secret}"),
        format!("/../../../tmp/{secret}"),
    ] {
        let r = alice.get(lab.files_url(&id, &path)).send().unwrap();
        assert_eq!(r.status(), 404, "{path}: {}", r.text().unwrap());
    }
    // Written through a link to /tmp: the node's /tmp.
    let r = alice
        .put(lab.files_url(&id, &format!("/root/up/{secret}-written")))
        .body("in the node")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(
        !PathBuf::from("/tmp").join(format!("{secret}-written")).exists(),
        "written on the host"
    );
    assert_eq!(
        lab.exec(&alice, &id, &format!("cat /tmp/{secret}-written")).1,
        "in the node"
    );
    // Magic links (a process's root) are not followed; devices and kernel files are refused.
    for path in [
        "/proc/1/root/etc/hostname",
        "/proc/self/root/etc/hostname",
        "/root/disk",
        "/dev/null",
        "/proc/kallsyms",
        "/sys/kernel/notes",
    ] {
        let r = alice.get(lab.files_url(&id, path)).send().unwrap();
        let status = r.status().as_u16();
        assert!(status == 400 || status == 404, "{path}: {status} {}", r.text().unwrap());
    }
    assert_eq!(
        alice
            .put(lab.files_url(&id, "/root/disk"))
            .body("x")
            .send()
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        alice
            .put(lab.files_url(&id, "/proc/sys/kernel/hostname"))
            .body("x")
            .send()
            .unwrap()
            .status(),
        400
    );

    // Bad paths, missing files, too big.
    assert_eq!(
        alice
            .get(lab.files_url(&id, "../../etc/shadow"))
            .send()
            .unwrap()
            .status(),
        400
    );
    assert_eq!(alice.get(lab.files_url(&id, "/root/")).send().unwrap().status(), 400);
    assert_eq!(alice.get(lab.files_url(&id, "/root")).send().unwrap().status(), 400);
    let r = alice.get(lab.files_url(&id, "/root/nothing-here")).send().unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.json::<serde_json::Value>().unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
    let r = alice
        .put(lab.files_url(&id, "/root/big"))
        .body(vec![0u8; (1 << 20) + 1])
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        alice
            .put(lab.files_url(&id, "/root/big"))
            .body(vec![0u8; 1 << 20])
            .send()
            .unwrap()
            .status(),
        201
    );
    lab.exec(&alice, &id, "head -c 2M /dev/zero > /root/bigger");
    assert_eq!(
        alice.get(lab.files_url(&id, "/root/bigger")).send().unwrap().status(),
        413
    );
}

struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}
