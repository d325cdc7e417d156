//! The grader against real engine state: every check kind, with a passing case and failing
//! ones, in a real playground changed by the real docker CLI and compose in its node.
//!
//! One lesson has two exercises over the same state: `right`, whose checks all hold once
//! the script ran (and none before it), and `wrong`, whose checks each get one thing wrong
//! (a value, a name, a count) and so must all fail after it. Then the live socket is
//! checked: removing a volume turns its check back, at once and without a reload. Last,
//! `slipway lessons verify` runs over the course's own lessons.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use slipway_e2e::lab::LabServer;

const LESSON: &str = r#"---
title: Every check
summary: The grader's test lesson.
exercises:
  - id: right
    title: Everything holds
    task: Run the script.
    checks:
      - description: image, every field
        image:
          name: app:v1
          built: true
          base: busybox
          labels: {org.example.kind: demo}
          layers: {min: 1, max: 3}
          size_mb: {max: 10}
          user: nobody
          exposes: [5000]
          cmd: [hello]
          entrypoint: [echo]
          env: {GREETING: hi}
          workdir: /srv
      - description: container, every field
        container:
          name: web
          image: nginx
          status: running
          ports: [{container: 80, host: 8080}]
          env: {MODE: prod}
          mounts:
            - {destination: /usr/share/nginx/html, type: bind, source: /root/site, read_only: true}
            - {destination: /cache, type: tmpfs}
            - {destination: /data, volume: notes}
          networks: [frontnet, backnet]
          restart_policy: unless-stopped
          labels: {tier: front}
      - description: exit code
        container: {name: once, status: exited, exit_code: 3}
      - description: health
        container: {name: doc, health: healthy}
      - description: restarts
        container: {name: flaky, restart_policy: on-failure, restart_count: {min: 1}}
      - description: a count of containers
        container: {image: busybox, status: running, count: {min: 4, max: 4}}
      - description: volume and its file
        volume: {name: notes, labels: {team: docs}, file: {path: hello.txt, matches: '^hello\s*$'}}
      - description: network, every field
        network: {name: backnet, driver: bridge, subnet: 172.30.0.0/24, internal: true, containers: [web]}
      - description: network aliases
        network: {name: frontnet, aliases: {web: [www]}}
      - description: compose project
        compose: {project: stack, services: [api, worker], replicas: {api: 1, worker: 2}, healthy: true, networks: [inner], volumes: [data]}
      - description: http
        http: {port: 8080, path: /index.html, status: 200, contains: graded}
      - description: exec in the node
        exec: {command: "docker ps --format '{{.Names}}'", matches: '(?m)^web$'}
      - description: exec in a container
        exec: {container: web, command: cat /usr/share/nginx/html/index.html, contains: graded}
      - description: file, and a file that must not exist
        all_of:
          - file: {path: /root/done.txt, contains: done}
          - file: {path: /root/gone.txt, exists: false}
      - description: a container was removed
        event: {type: container, action: destroy, name: tmp}
      - description: a rebuild reused the cache
        event: {type: build, action: build, name: "app:v2", attributes: {cache_hit: "true"}}
      - description: any_of
        any_of:
          - volume: {name: nope}
          - volume: {name: notes}
      - description: not
        all_of:
          - container: {name: web}
          - not: {container: {name: web, status: exited}}
    solution: |
      true
  - id: wrong
    title: Everything is a little off
    task: Nothing to do.
    checks:
      - {description: built elsewhere, image: {name: "app:v1", built: false}}
      - {description: another base, image: {name: "app:v1", base: nginx}}
      - {description: a label, image: {name: "app:v1", labels: {org.example.kind: other}}}
      - {description: layers, image: {name: "app:v1", layers: {max: 0}}}
      - {description: size, image: {name: "app:v1", size_mb: {max: 0.001}}}
      - {description: user, image: {name: "app:v1", user: root}}
      - {description: exposes, image: {name: "app:v1", exposes: [80]}}
      - {description: cmd, image: {name: "app:v1", cmd: [bye]}}
      - {description: entrypoint, image: {name: "app:v1", entrypoint: [sh]}}
      - {description: env, image: {name: "app:v1", env: {GREETING: bye}}}
      - {description: workdir, image: {name: "app:v1", workdir: /}}
      - {description: no such image, image: {name: "app:v3"}}
      - {description: status, container: {name: web, status: exited}}
      - {description: image, container: {name: web, image: busybox}}
      - {description: host port, container: {name: web, ports: [{container: 80, host: 9090}]}}
      - {description: unpublished, container: {name: web, ports: [{container: 443}]}}
      - {description: env, container: {name: web, env: {MODE: dev}}}
      - {description: writable, container: {name: web, mounts: [{destination: /usr/share/nginx/html, read_only: false}]}}
      - {description: mount type, container: {name: web, mounts: [{destination: /cache, type: volume}]}}
      - {description: no mount, container: {name: web, mounts: [{destination: /elsewhere}]}}
      - {description: network, container: {name: web, networks: [nosuchnet]}}
      - {description: policy, container: {name: web, restart_policy: always}}
      - {description: label, container: {name: web, labels: {tier: back}}}
      - {description: exit code, container: {name: once, exit_code: 0}}
      - {description: running has no exit code, container: {name: web, exit_code: 0}}
      - {description: health, container: {name: doc, health: unhealthy}}
      - {description: no healthcheck, container: {name: web, health: healthy}}
      - {description: restarts, container: {name: flaky, restart_count: {max: 0}}}
      - {description: count, container: {image: busybox, status: running, count: {max: 1}}}
      - {description: no such container, container: {name: nobody}}
      - {description: volume content, volume: {name: notes, file: {path: hello.txt, contains: goodbye}}}
      - {description: volume file, volume: {name: notes, file: {path: missing.txt, contains: x}}}
      - {description: volume label, volume: {name: notes, labels: {team: ops}}}
      - {description: no volume, volume: {name: nope}}
      - {description: subnet, network: {name: backnet, subnet: 10.0.0.0/8}}
      - {description: internal, network: {name: frontnet, internal: true}}
      - {description: driver, network: {name: backnet, driver: host}}
      - {description: attached, network: {name: backnet, containers: [once]}}
      - {description: alias, network: {name: frontnet, aliases: {web: [nope]}}}
      - {description: no network, network: {name: nonet}}
      - {description: replicas, compose: {project: stack, replicas: {worker: 3}}}
      - {description: service, compose: {project: stack, services: [db]}}
      - {description: compose network, compose: {project: stack, networks: [outer]}}
      - {description: compose volume, compose: {project: stack, volumes: [other]}}
      - {description: no project, compose: {project: nope, services: [api]}}
      - {description: http status, http: {port: 8080, path: /index.html, status: 404}}
      - {description: http body, http: {port: 8080, path: /index.html, contains: nope}}
      - {description: http port, http: {port: 9999}}
      - {description: exec code, exec: {command: "true", exit_code: 1}}
      - {description: exec output, exec: {command: "echo yes", matches: "^no"}}
      - {description: exec stopped, exec: {container: once, command: "true"}}
      - {description: file content, file: {path: /root/done.txt, contains: nope}}
      - {description: file exists, file: {path: /root/done.txt, exists: false}}
      - {description: no file, file: {path: /root/gone.txt}}
      - {description: event name, event: {type: container, action: destroy, name: web}}
      - {description: no cache hit, event: {type: build, action: build, name: "app:v1", attributes: {cache_hit: "true"}}}
      - {description: any_of, any_of: [{volume: {name: nope}}, {network: {name: nonet}}]}
      - {description: not, not: {volume: {name: notes}}}
      - {description: all_of, all_of: [{volume: {name: notes}}, {volume: {name: nope}}]}
    solution: |
      true
  - id: small
    title: One volume
    task: Make the volume `tiny`.
    checks:
      - description: The volume `tiny` exists
        volume: {name: tiny}
    hints:
      - The first hint says volume create.
      - text: The second hint is offered once tiny-ish exists.
        when: {volume: {name: tinyish}}
    solution: |
      docker volume create tiny
---
The grader's test lesson.
"#;

/// The state both exercises are graded on, made with the real CLI and compose.
const SCRIPT: &str = r#"
set -e
cd /root
docker volume create --label team=docs notes
docker run --rm -v notes:/data busybox sh -c 'echo hello > /data/hello.txt'
docker network create --subnet 172.30.0.0/24 --internal backnet
docker network create frontnet
mkdir -p site && echo '<h1>graded</h1>' > site/index.html
docker run -d --name web --network frontnet --network-alias www -p 8080:80 -e MODE=prod -l tier=front \
  --restart unless-stopped -v /root/site:/usr/share/nginx/html:ro --tmpfs /cache -v notes:/data nginx
docker network connect backnet web
docker run --name once busybox sh -c 'exit 3' || true
docker run -d --name doc --health-cmd true --health-interval 1s busybox sleep 300
docker run -d --name flaky --restart on-failure:3 busybox sh -c 'exit 1'
mkdir -p app && cat > app/Dockerfile <<'EOF'
FROM busybox
LABEL org.example.kind=demo
ENV GREETING=hi
WORKDIR /srv
EXPOSE 5000
USER nobody
ENTRYPOINT ["echo"]
CMD ["hello"]
EOF
docker build -q -t app:v1 app
docker build -q -t app:v2 app
mkdir -p stack && cat > stack/compose.yaml <<'EOF'
name: stack
services:
  api:
    image: busybox
    command: sleep 300
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
    volumes: [data:/data]
    networks: [inner]
  worker:
    image: busybox
    command: sleep 300
    scale: 2
    networks: [inner]
networks:
  inner: {}
volumes:
  data: {}
EOF
(cd stack && docker compose up -d)
echo done > /root/done.txt
docker run --name tmp busybox true && docker rm tmp
"#;

struct Lab {
    lab: LabServer,
    http: reqwest::blocking::Client,
    token: String,
    pg: String,
    _lessons: tempfile::TempDir,
}

impl Lab {
    fn start() -> Lab {
        let lessons = tempfile::Builder::new()
            .prefix("slipway-test-grading-")
            .tempdir()
            .unwrap();
        let module = lessons.path().join("01-checks");
        std::fs::create_dir_all(&module).unwrap();
        std::fs::write(module.join("module.yaml"), "title: Checks\n").unwrap();
        std::fs::write(module.join("01-every-check.md"), LESSON).unwrap();
        let (code, out, err) = slipway_e2e::run(&["lessons", "lint", "--lessons", lessons.path().to_str().unwrap()]);
        assert_eq!(code, 0, "the test lesson must lint clean:\n{out}{err}");
        let lab = LabServer::start_on(lessons.path(), "memory_mib = 2048");
        let token = lab.server.admin_token();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .unwrap();
        let r: Value = http
            .post(format!("{}/api/playgrounds", lab.server.url))
            .bearer_auth(&token)
            .json(&json!({ "nodes": 1 }))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let pg = r["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no playground: {r}"))
            .to_string();
        Lab {
            lab,
            http,
            token,
            pg,
            _lessons: lessons,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.lab.server.url)
    }

    fn set_up(&self, exercise: &str) {
        let r = self
            .http
            .post(self.url(&format!(
                "/api/playgrounds/{}/exercises/checks/every-check/{exercise}/setup",
                self.pg
            )))
            .bearer_auth(&self.token)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap_or_default());
    }

    fn evaluate(&self, exercise: &str) -> Value {
        self.http
            .get(self.url(&format!(
                "/api/playgrounds/{}/exercises/checks/every-check/{exercise}",
                self.pg
            )))
            .bearer_auth(&self.token)
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    fn exec(&self, script: &str) -> Value {
        self.http
            .post(self.url(&format!("/api/playgrounds/{}/nodes/node1/exec", self.pg)))
            .bearer_auth(&self.token)
            .json(&json!({ "cmd": ["bash", "-c", script] }))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }
}

fn checks(v: &Value) -> Vec<(String, bool, String)> {
    v["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks in {v}"))
        .iter()
        .map(|c| {
            (
                c["description"].as_str().unwrap_or("").to_string(),
                c["passed"] == json!(true),
                c["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn every_check_kind_passes_when_true_and_fails_when_not() {
    let lab = Lab::start();
    lab.set_up("right");
    lab.set_up("wrong");

    // Before anything is there, nothing of `right` holds.
    let before = checks(&lab.evaluate("right"));
    assert_eq!(before.len(), 18);
    for (d, passed, detail) in &before {
        assert!(!passed, "“{d}” passes on an empty node: {detail}");
        assert!(!detail.is_empty(), "“{d}” fails without saying why");
    }

    let out = lab.exec(SCRIPT);
    assert_eq!(out["exit_code"], json!(0), "the script failed: {out}");

    // Health and restarts take a moment; everything must hold within a minute.
    let deadline = Instant::now() + Duration::from_secs(60);
    let right = loop {
        let now = checks(&lab.evaluate("right"));
        if now.iter().all(|(_, p, _)| *p) || Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let failing: Vec<_> = right.iter().filter(|(_, p, _)| !p).collect();
    assert!(failing.is_empty(), "checks that should hold: {failing:#?}");

    let wrong = checks(&lab.evaluate("wrong"));
    let passing: Vec<_> = wrong.iter().filter(|(_, p, _)| *p).collect();
    assert!(passing.is_empty(), "checks that should fail: {passing:#?}");
    // The reasons name what is off, for the learner.
    let why = |d: &str| wrong.iter().find(|(x, ..)| x == d).map(|(.., w)| w.clone()).unwrap();
    assert!(
        why("status").contains("web is running, not exited"),
        "{}",
        why("status")
    );
    assert!(why("host port").contains("9090"), "{}", why("host port"));
    assert!(why("volume content").contains("goodbye"), "{}", why("volume content"));
    assert!(
        why("replicas").contains("2 running replicas, not 3"),
        "{}",
        why("replicas")
    );
    assert!(why("http status").contains("200"), "{}", why("http status"));
    assert!(
        why("no such container").contains("no container named nobody"),
        "{}",
        why("no such container")
    );

    // Undoing the work turns the checks back: the file in the volume goes with it.
    let out = lab.exec("docker rm -f web && docker volume rm notes");
    assert_eq!(out["exit_code"], json!(0), "{out}");
    let after = checks(&lab.evaluate("right"));
    let by = |d: &str| after.iter().find(|(x, ..)| x == d).unwrap().1;
    assert!(!by("volume and its file") && !by("container, every field") && !by("http"));
    assert!(by("image, every field") && by("compose project"));
}

#[test]
fn the_live_socket_follows_the_engine() {
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

    let lab = Lab::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ws_url = lab
        .url(&format!("/learn/checks/every-check/grading?playground={}", lab.pg))
        .replacen("http", "ws", 1);
    rt.block_on(async {
        use futures_util::StreamExt;
        let mut request = ws_url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Authorization", format!("Bearer {}", lab.token).parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("the grading socket");
        let mut next = async || -> Value {
            loop {
                let m = tokio::time::timeout(Duration::from_secs(30), ws.next())
                    .await
                    .expect("a message within 30 s")
                    .expect("the socket open")
                    .expect("a frame");
                if let Message::Text(t) = m {
                    return serde_json::from_str(&t).unwrap();
                }
            }
        };
        // Set up, then the first results of both exercises.
        let mut seen = Vec::new();
        while seen.iter().filter(|m: &&Value| m["type"] == "results").count() < 3 {
            seen.push(next().await);
        }
        assert!(seen.iter().any(|m| m["type"] == "setup" && m["exercise"] == "right" && m["error"].is_null()));
        let volume_check = 6;
        let first = seen.iter().find(|m| m["type"] == "results" && m["exercise"] == "right").unwrap();
        assert_eq!(first["checks"][volume_check]["passed"], json!(false));

        let out = tokio::task::block_in_place(|| lab.exec("docker volume create --label team=docs notes >/dev/null && docker run --rm -v notes:/data busybox sh -c 'echo hello > /data/hello.txt'"));
        assert_eq!(out["exit_code"], json!(0), "{out}");
        let passed = loop {
            let m = next().await;
            if m["type"] == "results" && m["exercise"] == "right" && m["checks"][volume_check]["passed"] == json!(true) {
                break m;
            }
        };
        assert!(passed["event_time"].is_string(), "an engine event led to it: {passed}");
        assert_eq!(passed["complete"], json!(false));

        tokio::task::block_in_place(|| lab.exec("docker volume rm notes"));
        loop {
            let m = next().await;
            if m["type"] == "results"
                && m["exercise"] == "right"
                && m["checks"][volume_check]["passed"] == json!(false)
            {
                let why = m["checks"][volume_check]["detail"].as_str().unwrap();
                assert!(why.contains("no volume named notes"), "{why}");
                break;
            }
        }
    });
}

/// What a learner sees: hints one at a time, the solution on request, the exercise done
/// the moment its check passes (over the page's socket, with the learner's cookie), and
/// all of it on the progress page.
#[test]
fn a_learners_attempt_is_recorded_and_shown() {
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

    let lab = Lab::start();
    let learner = reqwest::blocking::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let page = learner.get(lab.url("/learn/checks/every-check")).send().unwrap();
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("slipway_learner="))
        .expect("a learner cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = page.text().unwrap();
    assert_eq!(
        html.matches(r#"<li class="check""#).count(),
        18 + 59 + 1,
        "every check is listed"
    );
    assert!(
        !html.contains("The first hint says"),
        "hints are not in the page before they are asked for"
    );

    let hint = |n: u64| -> Value {
        let r = learner
            .post(lab.url("/learn/checks/every-check/exercises/small/hint"))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), if n <= 2 { 200 } else { 404 });
        r.json().unwrap()
    };
    let first = hint(1);
    assert_eq!(first["index"], json!(1));
    assert!(
        first["html"].as_str().unwrap().contains("The first hint says"),
        "{first}"
    );
    assert_eq!(hint(2)["remaining"], json!(0));
    assert!(hint(3)["message"].as_str().unwrap().contains("no more hints"));
    let html = learner
        .get(lab.url("/learn/checks/every-check"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(html.contains("The first hint says") && html.contains("The second hint is offered"));

    // The learner's own playground, graded over the page's socket.
    let pg: Value = learner
        .post(lab.url("/api/playgrounds"))
        .json(&json!({ "nodes": 1 }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = pg["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no playground: {pg}"))
        .to_string();
    let ws_url = lab
        .url(&format!("/learn/checks/every-check/grading?playground={id}"))
        .replacen("http", "ws", 1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let done = rt.block_on(async {
        use futures_util::StreamExt;
        let mut request = ws_url.into_client_request().unwrap();
        request.headers_mut().insert("Cookie", cookie.parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the grading socket");
        let mut small = async || -> Value {
            loop {
                let m = tokio::time::timeout(Duration::from_secs(30), ws.next())
                    .await
                    .expect("a message within 30 s")
                    .unwrap()
                    .unwrap();
                if let Message::Text(t) = m {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "results" && v["exercise"] == "small" {
                        return v;
                    }
                }
            }
        };
        let first = small().await;
        assert_eq!(first["complete"], json!(false));
        assert!(first["solution_html"].is_null(), "no solution before it is done");
        let out = tokio::task::block_in_place(|| {
            learner
                .post(lab.url(&format!("/api/playgrounds/{id}/nodes/node1/exec")))
                .json(&json!({ "cmd": ["docker", "volume", "create", "tinyish"] }))
                .send()
                .unwrap()
                .json::<Value>()
                .unwrap()
        });
        assert_eq!(out["exit_code"], json!(0), "{out}");
        // The conditional hint is offered while its condition holds.
        let offered = small().await;
        assert_eq!(offered["offered_hint"], json!(2), "{offered}");
        tokio::task::block_in_place(|| {
            learner
                .post(lab.url(&format!("/api/playgrounds/{id}/nodes/node1/exec")))
                .json(&json!({ "cmd": ["docker", "volume", "create", "tiny"] }))
                .send()
                .unwrap()
        });
        small().await
    });
    assert_eq!(done["complete"], json!(true), "{done}");
    assert!(
        done["solution_html"]
            .as_str()
            .unwrap()
            .contains("docker volume create tiny")
    );

    let solution: Value = learner
        .post(lab.url("/learn/checks/every-check/exercises/small/solution"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(solution["html"].as_str().unwrap().contains("docker volume create tiny"));

    // The completion is written when the result is sent; the page reads the database.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let progress = learner.get(lab.url("/progress")).send().unwrap().text().unwrap();
        let row = progress
            .split("<tr ")
            .find(|r| r.contains("One volume"))
            .unwrap_or_else(|| panic!("no row for the exercise:\n{progress}"))
            .to_string();
        if row.contains(r#"data-status="done""#) {
            assert!(row.contains("2 of 2") && row.contains("Viewed"), "{row}");
            assert!(progress.contains("1 of 3 exercises done"), "{progress}");
            break;
        }
        assert!(Instant::now() < deadline, "the exercise is not shown as done:\n{row}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = learner
        .delete(lab.url(&format!("/api/playgrounds/{id}")))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
}
