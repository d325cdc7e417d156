//! Images through the Engine API, with the real docker CLI inside a real node: pull from
//! the offline catalog, list, inspect, history, tag, rmi (and its conflicts), prune, save
//! and load, and `docker build` with the classic builder (.dockerignore, build args, -q,
//! --iidfile, the cache, a failing RUN); another node sees none of it.
//!
//! The catalog comes from `$SLIPWAY_CATALOG_DIR` (built by scripts/test.sh).

use std::process::Command;

use slipway_e2e::lab::LabServer;
use slipway_e2e::slipway_bin;

struct Lab {
    lab: LabServer,
    id: String,
}

impl Lab {
    fn start(nodes: usize) -> Lab {
        let lab = LabServer::start("");
        let out = Command::new(slipway_bin())
            .args(["playground", "--data-dir"])
            .arg(lab.server.data_dir.path())
            .args(["new", "--nodes", &nodes.to_string(), "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "playground new: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            lab.server.log()
        );
        let pg: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        Lab {
            id: pg["id"].as_str().unwrap().to_string(),
            lab,
        }
    }

    /// Runs a shell script in a node: (exit code, stdout and stderr together).
    fn sh(&self, node: &str, script: &str) -> (i32, String) {
        let out = Command::new(slipway_bin())
            .args(["playground", "--data-dir"])
            .arg(self.lab.server.data_dir.path())
            .args(["exec", &self.id, node, "--", "sh", "-c", script])
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Runs a script that must succeed; its output.
    fn ok(&self, node: &str, script: &str) -> String {
        let (code, out) = self.sh(node, script);
        assert_eq!(code, 0, "`{script}` failed:\n{out}\n{}", self.lab.server.log());
        out
    }

    /// Runs a script that must fail; its output.
    fn fails(&self, node: &str, script: &str) -> String {
        let (code, out) = self.sh(node, script);
        assert_ne!(code, 0, "`{script}` should have failed:\n{out}");
        out
    }
}

#[test]
#[ignore = "issue 6 in progress: fails intermittently (an events window cut at a whole second, a `docker build -q` failure); run with --ignored"]
fn pull_list_inspect_tag_remove_prune_save_load() {
    let lab = Lab::start(2);
    // A fresh node has no images.
    assert_eq!(lab.ok("node1", "docker images -q").trim(), "");

    let out = lab.ok("node1", "docker pull busybox");
    assert!(out.contains("latest: Pulling from library/busybox"), "{out}");
    assert!(out.contains(": Pull complete"), "{out}");
    assert!(out.contains("Digest: sha256:"), "{out}");
    assert!(
        out.contains("Status: Downloaded newer image for busybox:latest"),
        "{out}"
    );
    let out = lab.ok("node1", "docker pull busybox");
    assert!(out.contains("Status: Image is up to date for busybox:latest"), "{out}");

    // A tag the catalog lacks: a clear error naming what it has, at once.
    let out = lab.fails("node1", "timeout 20 docker pull busybox:0.0-nope");
    assert!(out.contains("pull access denied for busybox:0.0-nope"), "{out}");
    assert!(out.contains("busybox:latest"), "{out}");

    let out = lab.ok("node1", "docker images --format '{{.Repository}}:{{.Tag}} {{.ID}}'");
    assert!(out.contains("busybox:latest"), "{out}");
    let id = lab
        .ok("node1", "docker inspect --format '{{.Id}}' busybox")
        .trim()
        .to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let out = lab.ok(
        "node1",
        "docker image inspect --format '{{.Os}} {{.GraphDriver.Name}} {{json .RepoTags}} {{len .RootFS.Layers}}' busybox",
    );
    assert!(out.starts_with("linux overlay2 [\"busybox:latest\"] "), "{out}");
    let out = lab.ok("node1", "docker history busybox");
    assert!(out.contains("CREATED BY"), "{out}");
    assert!(out.lines().count() >= 2, "{out}");

    // Tag, list by reference, remove one name, then the conflict of an ID with two names.
    lab.ok("node1", "docker tag busybox me/box:v1");
    let out = lab.ok(
        "node1",
        "docker images --filter reference='me/*' --format '{{.Repository}}:{{.Tag}}'",
    );
    assert_eq!(out.trim(), "me/box:v1");
    let short = &id[7..19];
    let out = lab.fails("node1", &format!("docker rmi {short}"));
    assert!(out.contains("image is referenced in multiple repositories"), "{out}");
    let out = lab.ok("node1", "docker rmi me/box:v1");
    assert!(out.contains("Untagged: me/box:v1"), "{out}");
    assert!(!out.contains("Deleted"), "{out}");

    // Another node sees none of this node's names.
    assert_eq!(lab.ok("node2", "docker images -q").trim(), "");
    let out = lab.fails("node2", "docker inspect busybox");
    assert!(out.contains("No such"), "{out}");

    // Save, remove, load: the names come back.
    lab.ok(
        "node1",
        "docker tag busybox saved:one && docker save -o /tmp/b.tar saved:one busybox",
    );
    let out = lab.ok("node1", "docker rmi saved:one busybox");
    assert!(
        out.contains("Untagged: saved:one") && out.contains("Deleted: sha256:"),
        "{out}"
    );
    assert_eq!(lab.ok("node1", "docker images -q").trim(), "");
    let out = lab.ok("node1", "docker load -i /tmp/b.tar");
    assert!(out.contains("Loaded image: saved:one"), "{out}");
    assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    let out = lab.ok("node1", "docker images --format '{{.Repository}}:{{.Tag}}' | sort");
    assert_eq!(out.trim(), "busybox:latest\nsaved:one");
    // The load went to node1 only.
    assert_eq!(lab.ok("node2", "docker images -q").trim(), "");
    // Save streamed to a pipe, gzipped, loaded back in another node.
    let out = lab.ok(
        "node2",
        "docker pull -q busybox >/dev/null && docker save busybox | gzip > /tmp/b.tgz && docker rmi -f busybox >/dev/null && docker load < /tmp/b.tgz",
    );
    assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    // A pull by digest: a repository digest, not a tag.
    let out = lab.ok(
        "node2",
        "d=$(docker pull busybox | sed -n 's/^Digest: //p') && docker pull busybox@$d >/dev/null && docker inspect --format '{{json .RepoTags}} {{json .RepoDigests}}' busybox@$d && echo $d",
    );
    let digest = out.lines().last().unwrap().trim();
    assert!(digest.starts_with("sha256:"), "{out}");
    assert!(
        out.contains(&format!("[\"busybox:latest\"] [\"busybox@{digest}\"]")),
        "{out}"
    );

    // A name moved away leaves a dangling image; prune removes it, not the named ones.
    lab.ok(
        "node1",
        "docker pull debian:trixie-slim && docker tag debian:trixie-slim moving:x",
    );
    lab.ok("node1", "docker rmi debian:trixie-slim");
    lab.ok("node1", "docker tag busybox moving:x");
    let out = lab.ok("node1", "docker images --filter dangling=true -q");
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    let out = lab.ok("node1", "docker image prune -f");
    assert!(out.contains("deleted: sha256:"), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert_eq!(lab.ok("node1", "docker images --filter dangling=true -q").trim(), "");
    let out = lab.ok("node1", "docker images --format '{{.Repository}}:{{.Tag}}' | sort");
    assert_eq!(out.trim(), "busybox:latest\nmoving:x\nsaved:one");
    // docker import: a filesystem tar as a one-layer image, with --change and --message.
    let out = lab.ok(
        "node1",
        "tar -C /etc -cf /tmp/etc.tar hostname passwd && docker import -c 'CMD [\"sh\"]' -m note /tmp/etc.tar imp:1",
    );
    assert!(out.trim().starts_with("sha256:"), "{out}");
    let out = lab.ok(
        "node1",
        "docker inspect --format '{{json .Config.Cmd}} {{.Comment}} {{len .RootFS.Layers}}' imp:1",
    );
    assert_eq!(out.trim(), "[\"sh\"] note 1");

    // commit of a container the node lacks; image events for docker events.
    let out = lab.fails("node1", "docker commit nope");
    assert!(out.contains("No such container: nope"), "{out}");
    let out = lab.ok(
        "node1",
        "docker events --since 10m --until \"$(date +%s)\" --filter type=image --format '{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}'",
    );
    assert!(out.contains("pull busybox:latest busybox"), "{out}");
    assert!(out.contains("tag sha256:"), "{out}");
    assert!(out.contains("untag sha256:"), "{out}");
    assert!(out.contains("load sha256:"), "{out}");
    assert!(out.contains("import sha256:"), "{out}");

    // `-a` removes every unused image.
    lab.ok("node1", "docker image prune -af");
    assert_eq!(lab.ok("node1", "docker images -q").trim(), "");

    // None of it reached the catalog's own tags.
    let index = std::fs::read_to_string(slipway_e2e::lab::catalog_images().join("index.json")).unwrap();
    for name in ["me/box", "saved:one", "moving:x"] {
        assert!(!index.contains(name), "{name} leaked into the catalog");
    }
}

#[test]
#[ignore = "issue 6 in progress: fails intermittently (an events window cut at a whole second, a `docker build -q` failure); run with --ignored"]
fn build_with_the_classic_builder() {
    let lab = Lab::start(2);
    let setup = r#"set -e
mkdir -p /root/app && cd /root/app
printf 'hello\n' > keep.txt
printf 'secret\n' > secret.txt
mkdir -p logs && printf 'x\n' > logs/a.log
printf 'secret.txt\nlogs\n' > .dockerignore
cat > Dockerfile <<'EOF'
FROM busybox
ARG GREETING=hi
COPY . /app/
RUN echo "$GREETING" > /greeting
CMD ["cat", "/greeting"]
EOF
"#;
    lab.ok("node1", setup);
    let out = lab.ok(
        "node1",
        "cd /root/app && DOCKER_BUILDKIT=0 docker build --build-arg GREETING=bonjour --label lab=yes -t app:v1 .",
    );
    assert!(out.contains("Step 1/"), "{out}");
    assert!(out.contains(": FROM busybox"), "{out}");
    assert!(out.contains("latest: Pulling from library/busybox"), "{out}");
    assert!(out.contains("Successfully built "), "{out}");
    assert!(out.contains("Successfully tagged app:v1"), "{out}");
    // .dockerignore: the excluded files are not in the image.
    let out = lab.ok(
        "node1",
        "docker save app:v1 -o /tmp/app.tar && mkdir -p /tmp/x && tar -xf /tmp/app.tar -C /tmp/x && for l in $(cat /tmp/x/manifest.json | tr ',' '\\n' | grep -o 'blobs/sha256/[0-9a-f]*' | sort -u); do tar -tf /tmp/x/$l 2>/dev/null; done; true",
    );
    assert!(out.contains("app/keep.txt"), "{out}");
    assert!(!out.contains("secret.txt"), "{out}");
    assert!(!out.contains("app/logs"), "{out}");
    let out = lab.ok(
        "node1",
        "docker inspect --format '{{index .Config.Labels \"lab\"}} {{json .Config.Cmd}}' app:v1",
    );
    assert_eq!(out.trim(), "yes [\"cat\",\"/greeting\"]");
    // The build argument reached the RUN step (its history records it, as Docker's does).
    let out = lab.ok("node1", "docker history --no-trunc --format '{{.CreatedBy}}' app:v1");
    assert!(out.contains("|1 GREETING=bonjour /bin/sh -c echo"), "{out}");

    // The same build again: cache hits; -q prints the ID only; --iidfile writes it.
    let out = lab.ok(
        "node1",
        "cd /root/app && DOCKER_BUILDKIT=0 docker build --build-arg GREETING=bonjour --label lab=yes -t app:v1 .",
    );
    assert!(out.contains(" ---> Using cache"), "{out}");
    let quiet = lab.ok(
        "node1",
        "cd /root/app && DOCKER_BUILDKIT=0 docker build -q --build-arg GREETING=bonjour --label lab=yes --iidfile /tmp/iid . 2>/dev/null",
    );
    let iid = lab.ok("node1", "cat /tmp/iid");
    assert!(iid.starts_with("sha256:"), "{iid}");
    assert_eq!(quiet.trim(), iid.trim(), "{quiet}");
    let id = lab.ok("node1", "docker inspect --format '{{.Id}}' app:v1");
    assert_eq!(id.trim(), iid.trim());

    // A failing RUN: Docker's message, a non-zero exit.
    let out = lab.fails(
        "node1",
        "mkdir -p /root/bad && cd /root/bad && printf 'FROM busybox\\nRUN false\\n' > Dockerfile && DOCKER_BUILDKIT=0 docker build .",
    );
    assert!(
        out.contains("The command '/bin/sh -c false' returned a non-zero code: 1"),
        "{out}"
    );
    // A Dockerfile error.
    let out = lab.fails(
        "node1",
        "mkdir -p /root/worse && cd /root/worse && printf 'FROM busybox\\nNOPE x\\n' > Dockerfile && DOCKER_BUILDKIT=0 docker build .",
    );
    assert!(out.to_lowercase().contains("unknown instruction"), "{out}");

    // node2 sees neither the built image nor its cache.
    assert_eq!(lab.ok("node2", "docker images -q").trim(), "");
    lab.ok("node2", setup);
    let out = lab.ok(
        "node2",
        "cd /root/app && DOCKER_BUILDKIT=0 docker build --build-arg GREETING=bonjour --label lab=yes -t app:v1 .",
    );
    assert!(!out.contains("Using cache"), "{out}");

    // FROM an image built earlier in the node.
    let out = lab.ok(
        "node1",
        "mkdir -p /root/child && cd /root/child && printf 'FROM app:v1\\nENV CHILD=1\\n' > Dockerfile && DOCKER_BUILDKIT=0 docker build -t child .",
    );
    assert!(out.contains("Successfully tagged child:latest"), "{out}");

    // A client that goes away cancels the build: its running step is killed. While it
    // runs, the step is inside the playground's cgroup.
    let slow = "mkdir -p /root/slow && cd /root/slow && printf 'FROM busybox\\nRUN sleep 4242\\n' > Dockerfile && timeout 6 docker build --network none . >/dev/null 2>&1";
    std::thread::scope(|scope| {
        let client = scope.spawn(|| lab.sh("node1", slow));
        let pid = (0..60).find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let out = Command::new("pgrep").args(["-f", "^sleep 4242$"]).output().unwrap();
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .next()
                .map(String::from)
        });
        let pid = pid.expect("the RUN step never started");
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        assert!(
            cgroup.contains(&format!("/pg-{}/node1-builds/", lab.id)),
            "the step is not in the playground's cgroup:\n{cgroup}"
        );
        client.join().unwrap();
    });
    let gone = (0..40).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(250));
        !Command::new("pgrep")
            .args(["-f", "^sleep 4242$"])
            .status()
            .unwrap()
            .success()
    });
    assert!(gone, "the build step outlived its client");

    // builder prune: node1's own cache entries, after which the build misses; an `until`
    // in the past keeps them all.
    let out = lab.ok("node1", "docker builder prune -f --filter until=24h");
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert!(!out.contains("Deleted build cache objects"), "{out}");
    let out = lab.ok("node1", "docker builder prune -f");
    assert!(out.contains("Deleted build cache objects"), "{out}");
    assert!(out.contains("Total reclaimed space"), "{out}");
    let out = lab.ok(
        "node1",
        "cd /root/app && DOCKER_BUILDKIT=0 docker build --build-arg GREETING=bonjour --label lab=yes -t app:v1 .",
    );
    assert!(!out.contains("Using cache"), "{out}");
    let index = std::fs::read_to_string(slipway_e2e::lab::catalog_images().join("index.json")).unwrap();
    assert!(
        !index.contains("app:v1") && !index.contains("child:latest"),
        "a build tagged the catalog"
    );
}
