//! The Engine API conformance walk: the real docker CLI 26 and docker compose 2.26 inside a
//! real node, running the course's commands (syllabus §2 and §4, nothing that needs Docker
//! Hub or the internet) and checking what real dockerd would print and do: outputs, exit
//! codes, error messages, and the effects seen from the node and from other containers.
//!
//! Each test has a playground of its own (so `docker ps -a` counts are its own); the lab
//! server is shared by the file. Images come from the offline catalog
//! (`$SLIPWAY_CATALOG_DIR`, built by scripts/test.sh), pulled on first use as on Docker.

use slipway_e2e::node::{Playground, host_docker_run};

/// A 64-hex-digit ID, alone on its line.
fn is_full_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

// ---------------------------------------------------------------------------------------
// System: version, info, df, prune, events
// ---------------------------------------------------------------------------------------

#[test]
fn version_and_info() {
    let pg = Playground::new(1);
    let n = pg.node1();
    let v = n.ok("docker version");
    v.has("Client:").has("Server:").has("Engine:").has("API version:");
    // The client must not fall back to an old API: it negotiates what the server says.
    v.lacks("downgraded");
    n.ok("docker version --format '{{.Server.Os}}/{{.Server.Arch}}'")
        .out_is("linux/amd64");
    let api = n.ok("docker version --format '{{.Server.APIVersion}} {{.Server.MinAPIVersion}}'");
    let (max, min) = api.out().split_once(' ').expect("two versions");
    assert!(max.starts_with("1.") && min.starts_with("1."), "{api}");
    n.ok("docker version --format '{{.Client.Version}}'").has("26.");

    n.ok("docker run -d --name keep busybox sleep 300 && docker run --name gone busybox true");
    // Counts and names as `docker info` reports them on the node's engine.
    n.ok("docker info --format '{{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}} {{.OSType}} {{.Name}}'")
        .out_is("2 1 1 linux node1");
    let info = n.ok("docker info");
    info.has("Containers: 2")
        .has(" Running: 1")
        .has(" Stopped: 1")
        .has("Images: ")
        .has("Server Version: ")
        .has("Storage Driver: ")
        .has("Logging Driver: json-file")
        .has("Cgroup Driver: ")
        .has("Operating System: ")
        .has("CPUs: ")
        .has("Total Memory: ")
        .has("Docker Root Dir: /var/lib/docker");
    assert!(!info.stderr.contains("ERROR"), "{info}");
    n.ok("docker info --format '{{json .}}' | jq -e '.Plugins.Volume | index(\"local\")'");
    n.ok("docker info --format '{{json .}}' | jq -e '.Plugins.Network | index(\"bridge\")'");
}

#[test]
fn system_df_prune_and_events() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok(r#"
docker run -d --name running busybox sleep 300
docker run --name stopped busybox true
docker network create unused-net
docker volume create keep-vol
mkdir -p /root/dang && cd /root/dang
printf 'FROM busybox\nRUN echo one > /f\n' > Dockerfile && docker build -q -t dang:1 . >/dev/null
printf 'FROM busybox\nRUN echo two > /f\n' > Dockerfile && docker build -q -t dang:1 . >/dev/null
"#);
    let df = n.ok("docker system df");
    assert!(
        df.lines()[0].split_whitespace().collect::<Vec<_>>() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        "{df}"
    );
    df.has("Images")
        .has("Containers")
        .has("Local Volumes")
        .has("Build Cache");
    n.ok("docker system df --format '{{.Type}} {{.TotalCount}}' | grep -x 'Containers 2'");

    // The CLI calls the container, network, image and build-cache prune endpoints; volumes
    // are kept without --volumes; the running container and its image stay.
    let prune = n.ok("docker system prune -f");
    prune
        .has("Deleted Containers:")
        .has("Deleted Networks:")
        .has("unused-net")
        .has("Total reclaimed space:");
    n.ok("docker ps -a --format '{{.Names}}'").out_is("running");
    n.ok("docker network ls --format '{{.Name}}' | sort | tr '\\n' ' '")
        .out_is("bridge host none");
    n.ok("docker volume ls -q").out_is("keep-vol");
    n.ok("docker images --filter dangling=true -q").out_is("");
    n.ok("docker images --format '{{.Repository}}:{{.Tag}}' | grep -x dang:1");

    // Events between two instants: the stream ends at --until; filters apply.
    let ev = n.ok(r#"
sleep 1
since=$(date +%s)
docker run --rm --name ev1 busybox true
docker network create ev-net >/dev/null
docker volume create ev-vol >/dev/null
sleep 1
until=$(date +%s)
echo "--- container"
docker events --since "$since" --until "$until" --filter container=ev1 --format '{{.Type}} {{.Action}} {{.Actor.Attributes.name}}'
echo "--- network"
docker events --since "$since" --until "$until" --filter type=network --filter event=create --format '{{.Actor.Attributes.name}}'
echo "--- volume"
docker events --since "$since" --until "$until" --filter type=volume --format '{{.Action}} {{.Actor.ID}}'
echo "--- die json"
docker events --since "$since" --until "$until" --filter event=die --format '{{json .}}'
"#);
    let text = ev.stdout.clone();
    let section = |name: &str| -> Vec<String> {
        text.split(&format!("--- {name}\n"))
            .nth(1)
            .unwrap_or("")
            .split("\n---")
            .next()
            .unwrap_or("")
            .lines()
            .map(str::to_string)
            .collect()
    };
    let container = section("container");
    // docker run --rm: create, attach, start, die, destroy, in this order.
    let order: Vec<&str> = ["create", "attach", "start", "die", "destroy"]
        .into_iter()
        .filter(|a| container.iter().any(|l| l == &format!("container {a} ev1")))
        .collect();
    assert_eq!(order, ["create", "attach", "start", "die", "destroy"], "{ev}");
    let positions: Vec<usize> = order
        .iter()
        .map(|a| {
            container
                .iter()
                .position(|l| l == &format!("container {a} ev1"))
                .unwrap()
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "events out of order\n{ev}");
    assert_eq!(section("network"), ["ev-net"], "{ev}");
    assert!(section("volume").iter().any(|l| l == "create ev-vol"), "{ev}");
    // Both the current and the legacy fields (compose v1 and docker-py read the legacy ones).
    let die = section("die json");
    assert_eq!(die.len(), 1, "{ev}");
    let die: serde_json::Value = serde_json::from_str(&die[0]).expect("JSON event");
    assert_eq!(die["Type"], "container", "{die}");
    assert_eq!(die["Action"], "die", "{die}");
    assert_eq!(die["status"], "die", "{die}");
    assert_eq!(die["from"], "busybox", "{die}");
    assert_eq!(die["Actor"]["Attributes"]["exitCode"], "0", "{die}");
    assert!(die["id"].as_str().is_some_and(is_full_id), "{die}");
    assert!(
        die["time"].as_i64().is_some() && die["timeNano"].as_i64().is_some(),
        "{die}"
    );
}

// ---------------------------------------------------------------------------------------
// docker run
// ---------------------------------------------------------------------------------------

#[test]
fn run_foreground_detached_and_removed() {
    let pg = Playground::new(1);
    let n = pg.node1();
    // The first run of an image pulls it, as on Docker.
    let first = n.ok("docker run --rm busybox echo hello");
    first.out_is("hello");
    first.err_has("Unable to find image 'busybox:latest' locally");
    n.ok("docker ps -a -q").out_is("");

    // Exit code and the two streams, kept apart.
    let r = n.run("docker run --name streams busybox sh -c 'echo to-out; echo to-err >&2; exit 3'");
    r.code_is(3).out_is("to-out");
    assert_eq!(r.err(), "to-err", "{r}");
    n.ok("docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' streams")
        .out_is("exited 3");

    // -d prints the full ID; the container runs on.
    let id = n.ok("docker run -d --name bg busybox sleep 300");
    assert!(is_full_id(id.out()), "{id}");
    n.ok("docker inspect -f '{{.State.Running}} {{.Id}}' bg")
        .out_is(&format!("true {}", id.out()));
    n.ok("docker ps -q --no-trunc").out_is(id.out());

    // Missing command, missing image: Docker's exit codes.
    let r = n.run("docker run --rm busybox no-such-command");
    r.code_is(127).err_has("executable file not found in $PATH");
    let r = n.run("docker run --rm no-such-image:1");
    r.code_is(125).err_has("Unable to find image 'no-such-image:1' locally");
    n.ok("docker ps -a --format '{{.Names}}' | sort | tr '\\n' ' '")
        .out_is("bg streams");
}

#[test]
fn run_environment_workdir_user_entrypoint_labels() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok(r#"
mkdir -p /root/envs && cd /root/envs
printf 'FROM_FILE=yes\n# a comment\nSPACED=a b c\n' > app.env
docker run --rm -e A=1 --env B=two --env-file app.env busybox sh -c 'echo "$A|$B|$FROM_FILE|$SPACED"' > out1
docker run --rm -w /tmp/work busybox pwd > out2
docker run --rm -u 1000:1001 busybox sh -c 'echo $(id -u) $(id -g)' > out3
docker run --rm -u nobody busybox whoami > out4
docker run --rm --entrypoint echo busybox from entrypoint > out5
docker run --rm --entrypoint "" busybox echo emptied > out6
"#);
    n.ok("cat /root/envs/out1").out_is("1|two|yes|a b c");
    n.ok("cat /root/envs/out2").out_is("/tmp/work");
    n.ok("cat /root/envs/out3").out_is("1000 1001");
    n.ok("cat /root/envs/out4").out_is("nobody");
    n.ok("cat /root/envs/out5").out_is("from entrypoint");
    n.ok("cat /root/envs/out6").out_is("emptied");
    // The environment of the image (PATH) stays under -e.
    n.ok("docker run --rm -e X=1 busybox sh -c 'echo $PATH'")
        .has("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    // A container's hostname is its short ID.
    n.ok("id=$(docker run -d busybox sleep 60); [ \"$(docker exec $id hostname)\" = \"${id:0:12}\" ]");

    n.ok("docker run -d --name labelled -l tier=web --label owner=me busybox sleep 300");
    n.ok("docker inspect -f '{{index .Config.Labels \"tier\"}} {{.Config.Labels.owner}}' labelled")
        .out_is("web me");
    n.ok("docker ps --filter label=tier=web --format '{{.Names}}'")
        .out_is("labelled");
    n.ok("docker ps --filter label=tier=db -q").out_is("");
    n.ok("docker ps --filter label=owner --format '{{.Label \"tier\"}}'")
        .out_is("web");
    // Config as the CLI sent it: Env, Cmd, Entrypoint, WorkingDir, User.
    n.ok("docker run -d --name cfg -e K=V -w /srv -u 1000 --entrypoint sleep busybox 300");
    n.ok("docker inspect -f '{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{.Config.WorkingDir}} {{.Config.User}} {{.Path}} {{json .Args}}' cfg")
        .out_is(r#"["sleep"] ["300"] /srv 1000 sleep ["300"]"#);
    n.ok("docker inspect -f '{{json .Config.Env}}' cfg | jq -e 'index(\"K=V\")'");
}

#[test]
fn run_interactive_with_a_tty() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok("docker pull -q busybox >/dev/null");
    // -it under tmux: a prompt, a TTY of the terminal's size, input, the exit code.
    n.ok(r#"
tmux new-session -d -s it -x 100 -y 30 'docker run -it --name tty busybox sh; echo "exited=$?"; sleep 60'
tmux_wait it '/ #'
tmux send-keys -t it 'tty; stty size; echo $((6*7))' Enter
tmux_wait it '42'
tmux_wait it '/dev/pts/0'
tmux_wait it "$(tmux display -p -t it '#{pane_height} #{pane_width}')"
# A resize reaches the container (SIGWINCH, then POST /containers/{id}/resize).
tmux resize-window -t it -x 90 -y 25
sleep 0.5
tmux send-keys -t it 'clear; stty size' Enter
tmux_wait it "$(tmux display -p -t it '#{pane_height} #{pane_width}')"
tmux send-keys -t it 'exit 5' Enter
tmux_wait it 'exited=5'
"#);
    n.ok("docker inspect -f '{{.Config.Tty}} {{.Config.OpenStdin}} {{.State.ExitCode}}' tty")
        .out_is("true true 5");

    // Detach with Ctrl-P Ctrl-Q: the container runs on; attach comes back to it.
    n.ok(r#"
tmux new-session -d -s det -x 100 -y 30 'docker run -it --name det busybox sh; echo "client-left=$?"; sleep 60'
tmux_wait det '/ #'
tmux send-keys -t det C-p C-q
tmux_wait det 'client-left=0'
[ "$(docker inspect -f '{{.State.Running}}' det)" = true ]
tmux new-session -d -s att -x 100 -y 30 'docker attach det; echo "attach-left=$?"; sleep 60'
sleep 1
tmux send-keys -t att 'echo back-$((1+1))' Enter
tmux_wait att 'back-2'
tmux send-keys -t att 'exit 0' Enter
tmux_wait att 'attach-left=0'
"#);
    n.ok("docker inspect -f '{{.State.Status}}' det").out_is("exited");

    // -i without a TTY: stdin is piped in, and its end (a half-close) ends the command.
    n.ok("printf 'one\\ntwo\\n' | docker run -i --rm busybox wc -l")
        .out_is("2");
    n.ok("echo piped | docker run -i --rm busybox cat").out_is("piped");
    // Without -t there is no TTY.
    n.ok("docker run --rm busybox sh -c 'tty || true'").out_is("not a tty");
}

#[test]
fn run_restart_policies() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok(r#"
docker run -d --name flaky --restart on-failure:2 busybox sh -c 'echo attempt; exit 1'
docker run -d --name always --restart always busybox sh -c 'sleep 1; exit 0'
docker run -d --name fine --restart on-failure busybox true
# on-failure:2 gives up after two restarts (backoff 100 ms, then 200 ms).
wait_for 30 sh -c '[ "$(docker inspect -f "{{.RestartCount}} {{.State.Status}}" flaky)" = "2 exited" ]'
sleep 2
"#);
    n.ok("docker inspect -f '{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}} {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}' flaky")
        .out_is("2 exited 1 on-failure 2");
    // Three runs, three lines in the log (the log outlives restarts).
    n.ok("docker logs flaky").out_is("attempt\nattempt\nattempt");
    // A clean exit is not a failure.
    n.ok("docker inspect -f '{{.RestartCount}} {{.State.Status}}' fine")
        .out_is("0 exited");
    // always restarts after a clean exit too.
    n.ok("wait_for 30 sh -c '[ $(docker inspect -f {{.RestartCount}} always) -ge 1 ]'");
    n.ok("docker inspect -f '{{.HostConfig.RestartPolicy.Name}}' always")
        .out_is("always");
    // A stop by the user is not restarted.
    n.ok("docker stop -t 1 always >/dev/null && sleep 3 && docker inspect -f '{{.State.Status}}' always")
        .out_is("exited");
    // The CLI refuses --rm with a restart policy.
    n.fails("docker run --rm --restart always busybox true")
        .err_has("Conflicting options: --restart and --rm");
}

#[test]
fn run_limits_read_only_init_and_stop_signals() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok("docker run -d --name lim -m 64m --cpus 0.5 busybox sleep 300");
    n.ok("docker inspect -f '{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}' lim")
        .out_is("67108864 500000000");
    // The limit is enforced: the container's own cgroup says so (v2 or v1).
    n.ok("docker exec lim sh -c 'cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes'")
        .out_is("67108864");
    n.ok("docker exec lim sh -c 'cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)'")
        .out_is("50000 100000");
    // A memory hog is OOM-killed: exit 137, OOMKilled.
    let oom = n.run(
        "docker run --name hog -m 32m busybox sh -c 'x=$(head -c 209715200 /dev/zero | tr \"\\0\" a); echo survived'",
    );
    oom.code_is(137).lacks("survived");
    n.ok("docker inspect -f '{{.State.OOMKilled}} {{.State.ExitCode}}' hog")
        .out_is("true 137");

    let ro = n.run("docker run --rm --read-only busybox touch /file");
    assert_ne!(ro.code, 0, "{ro}");
    assert!(ro.stderr.contains("Read-only file system"), "{ro}");
    n.ok("docker run --rm --read-only --tmpfs /tmp busybox sh -c 'touch /tmp/ok && grep \" /tmp \" /proc/mounts'")
        .has("tmpfs /tmp tmpfs");

    // --init: Docker's init is PID 1 and the command its child.
    let init = n.ok("docker run --rm --init busybox sh -c 'cat /proc/1/comm; echo $$'");
    // Slipway runs its init from a sealed memory copy (no host binary is ever exposed to
    // the container), so PID 1's name is that copy's: "memfd:docker-in[it]".
    assert!(init.lines()[0].contains("docker-in"), "{init}");
    assert_ne!(init.lines()[1], "1", "{init}");
    n.ok("docker run --rm busybox sh -c 'echo $$'").out_is("1");

    // --stop-signal reaches PID 1; the trap's output is in the log; exit 0.
    n.ok(r#"
docker run -d --name sig --stop-signal SIGUSR1 busybox sh -c 'trap "echo got-usr1; exit 0" USR1; echo ready; while :; do sleep 0.1; done'
wait_for 10 sh -c 'docker logs sig | grep -q ready'
docker stop sig
"#);
    n.ok("docker logs sig").has("got-usr1");
    n.ok("docker inspect -f '{{.State.ExitCode}} {{.Config.StopSignal}}' sig")
        .out_is("0 SIGUSR1");
    // PID 1 ignores SIGTERM without a handler: stop waits the timeout, then kills (137).
    let t = n.ok(r#"
docker run -d --name stubborn --stop-timeout 2 busybox sleep 300 >/dev/null
start=$(date +%s)
docker stop stubborn
echo $(( $(date +%s) - start ))
docker inspect -f '{{.State.ExitCode}} {{.Config.StopTimeout}}' stubborn
docker start stubborn >/dev/null
start=$(date +%s)
docker stop -t 1 stubborn >/dev/null
echo $(( $(date +%s) - start ))
"#);
    let lines = t.lines();
    assert_eq!(lines[0], "stubborn", "{t}");
    let waited: u64 = lines[1].parse().unwrap();
    assert!(
        (2..=5).contains(&waited),
        "stop took {waited} s with --stop-timeout 2\n{t}"
    );
    assert_eq!(lines[2], "137 2", "{t}");
    let waited: u64 = lines[3].parse().unwrap();
    assert!((1..=4).contains(&waited), "stop -t 1 took {waited} s\n{t}");
}

#[test]
fn healthchecks() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok(r#"
# Failures before the retries run out leave it "starting".
docker run -d --name hc --health-cmd 'test -f /tmp/ready' --health-interval 1s --health-timeout 2s \
  --health-retries 10 busybox sh -c 'sleep 4; touch /tmp/ready; sleep 300'
[ "$(docker inspect -f '{{.State.Health.Status}}' hc)" = starting ]
docker run -d --name sick --health-cmd 'exit 1' --health-interval 1s --health-retries 2 busybox sleep 300
docker run -d --name plain busybox sleep 300
"#);
    n.ok("wait_for 30 sh -c '[ $(docker inspect -f {{.State.Health.Status}} hc) = healthy ]'");
    n.ok("wait_for 30 sh -c '[ $(docker inspect -f {{.State.Health.Status}} sick) = unhealthy ]'");
    n.ok("docker inspect -f '{{.State.Health.FailingStreak}}' sick | grep -qvx 0");
    n.ok("docker inspect -f '{{(index .State.Health.Log 0).ExitCode}}' sick")
        .out_is("1");
    n.ok("docker ps --filter health=healthy --format '{{.Names}}'")
        .out_is("hc");
    n.ok("docker ps --filter health=unhealthy --format '{{.Names}}'")
        .out_is("sick");
    n.ok("docker ps --filter name=hc --format '{{.Status}}'")
        .has("(healthy)");
    // No healthcheck, no Health.
    n.ok("docker inspect -f '{{json .State.Health}}' plain").out_is("null");
    n.ok("docker inspect -f '{{json .Config.Healthcheck.Test}} {{.Config.Healthcheck.Interval}}' hc")
        .out_is(r#"["CMD-SHELL","test -f /tmp/ready"] 1s"#);
    // Health changes are events.
    n.ok("docker events --since 0 --until $(($(date +%s)+1)) --filter container=hc --filter event=health_status --format '{{.Action}}'")
        .has("health_status: healthy");
}

// ---------------------------------------------------------------------------------------
// ps, inspect, logs
// ---------------------------------------------------------------------------------------

#[test]
fn ps_filters_and_formats() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok(r#"
docker run -d --name up1 -l env=prod busybox sleep 300
docker run --name done0 busybox true
docker run --name done3 busybox sh -c 'exit 3' || true
docker create --name fresh busybox true
"#);
    let ps = n.ok("docker ps");
    assert_eq!(
        ps.lines()[0].split_whitespace().collect::<Vec<_>>(),
        [
            "CONTAINER",
            "ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES"
        ],
        "{ps}"
    );
    assert_eq!(ps.lines().len(), 2, "{ps}");
    ps.has("up1").has("\"sleep 300\"");
    n.ok("docker ps -q | wc -l").out_is("1");
    n.ok("docker ps -aq | wc -l").out_is("4");
    n.ok("docker ps -a -q | head -1 | grep -E '^[0-9a-f]{12}$'");
    n.ok("docker ps -a --filter status=exited --format '{{.Names}}' | sort | tr '\\n' ' '")
        .out_is("done0 done3");
    n.ok("docker ps -a --filter status=created --format '{{.Names}}'")
        .out_is("fresh");
    n.ok("docker ps -a --filter exited=3 --format '{{.Names}}'")
        .out_is("done3");
    n.ok("docker ps -a --filter name=done --format '{{.Names}}' | sort | tr '\\n' ' '")
        .out_is("done0 done3");
    n.ok("docker ps -a --filter ancestor=busybox -q | wc -l").out_is("4");
    n.ok("docker ps -a --filter label=env=prod --format '{{.Names}}'")
        .out_is("up1");
    // Newest first; -l is the latest created; -n limits.
    n.ok("docker ps -a --format '{{.Names}}' | tr '\\n' ' '")
        .out_is("fresh done3 done0 up1");
    n.ok("docker ps -l --format '{{.Names}}'").out_is("fresh");
    n.ok("docker ps -a -n 2 --format '{{.Names}}' | wc -l").out_is("2");
    // Status strings as Docker writes them.
    n.ok("docker ps -a --filter name=done3 --format '{{.Status}}'")
        .has("Exited (3) ");
    n.ok("docker ps --format '{{.Status}}'").has("Up ");
    n.ok("docker ps -a --filter name=fresh --format '{{.Status}}'")
        .out_is("Created");
    n.ok("docker ps --format 'table {{.Names}}\\t{{.Image}}' | head -1 | tr -s ' '")
        .out_is("NAMES IMAGE");
    let json = n.ok("docker ps --format '{{json .}}'");
    let v: serde_json::Value = serde_json::from_str(json.out()).expect("JSON");
    assert_eq!(v["Names"], "up1", "{json}");
    assert_eq!(v["State"], "running", "{json}");
    assert_eq!(v["Image"], "busybox", "{json}");
    // With a size.
    n.ok("docker ps -s --format '{{.Size}}'").has("B");
}

#[test]
fn inspect_with_templates() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok("docker run -d --name ins -w /srv busybox sleep 300");
    n.ok("docker inspect -f '{{.Config.WorkingDir}}' ins").out_is("/srv");
    n.ok("docker inspect --format='{{.Name}} {{.State.Status}} {{.Config.Image}}' ins")
        .out_is("/ins running busybox");
    let ip = n.ok("docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' ins");
    assert!(ip.out().starts_with("172.17."), "{ip}");
    n.ok("docker inspect -f '{{.NetworkSettings.IPAddress}}' ins")
        .out_is(ip.out());
    // Lists are empty, not null.
    n.ok("docker inspect --format '{{json .Mounts}}' ins | jq -c .")
        .out_is("[]");
    n.ok("docker inspect ins | jq -e 'length == 1 and (.[0].Id | length == 64) and (.[0].Created | test(\"^20[0-9-]+T\"))'");
    n.ok("docker inspect ins | jq -e '.[0].HostConfig.NetworkMode == \"default\" or .[0].HostConfig.NetworkMode == \"bridge\"'");
    n.ok("docker inspect ins | jq -e '.[0].State.Pid > 0 and .[0].State.StartedAt != \"\"'");
    // Several objects of several kinds at once; the image by name.
    n.ok("docker inspect -f '{{.Id}}' ins busybox | wc -l").out_is("2");
    let r = n.run("docker inspect no-such-thing");
    r.code_is(1).err_has("Error: No such object: no-such-thing");
    // `docker container inspect` looks for containers only.
    let r = n.run("docker container inspect busybox");
    // The client words the rest ("Error response from daemon: " in CLI 26).
    r.code_is(1).err_has("No such container: busybox");
    // An ID prefix works.
    n.ok("docker inspect -f '{{.Name}}' $(docker inspect -f '{{.Id}}' ins | cut -c1-5)")
        .out_is("/ins");
}

#[test]
fn logs_tail_since_timestamps_and_follow() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok(r#"
docker run -d --name talk busybox sh -c 'for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2; sleep 300'
wait_for 10 sh -c 'docker logs talk 2>&1 | grep -q oops'
"#);
    n.ok("docker logs talk 2>/dev/null")
        .out_is("line1\nline2\nline3\nline4\nline5");
    n.ok("docker logs talk 2>&1 >/dev/null").out_is("oops");
    n.ok("docker logs --tail 2 talk 2>&1").out_is("line5\noops");
    n.ok("docker logs -n 0 talk 2>&1").out_is("");
    let t = n.ok("docker logs -t talk 2>/dev/null | head -1");
    let (stamp, text) = t.out().split_once(' ').expect("a timestamp, then the line");
    assert_eq!(text, "line1", "{t}");
    assert!(
        stamp.len() > 20 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T' && stamp.contains('.'),
        "not an RFC 3339 nano timestamp: {t}"
    );

    // --since and --until with Unix times between two lines.
    n.ok(r#"
docker run -d --name slow busybox sh -c 'echo early; sleep 3; echo late; sleep 300'
wait_for 10 sh -c 'docker logs slow | grep -q early'
sleep 1
mid=$(date +%s)
wait_for 10 sh -c 'docker logs slow | grep -q late'
[ "$(docker logs --since $mid slow)" = late ]
[ "$(docker logs --until $mid slow)" = early ]
# A duration counts back from now.
[ "$(docker logs --since 1h slow | wc -l)" = 2 ]
"#);

    // -f streams: a line printed after the follower started arrives; the follower ends
    // when the container stops.
    n.ok(r#"
docker run -d --name feed busybox sh -c 'echo first; while :; do if [ -f /tmp/go ]; then echo second; rm /tmp/go; fi; sleep 0.1; done'
docker logs -f feed > /root/follow.out 2>&1 &
follower=$!
wait_for 10 grep -q first /root/follow.out
! grep -q second /root/follow.out
docker exec feed touch /tmp/go
wait_for 10 grep -q second /root/follow.out
kill -0 $follower
docker stop -t 1 feed
# The follower ends by itself.
for i in $(seq 50); do kill -0 $follower 2>/dev/null || break; sleep 0.2; done
! kill -0 $follower 2>/dev/null
"#);
    // A TTY container's log is raw (no framing), \r\n included.
    n.ok("docker run -t --name ttylog busybox echo tty-line >/dev/null; docker logs ttylog | od -c | head -2")
        .has("\\r  \\n");
}

// ---------------------------------------------------------------------------------------
// exec
// ---------------------------------------------------------------------------------------

#[test]
fn exec_flags_exit_codes_and_prompt() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok("docker run -d --name box -e FROM_RUN=1 busybox sleep 300");
    n.run("docker exec box sh -c 'exit 7'").code_is(7);
    n.ok("docker exec box sh -c 'echo $FROM_RUN'").out_is("1");
    n.ok("docker exec -e ADDED=2 box sh -c 'echo $FROM_RUN$ADDED'")
        .out_is("12");
    n.ok("docker exec -w /etc box pwd").out_is("/etc");
    n.ok("docker exec -u 1000 box id -u").out_is("1000");
    n.ok("docker exec -u root box whoami").out_is("root");
    n.ok("echo through-stdin | docker exec -i box cat")
        .out_is("through-stdin");
    n.ok("docker exec -d box sh -c 'sleep 1; touch /tmp/detached'; sleep 3; docker exec box ls /tmp/detached")
        .out_is("/tmp/detached");
    // Both streams, framed and kept apart.
    let r = n.ok("docker exec box sh -c 'echo o; echo e >&2'");
    assert_eq!((r.out(), r.err()), ("o", "e"), "{r}");
    let r = n.run("docker exec box no-such-binary");
    assert!(r.code == 126 || r.code == 127, "{r}");
    r.err_has("executable file not found");

    // -it: a prompt, a TTY, and the shell's exit code through the client.
    n.ok(r#"
tmux new-session -d -s ex -x 80 -y 24 'docker exec -it box sh; echo "exec-exit=$?"; sleep 60'
tmux_wait ex '/ #'
tmux send-keys -t ex 'tty; echo $((7*6))' Enter
tmux_wait ex '42'
tmux_wait ex '/dev/pts/'
tmux send-keys -t ex 'exit 4' Enter
tmux_wait ex 'exec-exit=4'
"#);

    // Not running, paused, missing.
    n.ok("docker run -d --name stopped busybox true; docker wait stopped");
    let r = n.run("docker exec stopped true");
    r.code_is(1).err_has("is not running");
    n.ok("docker pause box");
    let r = n.run("docker exec box true");
    r.code_is(1).err_has("is paused");
    n.ok("docker unpause box");
    let r = n.run("docker exec nosuch true");
    r.code_is(1).err_has("No such container: nosuch");
}

// ---------------------------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------------------------

#[test]
fn lifecycle_stop_start_restart_kill_pause_wait_rename_update() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok("docker run -d --name life busybox sh -c 'trap \"echo usr1\" USR1; while :; do sleep 0.1; done'");
    n.ok("docker stop -t 1 life").out_is("life");
    n.ok("docker inspect -f '{{.State.Status}} {{.State.Running}} {{.State.ExitCode}}' life")
        .out_is("exited false 137");
    let first = n.ok("docker inspect -f '{{.State.StartedAt}}' life");
    n.ok("sleep 1; docker start life").out_is("life");
    let second = n.ok("docker inspect -f '{{.State.StartedAt}} {{.State.Status}} {{.RestartCount}}' life");
    assert!(second.out().ends_with(" running 0"), "{second}");
    assert_ne!(
        first.out(),
        second.out().split(' ').next().unwrap(),
        "StartedAt unchanged"
    );
    n.ok("sleep 1; docker restart -t 1 life").out_is("life");
    let third = n.ok("docker inspect -f '{{.State.StartedAt}} {{.State.Status}}' life");
    assert!(third.out().ends_with(" running"), "{third}");
    assert_ne!(
        second.out().split(' ').next(),
        third.out().split(' ').next(),
        "restart did not restart"
    );
    // kill -s delivers the signal; the container lives on.
    n.ok("docker kill -s USR1 life && wait_for 10 sh -c 'docker logs life | grep -q usr1'");
    n.ok("docker inspect -f '{{.State.Running}}' life").out_is("true");
    n.ok("docker kill life").out_is("life");
    n.ok("docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' life")
        .out_is("exited 137");
    let r = n.run("docker kill life");
    r.code_is(1).err_has("is not running");

    // pause freezes the processes; unpause thaws them.
    n.ok("docker run -d --name frozen busybox sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/t; sleep 0.05; done'");
    n.ok("docker pause frozen").out_is("frozen");
    n.ok("docker inspect -f '{{.State.Status}} {{.State.Paused}}' frozen")
        .out_is("paused true");
    n.ok("docker ps --filter status=paused --format '{{.Names}} {{.Status}}'")
        .has("frozen")
        .has("(Paused)");
    n.ok("docker unpause frozen && docker exec frozen cat /tmp/t >/dev/null");
    n.ok("a=$(docker exec frozen cat /tmp/t); sleep 0.5; b=$(docker exec frozen cat /tmp/t); [ \"$a\" != \"$b\" ]");

    // wait prints the exit code, for a running container and a finished one.
    n.ok("docker run -d --name waiter busybox sh -c 'sleep 1; exit 4'");
    n.ok("docker wait waiter").out_is("4");
    n.ok("docker wait waiter").out_is("4");

    n.ok("docker rename waiter renamed");
    n.ok("docker ps -a --filter name=renamed --format '{{.Names}}'")
        .out_is("renamed");
    n.run("docker inspect waiter").code_is(1);
    n.ok("docker inspect -f '{{.Name}}' renamed").out_is("/renamed");

    n.ok("docker run -d --name upd -m 64m busybox sleep 300");
    n.ok("docker update --memory 128m --memory-swap 256m --restart on-failure:3 upd")
        .out_is("upd");
    n.ok(
        "docker inspect -f '{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.RestartPolicy.Name}}' upd",
    )
    .out_is("134217728 268435456 on-failure");
    n.ok("docker exec upd sh -c 'cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes'")
        .out_is("134217728");

    // Removal: running needs -f; -f kills; missing names Docker's error.
    let r = n.run("docker rm upd");
    r.code_is(1)
        .err_has("container is running: stop the container before removing or force remove");
    n.ok("docker rm -f upd").out_is("upd");
    let r = n.run("docker rm nosuch");
    r.code_is(1);
    assert_eq!(r.err(), "Error response from daemon: No such container: nosuch", "{r}");
    // A name conflict is the 409 with Docker's words.
    n.ok("docker create --name taken busybox true");
    let r = n.run("docker run --name taken busybox true");
    r.code_is(125)
        .err_has("Conflict. The container name \"/taken\" is already in use by container \"")
        .err_has("You have to remove (or rename) that container to be able to reuse that name.");
}

#[test]
fn top_stats_diff_export_and_prune() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok("docker run -d --name obs busybox sleep 301");
    let top = n.ok("docker top obs");
    assert_eq!(
        top.lines()[0].split_whitespace().collect::<Vec<_>>(),
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        "{top}"
    );
    top.has("sleep 301");
    n.ok("docker top obs -o pid,comm | tail -n +2").has("sleep");

    let stats = n.ok("docker stats --no-stream obs");
    assert_eq!(
        stats.lines()[0].split_whitespace().collect::<Vec<_>>(),
        [
            "CONTAINER",
            "ID",
            "NAME",
            "CPU",
            "%",
            "MEM",
            "USAGE",
            "/",
            "LIMIT",
            "MEM",
            "%",
            "NET",
            "I/O",
            "BLOCK",
            "I/O",
            "PIDS"
        ],
        "{stats}"
    );
    n.ok("docker stats --no-stream --format '{{.Name}} {{.PIDs}}' obs")
        .out_is("obs 1");
    n.ok("docker stats --no-stream --format '{{.MemUsage}}' obs")
        .has("iB / ");

    // diff: added, changed and deleted paths against the image.
    n.ok("docker exec obs sh -c 'mkdir /newdir && echo x > /newdir/f && rm /etc/group && echo y >> /etc/passwd'");
    let diff = n.ok("docker diff obs");
    for line in ["A /newdir", "A /newdir/f", "C /etc", "D /etc/group", "C /etc/passwd"] {
        assert!(diff.lines().contains(&line), "no {line:?} in\n{diff}");
    }
    // export: the container's filesystem as a tar, changes included.
    n.ok("docker export obs | tar -t | grep -x 'newdir/f'");
    n.ok("docker export -o /root/obs.tar obs && tar -tf /root/obs.tar | grep -qx 'bin/busybox' && ! tar -tf /root/obs.tar | grep -qx 'etc/group'");

    // rm -v removes the anonymous volumes; plain rm keeps them.
    n.ok(r#"
docker run --name anon1 -v /data busybox true
docker run --name anon2 -v /data busybox true
v1=$(docker inspect -f '{{range .Mounts}}{{.Name}}{{end}}' anon1)
v2=$(docker inspect -f '{{range .Mounts}}{{.Name}}{{end}}' anon2)
[ ${#v1} = 64 ] && [ ${#v2} = 64 ]
docker rm -v anon1
docker rm anon2
! docker volume inspect "$v1" >/dev/null 2>&1
docker volume inspect "$v2" >/dev/null
"#);

    // container prune removes stopped containers only.
    n.ok("docker run --name stopped1 busybox true; docker create --name created1 busybox true");
    let prune = n.ok("docker container prune -f");
    prune.has("Deleted Containers:").has("Total reclaimed space:");
    n.ok("docker ps -a --format '{{.Names}}'").out_is("obs");
}

// ---------------------------------------------------------------------------------------
// docker cp
// ---------------------------------------------------------------------------------------

#[test]
fn cp_files_directories_and_symlinks_both_ways() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok(r#"
mkdir -p /root/cp && cd /root/cp
docker run -d --name cpbox busybox sleep 300
echo hello-file > file.txt
mkdir -p tree/sub && echo deep > tree/sub/leaf && ln -s sub/leaf tree/link
ln -s file.txt alink
docker cp file.txt cpbox:/tmp/file.txt
docker cp tree cpbox:/tmp/
docker cp alink cpbox:/tmp/alink
# Into an existing directory, with a trailing slash.
docker cp file.txt cpbox:/tmp/tree/
"#);
    n.ok("docker exec cpbox cat /tmp/file.txt").out_is("hello-file");
    n.ok("docker exec cpbox cat /tmp/tree/sub/leaf").out_is("deep");
    n.ok("docker exec cpbox cat /tmp/tree/file.txt").out_is("hello-file");
    // Symlinks are copied as links, not followed.
    n.ok("docker exec cpbox readlink /tmp/tree/link").out_is("sub/leaf");
    n.ok("docker exec cpbox readlink /tmp/alink").out_is("file.txt");

    n.ok(r#"
cd /root/cp
docker exec cpbox sh -c 'mkdir -p /out/d && echo from-ctr > /out/d/f && ln -s /etc/passwd /out/plink && echo single > /out/one'
docker cp cpbox:/out/one ./one
docker cp cpbox:/out/d ./d
docker cp cpbox:/out/plink ./plink
docker cp -L cpbox:/out/plink ./followed
docker cp cpbox:/out/one - | tar -t
"#)
    .out_is("one");
    n.ok("cat /root/cp/one").out_is("single");
    n.ok("cat /root/cp/d/f").out_is("from-ctr");
    n.ok("readlink /root/cp/plink").out_is("/etc/passwd");
    // -L follows the link inside the container: busybox's passwd, not the node's.
    n.ok("head -1 /root/cp/followed")
        .out_is("root:x:0:0:root:/root:/bin/sh");
    n.ok("head -1 /etc/passwd").out_is("root:x:0:0:root:/root:/bin/bash");
    // From a stopped container too.
    n.ok("docker stop -t 1 cpbox >/dev/null && docker cp cpbox:/out/one /root/cp/again && cat /root/cp/again")
        .out_is("single");

    // CLI 26 prints the daemon's own 404 message (moby's wording).
    let r = n.run("docker cp cpbox:/no/such/path /root/cp/x");
    r.code_is(1)
        .err_has("Could not find the file /no/such/path in container cpbox");
    // For a missing container it gives up after the failed stat, with its own words.
    n.run("docker cp /root/cp/one nosuch:/tmp/").code_is(1);
}

#[test]
fn cp_stays_inside_the_container_root() {
    let pg = Playground::new(1);
    let n = pg.node1();
    // A marker on the host and one in the node: a copy that leaves the container's root
    // through a symlink would find one of them.
    let marker = format!("/tmp/slipway-test-cp-escape-{}", std::process::id());
    std::fs::write(&marker, "HOST-SECRET\n").unwrap();
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _gone = Gone(marker.clone());
    n.ok(&format!("echo NODE-SECRET > {marker}"));
    n.ok(&format!(
        r#"
docker run -d --name esc busybox sleep 300
docker exec esc sh -c 'ln -s ../../../../../../../..{marker} /abs-up; ln -s {marker} /abs; mkdir -p /tmp && ln -s / /rootlink && ln -s ../../../../../../../../tmp /uptmp'
"#
    ));
    // Reading through the links gives nothing of the host's or the node's.
    for link in ["/abs-up", "/abs"] {
        let r = n.run(&format!("docker cp -L esc:{link} /root/got && cat /root/got"));
        assert!(
            !r.stdout.contains("SECRET"),
            "docker cp read {marker} outside the container through {link}\n{r}"
        );
    }
    // Writing through links lands inside the container.
    let name = format!("slipway-test-cp-in-{}", std::process::id());
    n.ok(&format!(
        r#"
echo planted > /root/{name}
docker cp /root/{name} esc:/uptmp/
docker cp /root/{name} esc:/rootlink/tmp/
docker exec esc ls /tmp/{name}
"#
    ));
    assert!(
        !std::path::Path::new(&format!("/tmp/{name}")).exists(),
        "docker cp wrote into the host's /tmp"
    );
    n.ok(&format!("! ls /tmp/{name} 2>/dev/null"));
    // An archive member named with `..` stays inside too.
    n.ok(&format!(
        r#"
cd /root && mkdir -p evil && cd evil
echo bad > {name}-dotdot
tar -P -cf ../evil.tar --transform 's,^,../../../../tmp/,' {name}-dotdot
docker cp - esc:/tmp/ < ../evil.tar || true
"#
    ));
    assert!(
        !std::path::Path::new(&format!("/tmp/{name}-dotdot")).exists(),
        "an archive with .. wrote into the host's /tmp"
    );
    n.ok(&format!("! ls /tmp/{name}-dotdot 2>/dev/null"));
}

// ---------------------------------------------------------------------------------------
// Volumes and mounts
// ---------------------------------------------------------------------------------------

#[test]
fn volumes_named_anonymous_and_pruned() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok("docker volume create --label team=a data1").out_is("data1");
    n.ok("docker volume create data2 >/dev/null");
    let ls = n.ok("docker volume ls");
    assert_eq!(
        ls.lines()[0].split_whitespace().collect::<Vec<_>>(),
        ["DRIVER", "VOLUME", "NAME"],
        "{ls}"
    );
    ls.has("local     data1");
    n.ok("docker volume ls -q | sort | tr '\\n' ' '").out_is("data1 data2");
    n.ok("docker volume ls --filter label=team=a -q").out_is("data1");
    n.ok("docker volume inspect -f '{{.Name}} {{.Driver}} {{.Mountpoint}} {{.Labels.team}} {{.Scope}}' data1")
        .out_is("data1 local /var/lib/docker/volumes/data1/_data a local");
    n.run("docker volume inspect nosuch")
        .code_is(1)
        .err_has("no such volume");

    // Data outlives its container.
    n.ok("docker run --rm -v data1:/d busybox sh -c 'echo kept > /d/f'");
    n.ok("docker run --rm -v data1:/d:ro busybox cat /d/f").out_is("kept");
    n.ok("docker run --rm --mount type=volume,source=data1,target=/m busybox cat /m/f")
        .out_is("kept");
    // A named volume that does not exist yet is made on first use, with the image's files
    // copied in (busybox has /etc).
    n.ok("docker run --rm -v fresh:/etc busybox ls /etc/passwd && docker volume ls -q | grep -x fresh");
    n.ok("docker run --rm -v fresh:/x busybox ls /x/passwd");
    // :ro refuses writes.
    n.run("docker run --rm -v data1:/d:ro busybox touch /d/g")
        .err_has("Read-only file system");

    // In use (even by a stopped container): refused, with Docker's words.
    n.ok("docker create --name user1 -v data1:/d busybox true");
    let r = n.run("docker volume rm data1");
    r.code_is(1).err_has("volume is in use");
    n.ok("docker ps -a --filter volume=data1 --format '{{.Names}}'")
        .out_is("user1");
    n.ok("docker rm user1 && docker volume rm data1").out_is("user1\ndata1");

    // An image's VOLUME gives an anonymous volume (redis: VOLUME /data).
    n.ok("docker run -d --name red redis");
    n.ok("docker inspect -f '{{range .Mounts}}{{.Type}} {{.Destination}} {{len .Name}}{{end}}' red")
        .out_is("volume /data 64");
    n.ok("docker rm -f red >/dev/null");
    // prune: anonymous unused volumes only (API >= 1.42); -a takes unused named ones too.
    n.ok("docker volume create named-unused >/dev/null; docker run --name a1 -v /anon busybox true; docker rm a1 >/dev/null");
    let before = n.ok("docker volume ls -q | wc -l");
    let prune = n.ok("docker volume prune -f");
    prune.has("Deleted Volumes:").has("Total reclaimed space:");
    n.ok("docker volume ls -q | grep -x named-unused");
    n.ok("docker volume ls -q | grep -E '^[0-9a-f]{64}$' | wc -l")
        .out_is("0");
    assert!(before.out().parse::<u32>().unwrap() >= 4, "{before}");
    n.ok("docker volume prune -af >/dev/null; docker volume ls -q")
        .out_is("");
}

#[test]
fn bind_and_tmpfs_mounts() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok(r#"
mkdir -p /root/app && cd /root/app
echo from-node > index.txt
docker run --rm -v "$(pwd)":/app busybox sh -c 'cat /app/index.txt; echo from-ctr > /app/new.txt'
cat new.txt
docker run --rm -v ./:/rel busybox cat /rel/index.txt
docker run --rm --mount type=bind,source="$(pwd)",target=/app,readonly busybox sh -c 'cat /app/index.txt; touch /app/x 2>&1 || true'
docker run --rm -v "$(pwd)":/app:ro busybox sh -c 'touch /app/y' || echo refused
"#)
    .out_is(
        "from-node\nfrom-ctr\nfrom-node\nfrom-node\ntouch: /app/x: Read-only file system\nrefused",
    );
    n.ok("ls /root/app | tr '\\n' ' '").out_is("index.txt new.txt");
    // A bind names a path of the node, resolved in the node: /etc/hostname is node1's.
    n.ok("docker run --rm -v /etc/hostname:/h:ro busybox cat /h")
        .out_is("node1");
    // A missing source directory is made for -v, refused for --mount.
    n.ok("docker run --rm -v /root/made-by-v:/m busybox true && test -d /root/made-by-v");
    n.run("docker run --rm --mount type=bind,source=/root/absent,target=/m busybox true")
        .code_is(125)
        .err_has("bind source path does not exist: /root/absent");
    n.ok("docker run -d --name mnt -v /root/app:/app --mount type=tmpfs,target=/scratch --tmpfs /t2 busybox sleep 300");
    n.ok("docker exec mnt sh -c 'grep -E \" /scratch | /t2 \" /proc/mounts | cut -d\" \" -f1,2,3'")
        .out_is("tmpfs /scratch tmpfs\ntmpfs /t2 tmpfs");
    n.ok("docker inspect -f '{{range .Mounts}}{{.Type}}:{{.Source}}:{{.Destination}}:{{.RW}} {{end}}' mnt")
        .has("bind:/root/app:/app:true");
    n.ok("docker inspect mnt | jq -r '.[0].HostConfig.Tmpfs | keys[]'")
        .out_is("/t2");
}

// ---------------------------------------------------------------------------------------
// Networks
// ---------------------------------------------------------------------------------------

#[test]
fn default_bridge_has_no_names_user_networks_do() {
    let pg = Playground::new(1);
    let n = pg.node1();
    let ls = n.ok("docker network ls --format '{{.Name}} {{.Driver}} {{.Scope}}' | sort");
    assert_eq!(
        ls.out(),
        "bridge bridge local\nhost host local\nnone null local",
        "{ls}"
    );
    n.ok("docker network inspect bridge -f '{{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}}'")
        .out_is("172.17.0.0/16 172.17.0.1");

    n.ok("docker run -d --name db busybox sleep 300");
    let ip = n.ok("docker inspect -f '{{.NetworkSettings.IPAddress}}' db");
    // On the default bridge, names do not resolve, addresses do reach.
    let r = n.run("docker run --rm busybox ping -c1 -W2 db");
    assert_ne!(r.code, 0, "a name resolved on the default bridge\n{r}");
    r.err_has("bad address 'db'");
    n.ok(&format!("docker run --rm busybox ping -c1 -W2 {}", ip.out()));
    // From the node, as from a Docker host.
    n.ok(&format!("ping -c1 -W2 {}", ip.out()));

    let id = n.ok("docker network create appnet");
    assert!(is_full_id(id.out()), "{id}");
    n.run("docker network create appnet")
        .code_is(1)
        .err_has("network with name appnet already exists");
    n.ok("docker run -d --name db2 --network appnet busybox sleep 300");
    n.ok("docker run --rm --network appnet busybox ping -c1 -W2 db2");
    // Docker's embedded DNS, by name and by short ID.
    n.ok("docker run --rm --network appnet busybox cat /etc/resolv.conf")
        .has("nameserver 127.0.0.11");
    n.ok("docker run --rm --network appnet busybox nslookup db2 | grep -A1 'Name:' | grep -q Address");
    n.ok("docker run --rm --network appnet busybox ping -c1 -W2 $(docker inspect -f '{{.Id}}' db2 | cut -c1-12)");
    // Not across networks.
    n.fails("docker run --rm --network appnet busybox ping -c1 -W2 db");
    n.ok("docker network inspect appnet -f '{{range .Containers}}{{.Name}} {{end}}'")
        .out_is("db2");
    n.ok("docker ps --filter network=appnet --format '{{.Names}}'")
        .out_is("db2");

    // connect with an alias, disconnect.
    n.ok("docker network connect --alias cache appnet db");
    n.ok("docker run --rm --network appnet busybox ping -c1 -W2 cache");
    n.ok("docker run --rm --network appnet busybox ping -c1 -W2 db");
    n.ok("docker inspect -f '{{len .NetworkSettings.Networks}}' db")
        .out_is("2");
    n.ok("docker network inspect appnet -f '{{range .Containers}}{{.Name}} {{end}}' | tr ' ' '\\n' | sort | tr '\\n' ' '")
        .out_is("db db2");
    n.ok("docker network disconnect appnet db");
    n.fails("docker run --rm --network appnet busybox ping -c1 -W2 cache");

    let r = n.run("docker network rm appnet");
    r.code_is(1).err_has("has active endpoints");
    n.ok("docker rm -f db2 >/dev/null && docker network rm appnet")
        .out_is("appnet");
    n.run("docker network inspect appnet")
        .code_is(1)
        .err_has("network appnet not found");
}

#[test]
fn network_ipam_internal_modes_and_prune() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok("docker network create --subnet 10.123.0.0/24 --gateway 10.123.0.254 --label purpose=test ipamnet >/dev/null");
    n.ok("docker network inspect ipamnet -f '{{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}} {{.Labels.purpose}} {{.Driver}} {{.Internal}}'")
        .out_is("10.123.0.0/24 10.123.0.254 test bridge false");
    n.ok("docker network ls --filter label=purpose=test --format '{{.Name}}'")
        .out_is("ipamnet");
    let r = n.ok("docker run --rm --network ipamnet busybox sh -c 'ip -4 -o addr show eth0; ip route'");
    r.has("inet 10.123.0.").has("default via 10.123.0.254");
    n.ok("docker run --rm --network ipamnet --ip 10.123.0.42 busybox ip -4 -o addr show eth0")
        .has("inet 10.123.0.42/24");

    // An internal network: containers reach each other, nothing else.
    n.ok("docker network create --internal inner >/dev/null");
    n.ok("docker run -d --name in1 --network inner busybox sleep 300");
    n.ok("docker run --rm --network inner busybox ping -c1 -W2 in1");
    n.ok("docker run --rm --network inner busybox ip route | grep -c default || true")
        .out_is("0");
    n.fails("docker run --rm --network inner busybox sh -c \"ping -c1 -W2 $(hostname -I | cut -d' ' -f1)\"");
    // Outside an internal network, containers reach the node's address.
    n.ok("docker run --rm busybox ping -c1 -W2 $(hostname -I | cut -d' ' -f1)");

    // none: loopback only. host: the node's own network and name. container: shared.
    n.ok("docker run --rm --network none busybox sh -c 'ls /sys/class/net | tr \"\\n\" \" \"'")
        .out_is("lo");
    n.ok("docker run --rm --network host busybox hostname").out_is("node1");
    n.ok("docker run --rm --network host busybox ip -4 -o addr")
        .has(n.ok("hostname -I | cut -d' ' -f1").out());
    n.ok("docker run -d --name netowner busybox sleep 300");
    n.ok("a=$(docker exec netowner ip -4 -o addr show eth0 | awk '{print $4}'); b=$(docker run --rm --network container:netowner busybox ip -4 -o addr show eth0 | awk '{print $4}'); [ \"$a\" = \"$b\" ]");

    let prune = n.ok("docker network prune -f");
    prune.has("Deleted Networks:").has("ipamnet");
    n.ok("docker network ls --format '{{.Name}}' | sort | tr '\\n' ' '")
        .out_is("bridge host inner none");
}

#[test]
fn published_ports() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok("docker run -d --name web -p 8080:80 nginx >/dev/null");
    n.ok("wait_for 30 curl -sf localhost:8080");
    n.ok("curl -s localhost:8080").has("Welcome to nginx!");
    n.ok("curl -s $(hostname -I | cut -d' ' -f1):8080")
        .has("Welcome to nginx!");
    n.ok("docker port web").has("80/tcp -> 0.0.0.0:8080");
    n.ok("docker port web 80/tcp | head -1").out_is("0.0.0.0:8080");
    n.ok("docker ps --format '{{.Ports}}'").has("0.0.0.0:8080->80/tcp");
    n.ok("docker inspect -f '{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}}' web")
        .out_is("8080");
    // The same port twice: Docker's error.
    let r = n.run("docker run -d -p 8080:80 nginx");
    r.code_is(125).err_has("port is already allocated");
    // -P publishes the image's EXPOSE on a free port.
    n.ok("docker run -d --name anyport -P nginx >/dev/null");
    let port = n.ok("docker port anyport 80 | head -1 | cut -d: -f2");
    let p: u16 = port.out().parse().expect("a port number");
    assert!(p >= 1024, "{port}");
    n.ok(&format!("wait_for 30 curl -sf localhost:{p}"));
    // On 127.0.0.1 only: the node's loopback answers, its address does not.
    n.ok("docker run -d --name local -p 127.0.0.1:8081:80 nginx >/dev/null");
    n.ok("wait_for 30 curl -sf 127.0.0.1:8081");
    n.fails("curl -s -m 2 $(hostname -I | cut -d' ' -f1):8081");
    // Stopping the container frees the port.
    n.ok("docker stop -t 1 local >/dev/null");
    n.fails("curl -s -m 2 127.0.0.1:8081");
    // Through the playground's port link, from the host.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = pg
            .http()
            .get(format!("{}/pg/{}/node1/8080/", pg.url(), pg.id))
            .bearer_auth(pg.token())
            .send()
            .unwrap();
        let status = r.status();
        let body = r.text().unwrap_or_default();
        if status == 200 && body.contains("Welcome to nginx!") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the port link did not reach nginx: {status} {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

// ---------------------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------------------

#[test]
fn images_pull_list_tag_inspect_history_rmi() {
    let pg = Playground::new(1);
    let n = pg.node1();
    let pull = n.ok("docker pull busybox");
    pull.has("Using default tag: latest")
        .has("latest: Pulling from library/busybox")
        .has("Digest: sha256:")
        .has("Status: Downloaded newer image for busybox:latest")
        .has("docker.io/library/busybox:latest");
    n.ok("docker pull busybox")
        .has("Status: Image is up to date for busybox:latest");
    n.ok("docker pull redis:8 | tail -1")
        .out_is("docker.io/library/redis:8");
    n.run("docker pull no-such-image-anywhere:1")
        .code_is(1)
        .err_has("Error response from daemon");

    let images = n.ok("docker images");
    assert_eq!(
        images.lines()[0].split_whitespace().collect::<Vec<_>>(),
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"],
        "{images}"
    );
    n.ok("docker images --format '{{.Repository}}:{{.Tag}}' | sort | tr '\\n' ' '")
        .out_is("busybox:latest redis:8");
    n.ok("docker images -q | head -1 | grep -E '^[0-9a-f]{12}$'");
    n.ok("docker images --filter reference='bus*' --format '{{.Repository}}'")
        .out_is("busybox");
    n.ok("docker images redis --format '{{.Tag}}'").out_is("8");
    n.ok("docker image ls --format '{{json .}}' | head -1 | jq -e '.ID and .Size and .CreatedSince'");

    n.ok("docker image inspect -f '{{.Os}}/{{.Architecture}} {{json .Config.Cmd}} {{json .RepoTags}}' busybox")
        .out_is(r#"linux/amd64 ["sh"] ["busybox:latest"]"#);
    n.ok("docker image inspect busybox | jq -e '.[0].Id | startswith(\"sha256:\")'");
    n.ok("docker image inspect busybox | jq -e '.[0].RootFS.Layers | length >= 1'");
    n.ok("docker image inspect -f '{{json .Config.Volumes}} {{json .Config.ExposedPorts}}' redis:8")
        .out_is(r#"{"/data":{}} {"6379/tcp":{}}"#);
    let history = n.ok("docker history busybox");
    assert_eq!(
        history.lines()[0].split_whitespace().collect::<Vec<_>>(),
        ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"],
        "{history}"
    );
    assert!(history.lines().len() >= 2, "{history}");

    n.ok("docker tag busybox mybox:v1 && docker tag busybox:latest registry.local/me/box:2");
    n.ok("[ $(docker image inspect -f '{{.Id}}' mybox:v1) = $(docker image inspect -f '{{.Id}}' busybox) ]");
    n.ok("docker images --format '{{.Repository}}:{{.Tag}}' | sort | tr '\\n' ' '")
        .out_is("busybox:latest mybox:v1 redis:8 registry.local/me/box:2");
    n.ok("docker rmi mybox:v1").out_is("Untagged: mybox:v1");
    n.ok("docker rmi registry.local/me/box:2")
        .out_is("Untagged: registry.local/me/box:2");
    n.run("docker rmi nosuch:1")
        .code_is(1)
        .err_has("No such image: nosuch:1");

    // A container (even stopped) keeps its image's last tag from going.
    n.ok("mkdir -p /root/solo && cd /root/solo && printf 'FROM busybox\\nRUN echo solo > /solo\\n' > Dockerfile && docker build -q -t solo:1 . >/dev/null");
    n.ok("docker create --name user busybox true && docker create --name solo-user solo:1 true");
    let r = n.run("docker rmi solo:1");
    r.code_is(1)
        .err_has("conflict: unable to remove repository reference \"solo:1\" (must force) - container ")
        .err_has(" is using its referenced image ");
    let r = n.run("docker rmi $(docker image inspect -f '{{.Id}}' busybox)");
    r.code_is(1).err_has("conflict: unable to delete");
    n.ok("docker rm solo-user >/dev/null && docker rmi solo:1")
        .has("Untagged: solo:1")
        .has("Deleted: sha256:");
}

#[test]
fn images_save_load_commit_and_prune() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok("docker pull -q busybox >/dev/null && docker tag busybox saved:1");
    n.ok("cd /root && docker save -o saved.tar saved:1 && tar -tf saved.tar | grep -x manifest.json");
    n.ok("docker rmi saved:1 >/dev/null");
    n.ok("docker load -i /root/saved.tar").has("Loaded image: saved:1");
    n.ok("docker run --rm saved:1 echo loaded").out_is("loaded");
    // Through a pipe, several images at once.
    n.ok("docker tag busybox other:2 && docker save saved:1 other:2 | gzip > /root/two.tgz && docker rmi saved:1 other:2 >/dev/null");
    n.ok("docker load < /root/two.tgz | sort")
        .out_is("Loaded image: other:2\nLoaded image: saved:1");

    n.ok("docker run --name cm busybox sh -c 'echo committed > /c'");
    let id = n.ok("docker commit -c 'ENV FROM_COMMIT=yes' -m 'a message' cm cmimg:1");
    assert!(id.out().starts_with("sha256:") && id.out().len() == 71, "{id}");
    n.ok("docker run --rm cmimg:1 sh -c 'cat /c; echo $FROM_COMMIT'")
        .out_is("committed\nyes");
    n.ok("docker history --format '{{.Comment}}' cmimg:1 | head -1")
        .out_is("a message");

    n.ok("docker rm cm");
    // Re-tagging leaves a dangling image, which prune removes (and only it).
    n.ok(r#"
mkdir -p /root/dang && cd /root/dang
printf 'FROM busybox\nRUN echo one > /v\n' > Dockerfile && docker build -q -t dang:1 . > old.id
printf 'FROM busybox\nRUN echo two > /v\n' > Dockerfile && docker build -q -t dang:1 . > new.id
[ "$(cat old.id)" != "$(cat new.id)" ]
docker images --filter dangling=true -q --no-trunc | grep -x "$(cat old.id)"
"#);
    let prune = n.ok("docker image prune -f");
    prune.has("Deleted Images:").has("Total reclaimed space:");
    n.ok("docker images --filter dangling=true -q").out_is("");
    n.ok("docker run --rm dang:1 cat /v").out_is("two");
    // -a removes every image no container uses.
    n.ok("docker image prune -af >/dev/null; docker images -q").out_is("");
}

#[test]
fn build_with_dockerignore_args_cache_and_ids() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok(r#"
mkdir -p /root/site && cd /root/site
cat > Dockerfile <<'EOF'
FROM busybox
ARG GREETING=hello
ENV GREETING=$GREETING
LABEL maker=tests
WORKDIR /app
COPY . /app/
RUN echo "built with $GREETING" > /built
EXPOSE 8000
CMD ["sh", "-c", "cat /built"]
EOF
printf 'secret.txt\n*.log\nnode_modules\n' > .dockerignore
echo public > index.html
echo hidden > secret.txt
echo noise > debug.log
mkdir -p node_modules && echo big > node_modules/pkg
"#);
    let build = n.ok("cd /root/site && docker build -t site:1 --build-arg GREETING=bonjour .");
    build
        .has("Step 1/9 : FROM busybox")
        .has("Step 2/9 : ARG GREETING=hello")
        .has("Successfully built ")
        .has("Successfully tagged site:1");
    n.ok("docker run --rm site:1").out_is("built with bonjour");
    n.ok("docker run --rm site:1 ls -A /app | sort | tr '\\n' ' '")
        .out_is(".dockerignore Dockerfile index.html");
    n.ok("docker image inspect -f '{{.Config.WorkingDir}} {{.Config.Labels.maker}} {{json .Config.ExposedPorts}}' site:1")
        .out_is(r#"/app tests {"8000/tcp":{}}"#);
    n.ok("docker history site:1 --no-trunc --format '{{.CreatedBy}}'")
        .has("built with $GREETING");

    // The same build again: every step from the cache, the same image.
    let again = n.ok("cd /root/site && docker build -t site:1 --build-arg GREETING=bonjour .");
    again.has("Using cache");
    let first_id = build
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .unwrap();
    again.has(&format!("Successfully built {first_id}"));
    // A changed file invalidates COPY and what follows; a changed ignored file does not.
    let changed =
        n.ok("cd /root/site && echo v2 > index.html && docker build -q -t site:2 --build-arg GREETING=bonjour .");
    assert!(!first_id.is_empty() && !changed.out().contains(first_id), "{changed}");
    n.ok("cd /root/site && echo more > secret.txt && docker build -q -t site:3 --build-arg GREETING=bonjour .")
        .out_is(changed.out());

    // -q prints the ID only; --iidfile writes it.
    let q = n.ok("cd /root/site && docker build -q -t site:q --build-arg GREETING=quiet .");
    assert!(q.out().starts_with("sha256:") && q.lines().len() == 1, "{q}");
    n.ok("cd /root/site && docker build -q --iidfile /root/iid -t site:iid . >/dev/null && [ \"$(cat /root/iid)\" = \"$(docker image inspect -f '{{.Id}}' site:iid)\" ]");
    // -f names another Dockerfile; a failing RUN fails the build with its exit code.
    n.ok("cd /root/site && printf 'FROM busybox\\nCMD [\"echo\", \"alt\"]\\n' > Alt.dockerfile && docker build -q -f Alt.dockerfile -t alt . >/dev/null && docker run --rm alt")
        .out_is("alt");
    let r = n.run(
        "cd /root/site && printf 'FROM busybox\\nRUN exit 3\\n' > Bad.dockerfile && docker build -f Bad.dockerfile .",
    );
    r.code_is(1).err_has("returned a non-zero code: 3");
}

// ---------------------------------------------------------------------------------------
// Compose
// ---------------------------------------------------------------------------------------

/// Three services: a one-shot init job writing into a named volume, redis with a
/// healthcheck, and a busybox httpd serving the volume once both are done; two networks;
/// `.env` interpolation and an env_file.
const STACK: &str = r#"
mkdir -p /root/stack && cd /root/stack
cat > compose.yaml <<'EOF'
services:
  cache:
    image: redis:8
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
      interval: 1s
      timeout: 3s
      retries: 30
    networks: [back]
    volumes:
      - cachedata:/data
  init:
    image: busybox
    command: ["sh", "-c", "echo seeded-$$SEED > /data/seed && echo init-done"]
    environment:
      SEED: ${SEED}
    volumes:
      - appdata:/data
    depends_on:
      cache:
        condition: service_started
  web:
    image: busybox
    command: ["httpd", "-f", "-v", "-p", "80", "-h", "/data"]
    environment:
      GREETING: ${GREETING:-unset}
    env_file: [app.env]
    ports:
      - "80"
    volumes:
      - appdata:/data
    networks: [front, back]
    depends_on:
      init:
        condition: service_completed_successfully
      cache:
        condition: service_healthy
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://localhost/seed"]
      interval: 1s
      retries: 30
networks:
  front: {}
  back: {}
volumes:
  appdata: {}
  cachedata: {}
EOF
printf 'GREETING=hi-from-dotenv\nSEED=42\n' > .env
printf 'APP_MODE=test\n' > app.env
"#;

#[test]
fn compose_stack_up_ps_logs_exec_run_down() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok(STACK);
    let cfg = n.ok("cd /root/stack && docker compose config");
    cfg.has("GREETING: hi-from-dotenv")
        .has("SEED: \"42\"")
        .has("APP_MODE: test");
    n.ok("cd /root/stack && docker compose config --services | sort | tr '\\n' ' '")
        .out_is("cache init web");
    n.ok("cd /root/stack && docker compose pull 2>&1").has("Pulled");

    n.ok("cd /root/stack && docker compose up -d");
    // What compose made, with its names.
    n.ok("docker ps -a --format '{{.Names}}' | sort | tr '\\n' ' '")
        .out_is("stack-cache-1 stack-init-1 stack-web-1");
    // init names no network: it is on the project's default one.
    n.ok("docker network ls --format '{{.Name}}' | grep ^stack_ | sort | tr '\\n' ' '")
        .out_is("stack_back stack_default stack_front");
    n.ok("docker volume ls -q | grep ^stack_ | sort | tr '\\n' ' '")
        .out_is("stack_appdata stack_cachedata");
    // depends_on: init ran to completion before web started, after cache started; web
    // started once cache was healthy.
    n.ok("docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' stack-init-1")
        .out_is("exited 0");
    n.ok(r#"
t() { docker inspect -f "$1" "$2" | xargs -I{} date -d {} +%s%N; }
[ "$(t '{{.State.StartedAt}}' stack-cache-1)" -le "$(t '{{.State.StartedAt}}' stack-init-1)" ]
[ "$(t '{{.State.FinishedAt}}' stack-init-1)" -le "$(t '{{.State.StartedAt}}' stack-web-1)" ]
"#);
    n.ok("docker inspect -f '{{.State.Health.Status}}' stack-cache-1")
        .out_is("healthy");
    let ps = n.ok("cd /root/stack && docker compose ps --format '{{.Service}} {{.State}}' | sort");
    assert_eq!(ps.out(), "cache running\nweb running", "{ps}");
    n.ok("cd /root/stack && docker compose ps -a --format '{{.Service}} {{.State}}' | sort")
        .out_is("cache running\ninit exited\nweb running");
    n.ok("cd /root/stack && docker compose ps")
        .has("NAME")
        .has("stack-web-1");
    // The published port, the volume's data, the env.
    let port = n.ok("cd /root/stack && docker compose port web 80");
    assert!(port.out().starts_with("0.0.0.0:"), "{port}");
    n.ok(&format!(
        "wait_for 20 curl -sf localhost:{0}/seed && curl -s localhost:{0}/seed",
        port.out().trim_start_matches("0.0.0.0:")
    ))
    .out_is("seeded-42");
    n.ok("cd /root/stack && docker compose exec -T web env | grep -E '^(GREETING|APP_MODE)=' | sort")
        .out_is("APP_MODE=test\nGREETING=hi-from-dotenv");
    n.ok("cd /root/stack && docker compose exec -T cache redis-cli ping")
        .out_is("PONG");
    n.run("cd /root/stack && docker compose exec -T web sh -c 'exit 6'")
        .code_is(6);
    // Service names resolve on the project's networks: web reaches cache by name.
    n.ok("cd /root/stack && docker compose exec -T web ping -c1 -W2 cache");
    n.ok("cd /root/stack && docker compose logs init").has("init-done");
    n.ok("cd /root/stack && docker compose logs --no-log-prefix init")
        .has("init-done");
    // compose starts each line with an erase-line escape of its own, even into a pipe.
    n.ok("cd /root/stack && docker compose logs init | grep -E 'init-1 +\\| init-done$'");
    // logs -f streams: redis logs a SAVE as it happens.
    n.ok(r#"
cd /root/stack
docker compose logs -f cache > /root/cache.follow 2>&1 &
follower=$!
wait_for 20 grep -q 'Ready to accept connections' /root/cache.follow
! grep -q 'DB saved on disk' /root/cache.follow
docker compose exec -T cache redis-cli save
wait_for 20 grep -q 'DB saved on disk' /root/cache.follow
kill $follower
"#);
    let top = n.ok("cd /root/stack && docker compose top");
    top.has("stack-web-1")
        .has("httpd")
        .has("stack-cache-1")
        .has("redis-server");
    // run --rm: a one-off container on the project's network and volume, removed after.
    n.ok("cd /root/stack && docker compose run --rm --no-deps web cat /data/seed")
        .out_is("seeded-42");
    n.ok("docker ps -a --format '{{.Names}}' | grep -c run || true")
        .out_is("0");

    // restart, stop, start.
    n.ok(r#"
cd /root/stack
before=$(docker inspect -f '{{.State.StartedAt}}' stack-web-1)
docker compose restart web
after=$(docker inspect -f '{{.State.StartedAt}}' stack-web-1)
[ "$before" != "$after" ]
docker compose stop
[ -z "$(docker ps -q)" ]
docker compose start
wait_for 30 sh -c '[ "$(docker compose ps --format "{{.Service}}" | sort | tr "\n" " ")" = "cache web " ]'
"#);

    // down -v: containers, networks and volumes go; the images stay.
    n.ok("cd /root/stack && docker compose down -v");
    n.ok("docker ps -aq").out_is("");
    n.ok("docker network ls --format '{{.Name}}' | grep -c ^stack_ || true")
        .out_is("0");
    n.ok("docker volume ls -q").out_is("");
    n.ok("docker images --format '{{.Repository}}' | sort -u | tr '\\n' ' '")
        .out_is("busybox redis");
}

#[test]
fn compose_scale_recreate_build_and_v1_spelling() {
    let pg = Playground::new(1);
    let n = pg.node1();
    n.ok(STACK);
    n.ok("cd /root/stack && docker compose up -d --quiet-pull");
    // Recreation on a config change: only the changed service.
    let ids = n.ok("docker inspect -f '{{.Name}} {{.Id}}' stack-cache-1 stack-web-1");
    n.ok("cd /root/stack && sed -i 's/hi-from-dotenv/changed/' .env");
    let up = n.ok("cd /root/stack && docker compose up -d 2>&1");
    up.has("Recreate");
    let after = n.ok("docker inspect -f '{{.Name}} {{.Id}}' stack-cache-1 stack-web-1");
    assert_eq!(ids.lines()[0], after.lines()[0], "cache was recreated\n{up}");
    assert_ne!(ids.lines()[1], after.lines()[1], "web was not recreated\n{up}");
    n.ok("docker exec stack-web-1 sh -c 'echo $GREETING'").out_is("changed");
    n.ok("docker inspect -f '{{index .Config.Labels \"com.docker.compose.service\"}} {{index .Config.Labels \"com.docker.compose.project\"}} {{index .Config.Labels \"com.docker.compose.container-number\"}}' stack-web-1")
        .out_is("web stack 1");
    // Nothing changed: nothing recreated.
    let still = n.ok("cd /root/stack && docker compose up -d 2>&1");
    still.lacks("Recreate");

    // Three replicas behind one name.
    n.ok("cd /root/stack && docker compose up -d --scale web=3");
    n.ok("cd /root/stack && docker compose ps --format '{{.Name}}' web | sort | tr '\\n' ' '")
        .out_is("stack-web-1 stack-web-2 stack-web-3");
    n.ok("cd /root/stack && docker compose exec -T cache getent ahostsv4 web | awk '{print $1}' | sort -u | wc -l")
        .out_is("3");
    n.ok("{ docker run --rm --network stack_front busybox nslookup -type=a web || true; } | sed -n '/^Name:/,$p' | grep -c '^Address'")
        .out_is("3");
    // Each replica answers on its own published port.
    n.ok(r#"
cd /root/stack
for i in 1 2 3; do
  p=$(docker compose port --index $i web 80 | cut -d: -f2)
  wait_for 20 curl -sf localhost:$p/seed
done
"#);

    // The standalone spelling drives the same engine.
    n.ok("cd /root/stack && docker-compose ps --format '{{.Service}}' | sort | uniq -c | awk '{print $1 $2}' | tr '\\n' ' '")
        .out_is("1cache 3web");
    n.ok("cd /root/stack && docker-compose logs init").has("init-done");
    n.ok("cd /root/stack && docker-compose down -v");
    n.ok("docker ps -aq; docker volume ls -q; docker network ls -q --filter name=stack_")
        .out_is("");

    // build: a service with a build context, built with the classic builder.
    n.ok(r#"
mkdir -p /root/built/app && cd /root/built
printf 'FROM busybox\nARG WORD=plain\nRUN echo "$WORD" > /word\nCMD ["cat", "/word"]\n' > app/Dockerfile
cat > compose.yaml <<'EOF'
services:
  app:
    build:
      context: ./app
      args:
        WORD: from-compose
EOF
docker compose build
docker images --format '{{.Repository}}' | grep -x built-app
docker compose up -d
docker wait built-app-1
docker compose logs --no-log-prefix app
"#)
        .has("from-compose");
    n.ok("cd /root/built && docker compose down && docker ps -aq")
        .out_is("");
}

// ---------------------------------------------------------------------------------------
// Tenancy
// ---------------------------------------------------------------------------------------

#[test]
fn one_node_never_sees_another_nodes_objects() {
    let pg = Playground::new(2);
    let (n1, n2) = (pg.node("node1"), pg.node("node2"));
    let id = n1.ok("docker run -d --name only-on-1 -v vol1:/v busybox sleep 300");
    let id = id.out().to_string();
    n1.ok("docker network create net1 >/dev/null");
    n2.ok("docker ps -aq").out_is("");
    n2.ok("docker volume ls -q").out_is("");
    n2.ok("docker network ls --format '{{.Name}}' | sort | tr '\\n' ' '")
        .out_is("bridge host none");
    n2.run(&format!("docker inspect {id}"))
        .code_is(1)
        .err_has(&format!("Error: No such object: {id}"));
    // The daemon answers 404 as for any missing container; with -f the CLI 26 reports it
    // and still exits 0.
    n2.run("docker rm -f only-on-1").err_has("No such container: only-on-1");
    n2.run(&format!("docker logs {}", &id[..12]))
        .code_is(1)
        .err_has("No such container");
    n2.run("docker volume rm vol1").code_is(1);
    n2.run("docker network rm net1").code_is(1);
    // The same name on node2 is free.
    n2.ok("docker run -d --name only-on-1 busybox sleep 300 >/dev/null");
    n1.ok("docker ps -q --no-trunc").out_is(&id);
    n1.ok("docker exec only-on-1 true");

    // The same from the host, through each node's docker_host.
    let (code, out, err) = host_docker_run(
        &n1.docker_host,
        &["ps", "-q", "--no-trunc", "--filter", "name=only-on-1"],
    );
    assert_eq!((code, out.trim()), (0, id.as_str()), "{err}");
    let (code, _, err) = host_docker_run(&n2.docker_host, &["inspect", &id]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("No such object: {id}")), "{err}");
    let (code, out, err) = host_docker_run(&n2.docker_host, &["volume", "ls", "-q"]);
    assert_eq!((code, out.trim()), (0, ""), "{err}");
    // The container keeps running on node1 whatever node2 asked.
    n1.ok("docker inspect -f '{{.State.Running}}' only-on-1").out_is("true");
}
