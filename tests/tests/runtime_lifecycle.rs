//! The runtime's library API, as the server uses it: containers run by their monitors,
//! created, started, attached (with and without a terminal, several readers at once),
//! exec'd into, resized, stopped, waited for (with the OOM flag), paused, measured,
//! listed, and found again by a new owner after the old one is killed.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;
use slipway_e2e::bundle::Bundle;
use slipway_e2e::slipway_bin;
use slipway_runtime::monitor::client::{Containers, CreateOptions, Output, OutputStream};
use slipway_runtime::state::Status;

fn containers(b: &Bundle) -> Containers {
    Containers::new(&b.state_root(), &slipway_bin()).expect("containers")
}

fn options(b: &Bundle, id: &str) -> CreateOptions {
    CreateOptions {
        spec: b.oci_spec(id),
        bundle: b.path().to_path_buf(),
        overlay: None,
        open_stdin: false,
        init: false,
        log_path: b.path().join(format!("{id}.log")),
        log_max_size: None,
        log_max_files: None,
    }
}

/// Everything on a stream until its exit frame: (stdout, stderr, exit code).
async fn collect(out: &mut OutputStream) -> (String, String, i32) {
    let (mut o, mut e) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let next = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), out.next())
            .await
            .expect("output in time");
        match next.unwrap() {
            Some(Output::Stdout(d)) => o.extend(d),
            Some(Output::Stderr(d)) => e.extend(d),
            Some(Output::Exit(x)) => {
                return (
                    String::from_utf8_lossy(&o).into(),
                    String::from_utf8_lossy(&e).into(),
                    x.code,
                );
            }
            Some(Output::Error(m)) => panic!("error frame: {m}"),
            None => {
                return (
                    String::from_utf8_lossy(&o).into(),
                    String::from_utf8_lossy(&e).into(),
                    -1,
                );
            }
        }
    }
}

/// Reads output until `needle` appears; returns all of it.
async fn read_until(out: &mut OutputStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let next = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), out.next())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in {:?}", String::from_utf8_lossy(&seen)));
        match next.unwrap() {
            Some(Output::Stdout(d)) | Some(Output::Stderr(d)) => seen.extend(d),
            other => panic!(
                "stream ended before {needle:?}: {other:?} after {:?}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
    String::from_utf8_lossy(&seen).into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_several_readers_logs_and_wait() {
    let b = Bundle::new(&["/bin/sh", "-c", "read line; echo got $line; echo to-stderr >&2; exit 3"]);
    let c = containers(&b);
    let id = b.new_id();
    let mut opts = options(&b, &id);
    opts.open_stdin = true;
    let log = opts.log_path.clone();
    let info = c.create(&id, opts).await.unwrap();
    assert_eq!(info.status, Status::Created);
    let mut first = c.attach(&id, true, true, true).await.unwrap();
    let mut second = c.attach(&id, false, true, true).await.unwrap();
    assert!(!first.tty);
    c.start(&id).await.unwrap();
    first.input.write(b"hello\n").await.unwrap();
    first.input.close_stdin().await.unwrap();
    let (out1, err1, code1) = collect(&mut first.output).await;
    let (out2, err2, code2) = collect(&mut second.output).await;
    assert_eq!((out1.as_str(), err1.as_str(), code1), ("got hello\n", "to-stderr\n", 3));
    assert_eq!((out2, err2, code2), (out1, err1, 3), "every reader sees the same");
    let exit = c.wait(&id).await.unwrap();
    assert_eq!(exit.code, 3);
    assert!(!exit.oom_killed);
    assert_eq!(c.info(&id).unwrap().status, Status::Stopped);
    // The logs hold both streams, with timestamps.
    let entries = slipway_runtime::logs::read(&log, &Default::default()).unwrap();
    let text: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                e.stream.as_str().to_string(),
                String::from_utf8_lossy(&e.bytes).into_owned(),
            )
        })
        .collect();
    assert!(text.contains(&("stdout".into(), "got hello\n".into())), "{text:?}");
    assert!(text.contains(&("stderr".into(), "to-stderr\n".into())), "{text:?}");
    c.delete(&id, false).await.unwrap();
    assert!(c.info(&id).is_err(), "deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_container_resizes_and_echoes() {
    let mut b = Bundle::new(&["/bin/sh"]);
    b.spec["process"]["terminal"] = json!(true);
    let c = containers(&b);
    let id = b.new_id();
    c.create(&id, options(&b, &id)).await.unwrap();
    let mut s = c.attach(&id, true, true, true).await.unwrap();
    assert!(s.tty);
    c.start(&id).await.unwrap();
    c.resize(&id, 37, 111).await.unwrap();
    s.input.write(b"stty size; tty; echo MARK-$((6*7))\n").await.unwrap();
    let out = read_until(&mut s.output, "MARK-42").await;
    assert!(out.contains("37 111"), "{out}");
    assert!(out.contains("/dev/console") || out.contains("/dev/pts/0"), "{out}");
    s.input.write(b"exit 5\n").await.unwrap();
    assert_eq!(c.wait(&id).await.unwrap().code, 5);
    c.delete(&id, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_and_without_a_terminal() {
    let b = Bundle::new(&["/bin/sleep", "600"]);
    let c = containers(&b);
    let id = b.new_id();
    c.create(&id, options(&b, &id)).await.unwrap();
    c.start(&id).await.unwrap();
    let process = |args: &[&str], tty: bool| -> oci_spec::runtime::Process {
        let mut p = b.oci_spec(&id).process().clone().unwrap();
        p.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
        p.set_terminal(Some(tty));
        p
    };
    let mut s = c
        .exec(
            &id,
            "e1",
            process(
                &[
                    "/bin/sh",
                    "-c",
                    "probe status | grep -E '^(Seccomp|CapEff):'; echo oops >&2; exit 4",
                ],
                false,
            ),
        )
        .await
        .unwrap();
    let (out, err, code) = collect(&mut s.output).await;
    assert_eq!(code, 4);
    assert!(
        out.contains("Seccomp:\t2") && out.contains("00000000a80425fb"),
        "exec'd processes get the container's confinement:\n{out}"
    );
    assert_eq!(err, "oops\n");
    let mut s = c.exec(&id, "e2", process(&["/bin/sh"], true)).await.unwrap();
    assert!(s.tty);
    c.exec_resize(&id, "e2", 20, 77).await.unwrap();
    s.input
        .write(b"stty size; readlink /proc/1/exe; echo DONE-$((1+1)); exit 9\n")
        .await
        .unwrap();
    let all = read_until(&mut s.output, "DONE-2").await;
    assert!(all.contains("20 77"), "{all}");
    assert!(all.contains("busybox"), "PID 1 is the container's own process: {all}");
    let (_, _, code) = collect(&mut s.output).await;
    assert_eq!(code, 9);
    // The exec ran inside the container's cgroup, then left it.
    assert_eq!(c.top(&id).unwrap().len(), 1, "{:?}", c.top(&id).unwrap());
    // Stopping: PID 1 ignores SIGTERM (no handler), so the timeout ends in SIGKILL.
    let started = Instant::now();
    let exit = c.stop(&id, Signal::SIGTERM, Duration::from_millis(500)).await.unwrap();
    assert_eq!(exit.code, 137);
    assert!(started.elapsed() >= Duration::from_millis(450));
    assert!(
        c.exec(&id, "e3", process(&["/bin/true"], false)).await.is_err(),
        "no exec into a stopped container"
    );
    c.delete(&id, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stats_top_and_the_oom_flag() {
    let b = Bundle::new(&["/bin/sh", "-c", "while true; do echo tick; sleep 0.1; done"]);
    let c = containers(&b);
    let id = b.new_id();
    let opts = options(&b, &id);
    let log = opts.log_path.clone();
    c.create(&id, opts).await.unwrap();
    c.start(&id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stats = c.stats(&id).unwrap();
    let stats_json = serde_json::to_value(&stats).unwrap();
    assert!(stats_json.to_string().contains("usage"), "{stats_json}");
    let top = c.top(&id).unwrap();
    assert!(top.iter().any(|p| p.command.contains("/bin/sh")), "{top:?}");
    c.pause(&id).unwrap();
    assert_eq!(c.info(&id).unwrap().status, Status::Paused);
    let count = |log: &std::path::Path| slipway_runtime::logs::read(log, &Default::default()).unwrap().len();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let frozen = count(&log);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&log), frozen, "nothing runs while paused");
    c.resume(&id).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(count(&log) > frozen, "it runs again");
    c.delete(&id, true).await.unwrap();

    // The OOM flag.
    let mut b = Bundle::new(&["/bin/probe", "membomb"]);
    b.spec["linux"]["resources"]["memory"] = json!({ "limit": 32 << 20, "swap": 32 << 20 });
    let c = containers(&b);
    let id = b.new_id();
    c.create(&id, options(&b, &id)).await.unwrap();
    c.start(&id).await.unwrap();
    let exit = c.wait(&id).await.unwrap();
    assert_eq!(exit.code, 137);
    assert!(exit.oom_killed, "the OOM killer is reported");
    c.delete(&id, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_reaps_and_forwards_signals() {
    let b = Bundle::new(&["/bin/sh", "-c", "sleep 300 & wait"]);
    let c = containers(&b);
    let id = b.new_id();
    let mut opts = options(&b, &id);
    opts.init = true;
    c.create(&id, opts).await.unwrap();
    c.start(&id).await.unwrap();
    let process = {
        let mut p = b.oci_spec(&id).process().clone().unwrap();
        p.set_args(Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "readlink /proc/1/exe; cat /proc/1/cmdline | head -c 11".into(),
        ]));
        p
    };
    let mut s = c.exec(&id, "look", process).await.unwrap();
    let (out, _, _) = collect(&mut s.output).await;
    assert!(
        out.starts_with("/memfd:docker-init"),
        "PID 1 is the sealed tiny init, not a host file: {out}"
    );
    assert!(out.contains("docker-init"));
    // tini passes SIGTERM on to the shell, which is not PID 1 and dies of it.
    let exit = c.stop(&id, Signal::SIGTERM, Duration::from_secs(5)).await.unwrap();
    assert_eq!(exit.code, 143, "terminated by the forwarded SIGTERM");
    c.delete(&id, false).await.unwrap();
}

/// The escape of CVE-2019-5736 needs a runtime process in the container to reach: while
/// execs come and go, a watcher inside scans every /proc/PID/exe it can see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_never_exposes_the_runtime_binary() {
    let watcher = "end=$(( $(date +%s) + 3 )); while [ $(date +%s) -lt $end ]; do for p in /proc/[0-9]*; do l=$(readlink $p/exe 2>/dev/null) && case $l in *slipway*) echo SEEN $l; echo x 2>/dev/null > $p/exe && echo WROTE;; esac; done; done; echo watched";
    let b = Bundle::new(&["/bin/sh", "-c", watcher]);
    let c = containers(&b);
    let id = b.new_id();
    c.create(&id, options(&b, &id)).await.unwrap();
    let mut watch = c.attach(&id, false, true, true).await.unwrap();
    c.start(&id).await.unwrap();
    let mut n = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        let mut p = b.oci_spec(&id).process().clone().unwrap();
        p.set_args(Some(vec!["/bin/true".into()]));
        if let Ok(mut s) = c.exec(&id, &format!("x{n}"), p).await {
            let _ = collect(&mut s.output).await;
            n += 1;
        }
    }
    let (out, _, code) = collect(&mut watch.output).await;
    assert!(n >= 10, "{n} execs");
    assert_eq!(code, 0);
    assert!(
        !out.contains("SEEN"),
        "a runtime process was visible in the container:\n{out}"
    );
    assert!(out.contains("watched"));
    c.delete(&id, false).await.unwrap();
}

const OWNER_ENV: &str = "SLIPWAY_TEST_OWNER_ROOT";

/// Run as a separate process by `a_new_owner_finds_running_containers`: creates two
/// containers, then is killed (it never exits on its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_process() {
    let Ok(spec_dir) = std::env::var(OWNER_ENV) else { return };
    let dir = std::path::PathBuf::from(spec_dir);
    let root = dir.join("state");
    let c = Containers::new(&root, &slipway_bin()).unwrap();
    for (id, tty) in [("owned-tty", true), ("owned-pipe", false)] {
        let spec: oci_spec::runtime::Spec =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{id}.json"))).unwrap()).unwrap();
        let opts = CreateOptions {
            spec,
            bundle: dir.clone(),
            overlay: None,
            open_stdin: true,
            init: false,
            log_path: dir.join(format!("{id}.log")),
            log_max_size: None,
            log_max_files: None,
        };
        c.create(id, opts).await.unwrap();
        c.start(id).await.unwrap();
        let _ = tty;
    }
    std::fs::write(dir.join("owner-ready"), "").unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_owner_finds_running_containers() {
    let mut b = Bundle::new(&["/bin/sh"]);
    b.spec["process"]["terminal"] = json!(true);
    let tty_spec = b.oci_spec("owned-tty");
    b.spec["process"]["terminal"] = json!(false);
    b.set_args(&[
        "/bin/sh",
        "-c",
        "while read l; do echo echo:$l; [ $l = quit ] && exit 6; done",
    ]);
    let pipe_spec = b.oci_spec("owned-pipe");
    std::fs::write(b.path().join("owned-tty.json"), serde_json::to_vec(&tty_spec).unwrap()).unwrap();
    std::fs::write(
        b.path().join("owned-pipe.json"),
        serde_json::to_vec(&pipe_spec).unwrap(),
    )
    .unwrap();

    // The first owner: this test binary again, in owner mode, killed once it is ready.
    let mut owner = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "owner_process", "--nocapture"])
        .env(OWNER_ENV, b.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = b.path().join("owner-ready");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the owner did not start its containers");
        assert!(owner.try_wait().unwrap().is_none(), "the owner died");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    owner.kill().unwrap();
    owner.wait().unwrap();

    // A new owner over the same state root.
    let c = containers(&b);
    let mut ids: Vec<String> = c.list().into_iter().map(|i| i.id).collect();
    ids.sort();
    assert_eq!(ids, ["owned-pipe", "owned-tty"]);
    for id in &ids {
        let info = c.info(id).unwrap();
        assert_eq!(info.status, Status::Running, "{id} survived its owner");
        assert!(info.monitored);
    }
    // Its terminal still works.
    let mut t = c.attach("owned-tty", true, true, true).await.unwrap();
    t.input.write(b"echo STILL-$((20+22))\n").await.unwrap();
    read_until(&mut t.output, "STILL-42").await;
    t.input.write(b"exit 2\n").await.unwrap();
    assert_eq!(c.wait("owned-tty").await.unwrap().code, 2);
    // Its pipes and logs too, and wait reports the exit code.
    let mut p = c.attach("owned-pipe", true, true, true).await.unwrap();
    p.input.write(b"one\nquit\n").await.unwrap();
    let (out, _, code) = collect(&mut p.output).await;
    assert_eq!((out.as_str(), code), ("echo:one\necho:quit\n", 6));
    assert_eq!(c.wait("owned-pipe").await.unwrap().code, 6);
    let logged = slipway_runtime::logs::read(&b.path().join("owned-pipe.log"), &Default::default()).unwrap();
    assert_eq!(logged.len(), 2);
    for id in &ids {
        c.delete(id, false).await.unwrap();
    }
}

/// The root can be an overlay of read-only layers under a writable upper directory, as
/// images give: writes and deletions land in the upper directory, the layers stay as they
/// were, and the overlay exists only inside the container's mount namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlay_root_keeps_the_layers_untouched() {
    let mut b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "echo new > /etc/created; rm /etc/from-top; cat /etc/from-base; ls /etc",
    ]);
    // Two layers: the bundle's rootfs as the base, and a small layer on top.
    let top = b.path().join("layer-top");
    std::fs::create_dir_all(top.join("etc")).unwrap();
    std::fs::write(top.join("etc/from-top"), "top\n").unwrap();
    std::fs::write(b.rootfs().join("etc/from-base"), "base\n").unwrap();
    let (upper, work, mountpoint) = (b.path().join("upper"), b.path().join("work"), b.path().join("merged"));
    for d in [&upper, &work] {
        std::fs::create_dir_all(d).unwrap();
    }
    b.spec["root"]["path"] = json!(mountpoint);
    let c = containers(&b);
    let id = b.new_id();
    let mut opts = options(&b, &id);
    opts.overlay = Some(slipway_runtime::monitor::OverlayConfig {
        lower: vec![top.clone(), b.rootfs()],
        upper: upper.clone(),
        work,
    });
    let log = opts.log_path.clone();
    c.create(&id, opts).await.unwrap();
    c.start(&id).await.unwrap();
    assert_eq!(c.wait(&id).await.unwrap().code, 0);
    let out: String = slipway_runtime::logs::read(&log, &Default::default())
        .unwrap()
        .iter()
        .map(|e| String::from_utf8_lossy(&e.bytes).into_owned())
        .collect();
    assert!(
        out.starts_with("base\n") && out.contains("created") && !out.contains("from-top"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(upper.join("etc/created")).unwrap(), "new\n");
    let whiteout = std::fs::symlink_metadata(upper.join("etc/from-top")).unwrap();
    assert!(
        std::os::unix::fs::FileTypeExt::is_char_device(&whiteout.file_type()),
        "a deletion is a whiteout in the upper directory"
    );
    assert_eq!(
        std::fs::read_to_string(top.join("etc/from-top")).unwrap(),
        "top\n",
        "the layer is untouched"
    );
    assert!(!b.rootfs().join("etc/created").exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(mountpoint.to_str().unwrap()),
        "the overlay never reached the host's mount table"
    );
    c.delete(&id, false).await.unwrap();
}
