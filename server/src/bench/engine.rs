//! `slipway bench engine`: the Engine API targets, through the real clients inside a real
//! node, on a real `slipway serve` with a throw-away data directory and the catalog's
//! images:
//!
//! 1. **Run**: `docker run --rm busybox true` through the node's docker CLI, N times after
//!    a warm-up, timed in the node by bash (`$EPOCHREALTIME`, no process in between).
//!    Interleaved with the peer, `docker version` through the same CLI and socket: the
//!    client's own start-up plus the ping and one API round trip. No other Docker engine
//!    runs here to compare with, and the CLI's start-up (a Go binary of 40 MB) is a large
//!    fixed part of every command a learner types, so the floor shows how much of the
//!    figure is the engine's: `run − floor` is what create, attach, wait, start, the
//!    container itself and its removal cost.
//! 2. **Compose**: `docker compose up -d` of a three-service stack (busybox httpd, redis,
//!    a busybox worker; a network and a volume) from cached images, then `down`, N times
//!    after a warm-up; each timed alone. The peer is `docker compose ps` of the same
//!    project: compose's start-up, project loading and one list call.
//!
//! Everything made is removed at the end, on errors too: the playground through the API,
//! then the server and its cgroup root.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::stats::Stats;
use crate::playground::NODE_IMAGE;

/// Targets from the issue.
const RUN_TARGET_MS: f64 = 60.0;
const COMPOSE_TARGET_MS: f64 = 1000.0;

pub struct Options {
    /// The catalog directory: its `images/` store must hold slipway/node, busybox, redis.
    pub catalog_dir: PathBuf,
    pub lessons: PathBuf,
    /// Timed `docker run` rounds (after `warmup` untimed ones).
    pub runs: usize,
    pub warmup: usize,
    /// Timed compose up/down rounds (after one untimed).
    pub compose_runs: usize,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    pub client: String,
    pub compose: String,
    pub run_command: String,
    pub run: Stats,
    pub floor_command: String,
    pub floor: Stats,
    /// Median of run over median of the floor.
    pub run_ratio: f64,
    pub run_target_ms: f64,
    pub compose_up_command: String,
    pub compose_up: Stats,
    pub compose_down: Stats,
    pub compose_floor_command: String,
    pub compose_floor: Stats,
    pub compose_ratio: f64,
    pub compose_target_ms: f64,
}

/// The stack of the compose figure: three services, a network, a volume; no healthcheck
/// waits, so `up -d` returns once all three are started, as it would on Docker.
const STACK: &str = r#"services:
  web:
    image: busybox
    command: ["httpd", "-f", "-p", "80", "-h", "/srv"]
    ports: ["8080:80"]
    volumes: [site:/srv]
    depends_on: [cache]
  cache:
    image: redis
  worker:
    image: busybox
    command: ["sleep", "infinity"]
    depends_on: [cache]
volumes:
  site: {}
"#;

/// The timing loop, run in the node: untimed warm-up rounds, then "run <µs>" and
/// "floor <µs>" lines, interleaved so drift hits both alike.
const RUN_LOOP: &str = r#"
set -e
us() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }
for i in $(seq "$WARMUP"); do docker run --rm busybox true; docker version >/dev/null; done
for i in $(seq "$RUNS"); do
  a=$(us); docker run --rm busybox true; b=$(us)
  docker version >/dev/null; c=$(us)
  echo "run $((b - a))"; echo "floor $((c - b))"
done
"#;

const COMPOSE_LOOP: &str = r#"
set -e
us() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }
cd /root/bench
docker compose up -d --quiet-pull >/dev/null 2>&1; docker compose down >/dev/null 2>&1
for i in $(seq "$RUNS"); do
  a=$(us); docker compose up -d >/dev/null 2>&1; b=$(us)
  docker compose ps >/dev/null; c=$(us)
  [ "$(docker compose ps -q | wc -l)" = 3 ] || { echo "not 3 containers up" >&2; docker compose ps -a >&2; exit 1; }
  d=$(us); docker compose down >/dev/null 2>&1; e=$(us)
  echo "up $((b - a))"; echo "floor $((c - b))"; echo "down $((e - d))"
done
"#;

pub fn run(o: &Options) -> Result<Figures> {
    if o.runs == 0 || o.compose_runs == 0 {
        bail!("--runs and --compose-runs must be at least 1");
    }
    let images = super::lab::catalog_images(&o.catalog_dir)?;
    let store = slipway_runtime::image::store::Store::open(&images)?;
    for name in [NODE_IMAGE, "busybox:latest", "redis:latest"] {
        store.resolve(name).with_context(|| {
            format!(
                "{name} is not in {} (slipway images --data-dir {} ensure)",
                images.display(),
                o.catalog_dir.display()
            )
        })?;
    }

    let lab = Lab {
        lab: super::lab::Lab::start(
            "bench-engine",
            &o.lessons,
            &o.catalog_dir,
            "memory_mib = 2048\npids = 2048",
        )?,
        playground: String::new(),
    };
    let pg = lab.lab.create_playground(1)?;
    let lab = Lab {
        playground: pg["id"].as_str().context("no playground id")?.to_string(),
        ..lab
    };

    // Set-up, not measured: the images pulled into the node's engine, the stack written.
    lab.exec(
        &format!(
            "set -e; docker pull -q busybox >/dev/null; docker pull -q redis >/dev/null; mkdir -p /root/bench; cat > /root/bench/compose.yaml <<'EOF'\n{STACK}EOF"
        ),
        &[],
    )
    .context("preparing the node (pulling busybox and redis through its engine)")?;
    let client = lab.exec(
        "docker version --format '{{.Client.Version}} (API {{.Client.APIVersion}})'",
        &[],
    )?;
    let compose = lab.exec("docker compose version --short", &[])?;

    let out = lab
        .exec(
            RUN_LOOP,
            &[("RUNS", &o.runs.to_string()), ("WARMUP", &o.warmup.to_string())],
        )
        .context("timing docker run")?;
    let run = Stats::of(samples(&out, "run"));
    let floor = Stats::of(samples(&out, "floor"));

    let out = lab
        .exec(COMPOSE_LOOP, &[("RUNS", &o.compose_runs.to_string())])
        .context("timing docker compose up -d")?;
    let compose_up = Stats::of(samples(&out, "up"));
    let compose_down = Stats::of(samples(&out, "down"));
    let compose_floor = Stats::of(samples(&out, "floor"));

    let figures = Figures {
        client: format!("docker CLI {}", client.trim()),
        compose: format!("docker compose {}", compose.trim()),
        run_command: "docker run --rm busybox true".into(),
        run_ratio: run.median_ms / floor.median_ms,
        run,
        floor_command: "docker version".into(),
        floor,
        run_target_ms: RUN_TARGET_MS,
        compose_up_command: "docker compose up -d (web, cache, worker; a volume, the default network)".into(),
        compose_ratio: compose_up.median_ms / compose_floor.median_ms,
        compose_up,
        compose_down,
        compose_floor_command: "docker compose ps".into(),
        compose_floor,
        compose_target_ms: COMPOSE_TARGET_MS,
    };
    drop(lab);
    Ok(figures)
}

/// The `<kind> <µs>` lines of a timing loop, in milliseconds.
fn samples(out: &str, kind: &str) -> Vec<f64> {
    out.lines()
        .filter_map(|l| l.strip_prefix(kind)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
        .map(|us| us / 1000.0)
        .collect()
}

/// What the benchmark made, removed when dropped (on errors and panics too).
struct Lab {
    lab: super::lab::Lab,
    playground: String,
}

impl Lab {
    /// Runs a bash script in the playground's node1; its standard output, or an error with
    /// what it printed.
    fn exec(&self, script: &str, env: &[(&str, &str)]) -> Result<String> {
        let id = &self.playground;
        let mut cmd = vec!["env".to_string()];
        cmd.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        cmd.extend(["bash".into(), "-c".into(), script.into()]);
        let r = self
            .lab
            .http
            .post(format!("{}/api/playgrounds/{id}/nodes/node1/exec", self.lab.base))
            .bearer_auth(&self.lab.token)
            .json(&serde_json::json!({ "cmd": cmd }))
            .send()?;
        if !r.status().is_success() {
            bail!("exec: HTTP {}: {}", r.status(), r.text().unwrap_or_default());
        }
        let v: serde_json::Value = r.json()?;
        let code = v["exit_code"].as_i64().unwrap_or(-1);
        let stdout = v["stdout"].as_str().unwrap_or_default().to_string();
        if code != 0 {
            bail!(
                "exited {code} in the node:\n{stdout}{}",
                v["stderr"].as_str().unwrap_or_default()
            );
        }
        Ok(stdout)
    }
}

pub fn print(f: &Figures) {
    println!(
        "Engine API through the real clients in a node: {}, {}",
        f.client, f.compose
    );
    println!();
    Stats::print_header(44);
    let row = |name: &str, s: &Stats| s.print_row(&format!("{name} (n={})", s.samples), 44);
    println!("1. {}", f.run_command);
    row(&f.run_command, &f.run);
    row(&format!("floor: {}", f.floor_command), &f.floor);
    println!(
        "   median {:.1} ms (target at most {:.0} ms: {}); {:.2}× the floor; the engine's share about {:.1} ms",
        f.run.median_ms,
        f.run_target_ms,
        if f.run.median_ms <= f.run_target_ms {
            "met"
        } else {
            "NOT met"
        },
        f.run_ratio,
        f.run.median_ms - f.floor.median_ms
    );
    println!();
    println!("2. {}", f.compose_up_command);
    row("docker compose up -d", &f.compose_up);
    row("docker compose down", &f.compose_down);
    row(&format!("floor: {}", f.compose_floor_command), &f.compose_floor);
    println!(
        "   median {:.0} ms (target at most {:.0} ms: {}); {:.2}× the floor",
        f.compose_up.median_ms,
        f.compose_target_ms,
        if f.compose_up.median_ms <= f.compose_target_ms {
            "met"
        } else {
            "NOT met"
        },
        f.compose_ratio
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_by_kind_in_milliseconds() {
        let out = "run 41000\nfloor 20500\nrun 39000\nrunaway 5\nfloor x\n";
        assert_eq!(samples(out, "run"), [41.0, 39.0]);
        assert_eq!(samples(out, "floor"), [20.5]);
    }
}
