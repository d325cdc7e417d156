//! Playgrounds, as root inside a node, against the real server and CLI: nodes reach each
//! other by name and nothing else; no host device, no host process, no Slipway port, no
//! other playground; a fork bomb and a memory bomb stay inside the playground's limits
//! while the server keeps answering; the Engine API socket answers; removal leaves
//! nothing behind.
//!
//! The node image comes from the catalog (`$SLIPWAY_CATALOG_DIR`, built by
//! scripts/test.sh).

use std::process::Command;

use slipway_e2e::lab::LabServer;
use slipway_e2e::slipway_bin;

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

    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(slipway_bin())
            .arg("playground")
            .arg("--data-dir")
            .arg(self.server.data_dir.path())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    fn new_playground(&self, nodes: usize) -> serde_json::Value {
        let (code, out, err) = self.cli(&["new", "--nodes", &nodes.to_string(), "--json"]);
        assert_eq!(code, 0, "playground new: {err}\n{}", self.server.log());
        serde_json::from_str(&out).unwrap()
    }

    fn exec(&self, id: &str, node: &str, script: &str) -> (i32, String) {
        let (code, out, err) = self.cli(&["exec", id, node, "--", "sh", "-c", script]);
        (code, format!("{out}{err}"))
    }
}

fn netns_exists(name_part: &str) -> bool {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains(name_part))
}

#[test]
fn nodes_reach_each_other_and_nothing_else() {
    let lab = Lab::start("pids = 512\nmemory_mib = 256");
    let pg = lab.new_playground(2);
    let id = pg["id"].as_str().unwrap().to_string();
    let nodes = pg["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["name"], "node1");
    let socket = nodes[0]["docker_host"]
        .as_str()
        .unwrap()
        .strip_prefix("unix://")
        .unwrap()
        .to_string();
    assert!(std::path::Path::new(&socket).exists(), "{socket}");

    // By name, on the private network.
    let (code, out) = lab.exec(&id, "node1", "ping -c1 -W2 node2 && hostname");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("node1"), "{out}");

    // The Engine API answers on the node's socket, inside and on the host.
    let (code, out) = lab.exec(&id, "node1", "docker version --format '{{.Server.APIVersion}}'");
    assert_eq!(code, 0, "{out}");
    assert!(out.trim().starts_with("1.4"), "{out}");
    let ping = Command::new("curl")
        .args(["-s", "--unix-socket", &socket, "http://d/_ping"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ping.stdout), "OK");

    // No host processes, no host devices.
    let (_, out) = lab.exec(&id, "node1", "ps -e -o comm= | sort -u | tr '\\n' ' '");
    assert!(
        !out.contains("slipway") && !out.contains("systemd"),
        "host processes visible: {out}"
    );
    let (code, out) = lab.exec(&id, "node1", "mount /dev/vda /mnt");
    assert_ne!(code, 0, "mounted a host disk: {out}");
    let (code, out) = lab.exec(&id, "node1", "mknod /tmp/disk b 254 0 && mount /tmp/disk /mnt");
    assert_ne!(code, 0, "made and mounted a device node: {out}");
    let (code, out) = lab.exec(&id, "node1", "head -c 512 /dev/vda 2>/dev/null | wc -c");
    assert!(code != 0 || out.trim() == "0", "read a host disk: {out}");

    // Not Slipway's port (on any host address), not the outside.
    let port = lab.server.url.rsplit(':').next().unwrap().to_string();
    let host_ips = Command::new("hostname").arg("-I").output().unwrap();
    for ip in String::from_utf8_lossy(&host_ips.stdout)
        .split_whitespace()
        .chain(["127.0.0.1"])
    {
        let (code, out) = lab.exec(&id, "node1", &format!("curl -s -m 2 http://{ip}:{port}/healthz"));
        assert_ne!(code, 0, "reached the server at {ip}:{port}: {out}");
    }
    let (code, _) = lab.exec(
        &id,
        "node1",
        "curl -s -m 2 http://192.168.0.1/ || ping -c1 -W1 10.0.2.2",
    );
    assert_ne!(code, 0, "reached past the playground network");

    // Not another playground: its node2 would be 192.168.0.12 on its own network.
    let other = lab.new_playground(1);
    let other_id = other["id"].as_str().unwrap().to_string();
    let (code, out) = lab.exec(&other_id, "node1", "ping -c1 -W1 192.168.0.12");
    assert_ne!(code, 0, "reached another playground: {out}");
    let (code, out) = lab.exec(&other_id, "node1", "getent hosts node2");
    assert_ne!(code, 0, "{out}");

    // Removal leaves no network, no cgroup, no files.
    let dir = lab.server.data_dir.path().join("playgrounds").join(&id);
    assert!(dir.exists() && netns_exists(&id));
    let (code, _, err) = lab.cli(&["rm", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(!dir.exists(), "files left");
    assert!(!netns_exists(&id), "network namespace left");
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        assert!(
            !h.path().join(&lab.cgroup_root).join(format!("pg-{id}")).exists(),
            "cgroup left in {}",
            h.path().display()
        );
    }
    let (code, _, _) = lab.cli(&["exec", &id, "node1", "--", "true"]);
    assert_ne!(code, 0);
}

#[test]
fn bombs_stay_inside_the_playground() {
    let lab = Lab::start("pids = 256\nmemory_mib = 256");
    let pg = lab.new_playground(1);
    let id = pg["id"].as_str().unwrap().to_string();

    // A memory bomb is OOM-killed inside; the node and the server live on.
    let (code, out) = lab.exec(&id, "node1", "head -c 1000m /dev/zero | tail > /dev/null");
    assert_ne!(code, 0, "1000 MiB in a 256 MiB playground: {out}");
    let (code, out) = lab.exec(&id, "node1", "echo still-here");
    assert_eq!((code, out.trim()), (0, "still-here"));
    assert!(lab.server.answers(), "the server stopped answering");

    // A fork bomb meets the pids limit; the server keeps answering meanwhile.
    let (_, out) = lab.exec(
        &id,
        "node1",
        "i=0; while [ $i -lt 600 ]; do sleep 3 & i=$((i+1)); done 2>&1 | grep -c -i -m1 'resource temporarily unavailable\\|cannot fork\\|retry'; echo started $(jobs -p | wc -l)",
    );
    assert!(lab.server.answers(), "the server stopped answering");
    let (_, count) = lab.exec(&id, "node1", "ps -e --no-headers | wc -l");
    let count: usize = count.trim().parse().unwrap_or(9999);
    assert!(count <= 256, "{count} processes in a playground limited to 256: {out}");
    // Once the sleeps end, the node works again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while lab.exec(&id, "node1", "true").0 != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the node did not recover from the fork bomb"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

#[test]
fn learners_reach_only_their_own_playground() {
    let lab = Lab::start("per_learner = 1");
    let alice = lab.server.client();
    let bob = lab.server.client();
    let base = &lab.server.url;
    // Each browser gets an identity on its first page.
    alice.get(format!("{base}/")).send().unwrap();
    bob.get(format!("{base}/")).send().unwrap();
    let r = alice
        .post(format!("{base}/api/playgrounds"))
        .json(&serde_json::json!({"nodes": 1}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", lab.server.log());
    let pg: serde_json::Value = r.json().unwrap();
    let id = pg["id"].as_str().unwrap();
    // A second one is refused with a reason.
    let r = alice
        .post(format!("{base}/api/playgrounds"))
        .json(&serde_json::json!({"nodes": 1}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.text().unwrap().contains("close one first"));
    // Too many nodes is a clear error.
    let r = bob
        .post(format!("{base}/api/playgrounds"))
        .json(&serde_json::json!({"nodes": 9}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    // Bob sees nothing of Alice's.
    assert_eq!(
        bob.get(format!("{base}/api/playgrounds/{id}")).send().unwrap().status(),
        404
    );
    assert_eq!(
        bob.delete(format!("{base}/api/playgrounds/{id}"))
            .send()
            .unwrap()
            .status(),
        404
    );
    let r = bob
        .post(format!("{base}/api/playgrounds/{id}/nodes/node1/exec"))
        .json(&serde_json::json!({"cmd": ["true"]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    let none: serde_json::Value = bob
        .get(format!("{base}/api/playgrounds/mine"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(none.is_null(), "{none}");
    // Alice finds hers again, and closes it.
    let mine: serde_json::Value = alice
        .get(format!("{base}/api/playgrounds/mine"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(mine["id"], id);
    assert_eq!(
        alice
            .delete(format!("{base}/api/playgrounds/{id}"))
            .send()
            .unwrap()
            .status(),
        204
    );
}

#[test]
fn filling_the_disk_gives_enospc_inside_the_playground_only() {
    let lab = Lab::start("disk_mib = 64");
    let full = lab.new_playground(1);
    let full_id = full["id"].as_str().unwrap().to_string();
    let other = lab.new_playground(1);
    let other_id = other["id"].as_str().unwrap().to_string();

    let (code, out) = lab.exec(&full_id, "node1", "dd if=/dev/zero of=/root/fill bs=1M count=100 2>&1");
    assert_ne!(code, 0, "100 MiB fit in a 64 MiB playground: {out}");
    assert!(out.contains("No space left on device"), "{out}");
    // The other playground, and the host's disk, carry on.
    let (code, out) = lab.exec(
        &other_id,
        "node1",
        "dd if=/dev/zero of=/root/ok bs=1M count=20 2>&1 && echo wrote",
    );
    assert_eq!(code, 0, "{out}");
    let probe = lab.server.data_dir.path().join("probe");
    std::fs::write(&probe, vec![0u8; 1 << 20]).expect("the host's disk is not full");
    // Freeing space in the full one works again.
    let (code, out) = lab.exec(
        &full_id,
        "node1",
        "rm /root/fill && echo ok > /root/small && cat /root/small",
    );
    assert_eq!((code, out.trim()), (0, "ok"));

    // Removing it releases the filesystem and its loop device.
    let image = lab
        .server
        .data_dir
        .path()
        .join("playgrounds")
        .join(format!("{full_id}.img"));
    assert!(image.exists());
    let (code, _, err) = lab.cli(&["rm", &full_id]);
    assert_eq!(code, 0, "{err}");
    assert!(!image.exists());
    let loops = Command::new("losetup").arg("-a").output().unwrap();
    assert!(
        !String::from_utf8_lossy(&loops.stdout).contains(&full_id),
        "loop device left"
    );
}
