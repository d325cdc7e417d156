"""Core Engine API checks through docker-py, a second client besides the docker CLI.

Run by tests/tests/engine_clients.rs with DOCKER_HOST set to a node's socket:
    python check.py SECTION
Each section prints "ok SECTION" at its end; any failed check raises, so the exit code
is not 0 and the traceback says which.
"""

import io
import socket
import sys
import tarfile
import time

import docker

PREFIX = "slipway-test-py"


def client():
    # What a user writes: the environment names the engine, the version is negotiated.
    return docker.from_env(timeout=120)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def section_version(c):
    check(c.ping() is True, "ping")
    v = c.version()
    check(v["Os"] == "linux", f"Os: {v}")
    check(v["ApiVersion"].startswith("1."), f"ApiVersion: {v}")
    check("MinAPIVersion" in v, f"MinAPIVersion: {v}")
    check(any(comp["Name"] == "Engine" for comp in v.get("Components") or []), f"Components: {v}")
    info = c.info()
    check(info["OSType"] == "linux", f"info: {info}")
    check(isinstance(info["Containers"], int), f"info Containers: {info}")
    # docker-py negotiated an API version at least 1.24 and no higher than the server's.
    check(c.api.api_version <= v["ApiVersion"], f"negotiated {c.api.api_version}")


def section_containers(c):
    c.images.pull("busybox", tag="latest")
    # Foreground run: the output comes back; the container is removed.
    out = c.containers.run("busybox", ["sh", "-c", "echo hello-py"], remove=True)
    check(out == b"hello-py\n", f"run output {out!r}")
    # Exit code and both streams through logs and wait.
    ctr = c.containers.run(
        "busybox",
        ["sh", "-c", "echo out; echo err >&2; exit 3"],
        detach=True,
        name=f"{PREFIX}-exit",
        labels={"suite": "py"},
        environment={"A": "1"},
    )
    result = ctr.wait(timeout=60)
    check(result["StatusCode"] == 3, f"wait {result}")
    check(ctr.logs(stdout=True, stderr=False) == b"out\n", "stdout logs")
    check(ctr.logs(stdout=False, stderr=True) == b"err\n", "stderr logs")
    ctr.reload()
    check(ctr.status == "exited", f"status {ctr.status}")
    check(ctr.attrs["State"]["ExitCode"] == 3, "ExitCode")
    check(ctr.attrs["Name"] == f"/{PREFIX}-exit", f"Name {ctr.attrs['Name']}")
    check(isinstance(ctr.attrs["Mounts"], list), "Mounts is a list")
    check("A=1" in ctr.attrs["Config"]["Env"], "Env")
    # Lists with the legacy filter shapes docker-py sends.
    listed = c.containers.list(all=True, filters={"label": "suite=py"})
    check([x.name for x in listed] == [f"{PREFIX}-exit"], f"list by label {listed}")
    check(
        f"{PREFIX}-exit" in [x.name for x in c.containers.list(all=True, filters={"status": "exited"})],
        "status filter",
    )
    check(
        [x.name for x in c.containers.list(all=True, filters={"exited": "3"})] == [f"{PREFIX}-exit"],
        "exited filter",
    )
    # Streaming logs with follow, until the container ends.
    streamer = c.containers.run(
        "busybox", ["sh", "-c", "for i in 1 2 3; do echo tick$i; sleep 0.3; done"], detach=True
    )
    lines = b"".join(streamer.logs(stream=True, follow=True))
    check(lines == b"tick1\ntick2\ntick3\n", f"followed logs {lines!r}")
    # Name conflict: 409 with Docker's words.
    try:
        c.containers.create("busybox", name=f"{PREFIX}-exit")
        raise AssertionError("a duplicate name was accepted")
    except docker.errors.APIError as e:
        check(e.status_code == 409, f"conflict status {e.status_code}")
        check("is already in use by container" in str(e), f"conflict message {e}")
    # Missing container: 404 as NotFound.
    try:
        c.containers.get("nosuch")
        raise AssertionError("found nosuch")
    except docker.errors.NotFound as e:
        check("No such container: nosuch" in str(e), f"404 message {e}")
    # stop, start, restart, kill, pause, rename, remove.
    long = c.containers.run("busybox", ["sleep", "300"], detach=True, name=f"{PREFIX}-long")
    long.pause()
    long.reload()
    check(long.status == "paused", long.status)
    long.unpause()
    long.rename(f"{PREFIX}-renamed")
    long.reload()
    check(long.name == f"{PREFIX}-renamed", long.name)
    long.stop(timeout=1)
    long.reload()
    check(long.status == "exited" and long.attrs["State"]["ExitCode"] == 137, "stopped")
    long.start()
    long.reload()
    check(long.status == "running", long.status)
    top = long.top()
    check(any("sleep" in " ".join(p) for p in top["Processes"]), f"top {top}")
    stats = long.stats(stream=False)
    check("memory_stats" in stats and "cpu_stats" in stats, "stats")
    long.kill()
    long.remove(v=True)
    ctr.remove()
    streamer.remove()
    check(c.containers.list(all=True) == [], "all removed")


def section_exec(c):
    ctr = c.containers.run("busybox", ["sleep", "300"], detach=True, name=f"{PREFIX}-exec")
    code, out = ctr.exec_run(["sh", "-c", "echo in-exec; exit 5"])
    check(code == 5 and out == b"in-exec\n", f"exec {code} {out!r}")
    code, out = ctr.exec_run("pwd", workdir="/tmp", user="1000", environment={"E": "x"})
    check((code, out) == (0, b"/tmp\n"), f"exec workdir {code} {out!r}")
    code, out = ctr.exec_run(["sh", "-c", "echo $E; id -u"], user="1000", environment={"E": "x"})
    check(out == b"x\n1000\n", f"exec env/user {out!r}")
    # Demultiplexed streams.
    code, (so, se) = ctr.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    check((so, se) == (b"o\n", b"e\n"), f"demux {so!r} {se!r}")
    # Exec with a TTY: raw stream, \r\n.
    code, out = ctr.exec_run(["echo", "tty"], tty=True)
    check(out == b"tty\r\n", f"tty exec {out!r}")
    # The low-level API: inspect gives the exit code after the end.
    ex = c.api.exec_create(ctr.id, ["sh", "-c", "exit 9"])
    c.api.exec_start(ex["Id"])
    check(c.api.exec_inspect(ex["Id"])["ExitCode"] == 9, "exec inspect")
    # stdin through a hijacked socket, ended by a half-close.
    ex = c.api.exec_create(ctr.id, ["cat"], stdin=True)
    sock = c.api.exec_start(ex["Id"], socket=True)
    raw = sock._sock
    raw.sendall(b"through-the-socket\n")
    raw.shutdown(socket.SHUT_WR)
    data = read_frames(raw)
    check(data == b"through-the-socket\n", f"hijacked exec {data!r}")
    ctr.remove(force=True)


def read_frames(raw):
    """The stdout payloads of a multiplexed stream, until EOF."""
    buf = b""
    raw.settimeout(30)
    while True:
        chunk = raw.recv(65536)
        if not chunk:
            break
        buf += chunk
    out = b""
    while len(buf) >= 8:
        kind, size = buf[0], int.from_bytes(buf[4:8], "big")
        payload, buf = buf[8 : 8 + size], buf[8 + size :]
        if kind == 1:
            out += payload
    return out


def section_attach(c):
    # create does not pull (in Docker either): the image must be here first.
    c.images.pull("busybox", tag="latest")
    ctr = c.containers.create("busybox", ["sh", "-c", "read line; echo got-$line"], stdin_open=True, name=f"{PREFIX}-att")
    sock = ctr.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    raw = sock._sock
    ctr.start()
    raw.sendall(b"hello\n")
    raw.shutdown(socket.SHUT_WR)
    data = read_frames(raw)
    check(data == b"got-hello\n", f"attach {data!r}")
    check(ctr.wait(timeout=30)["StatusCode"] == 0, "attach exit")
    # attach(stream) to a running container's output.
    talker = c.containers.run("busybox", ["sh", "-c", "sleep 1; echo late-line"], detach=True)
    got = b"".join(talker.attach(stream=True, logs=False))
    check(got == b"late-line\n", f"attach stream {got!r}")
    ctr.remove()
    talker.remove()


def section_volumes(c):
    vol = c.volumes.create(f"{PREFIX}-vol", labels={"team": "py"})
    check(vol.attrs["Driver"] == "local", vol.attrs)
    check(vol.attrs["Labels"] == {"team": "py"}, vol.attrs)
    check([v.name for v in c.volumes.list(filters={"label": "team=py"})] == [f"{PREFIX}-vol"], "volume list")
    c.containers.run("busybox", ["sh", "-c", "echo kept > /d/f"], volumes={vol.name: {"bind": "/d", "mode": "rw"}}, remove=True)
    out = c.containers.run("busybox", ["cat", "/d/f"], volumes=[f"{vol.name}:/d:ro"], remove=True)
    check(out == b"kept\n", f"volume data {out!r}")
    holder = c.containers.create("busybox", volumes=[f"{vol.name}:/d"])
    try:
        vol.remove()
        raise AssertionError("removed a volume in use")
    except docker.errors.APIError as e:
        check(e.status_code == 409 and "in use" in str(e), f"in use {e}")
    holder.remove()
    vol.remove()
    try:
        c.volumes.get(f"{PREFIX}-vol")
        raise AssertionError("volume still there")
    except docker.errors.NotFound:
        pass
    c.volumes.create(f"{PREFIX}-unused")
    pruned = c.volumes.prune(filters={"all": "true"})
    check(f"{PREFIX}-unused" in (pruned.get("VolumesDeleted") or []), f"prune {pruned}")


def section_networks(c):
    net = c.networks.create(
        f"{PREFIX}-net",
        driver="bridge",
        ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.77.0.0/24", gateway="10.77.0.1")]),
        labels={"suite": "py"},
    )
    net.reload()
    check(net.attrs["IPAM"]["Config"][0]["Subnet"] == "10.77.0.0/24", net.attrs)
    db = c.containers.run("busybox", ["sleep", "300"], detach=True, name=f"{PREFIX}-db", network=net.name)
    out = c.containers.run("busybox", ["ping", "-c1", "-W2", f"{PREFIX}-db"], network=net.name, remove=True)
    check(b"1 packets received" in out, f"ping by name {out!r}")
    other = c.containers.run("busybox", ["sleep", "300"], detach=True)
    net.connect(other, aliases=["py-alias"])
    out = c.containers.run("busybox", ["ping", "-c1", "-W2", "py-alias"], network=net.name, remove=True)
    check(b"1 packets received" in out, f"ping by alias {out!r}")
    net.reload()
    names = sorted(x.name for x in net.containers)
    check(names == sorted([f"{PREFIX}-db", other.name]), f"network containers {names}")
    net.disconnect(other)
    try:
        c.containers.run("busybox", ["ping", "-c1", "-W2", "py-alias"], network=net.name, remove=True)
        raise AssertionError("the alias outlived the disconnect")
    except docker.errors.ContainerError:
        pass
    check(sorted(n.name for n in c.networks.list(names=["bridge", "host", "none"])) == ["bridge", "host", "none"], "defaults")
    db.remove(force=True)
    other.remove(force=True)
    net.remove()
    check(c.networks.list(filters={"label": "suite=py"}) == [], "network removed")


def section_images(c):
    img = c.images.pull("busybox", tag="latest")
    check("busybox:latest" in img.tags, img.tags)
    check(any("busybox:latest" in i.tags for i in c.images.list()), "images list")
    check(c.images.list(filters={"reference": "busy*"}) != [], "reference filter")
    img.tag("pybox", "v1")
    check("pybox:v1" in c.images.get("pybox:v1").tags, "tag")
    hist = img.history()
    check(isinstance(hist, list) and len(hist) >= 1, f"history {hist}")
    # A build from an in-memory context, with the aux ID.
    ctx = io.BytesIO()
    with tarfile.open(fileobj=ctx, mode="w") as tar:
        df = b'FROM busybox\nARG WORD\nRUN echo "$WORD" > /word\nCMD ["cat", "/word"]\n'
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(df)
        tar.addfile(info, io.BytesIO(df))
    ctx.seek(0)
    built, logs = c.images.build(fileobj=ctx, custom_context=True, tag="pybuilt:1", buildargs={"WORD": "py-word"})
    check(any("Step 1/4" in (l.get("stream") or "") for l in logs), "build log")
    out = c.containers.run("pybuilt:1", remove=True)
    check(out == b"py-word\n", f"built image {out!r}")
    # A failing build raises BuildError with the daemon's message.
    bad = io.BytesIO()
    with tarfile.open(fileobj=bad, mode="w") as tar:
        df = b"FROM busybox\nRUN exit 2\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(df)
        tar.addfile(info, io.BytesIO(df))
    bad.seek(0)
    try:
        c.images.build(fileobj=bad, custom_context=True)
        raise AssertionError("a failing build succeeded")
    except docker.errors.BuildError as e:
        check("non-zero code: 2" in str(e), f"build error {e}")
    # save and load round trip.
    data = b"".join(c.images.get("pybox:v1").save(named="pybox:v1"))
    c.images.remove("pybox:v1")
    loaded = c.images.load(data)
    check(any("pybox:v1" in i.tags for i in loaded), f"loaded {loaded}")
    c.images.remove("pybox:v1")
    c.images.remove("pybuilt:1")


def section_events(c):
    since = int(time.time()) - 1
    c.containers.run("busybox", "true", name=f"{PREFIX}-ev", remove=True)
    until = int(time.time()) + 1
    seen = []
    for ev in c.events(since=since, until=until, decode=True, filters={"container": f"{PREFIX}-ev"}):
        # Legacy fields beside the current ones.
        check(ev.get("status") == ev.get("Action"), f"legacy status {ev}")
        check(ev.get("id") == ev["Actor"]["ID"], f"legacy id {ev}")
        check(ev.get("from") == "busybox", f"legacy from {ev}")
        check(isinstance(ev.get("timeNano"), int), f"timeNano {ev}")
        seen.append(ev["Action"])
    for action in ["create", "start", "die", "destroy"]:
        check(action in seen, f"{action} in {seen}")
    check(seen.index("create") < seen.index("start") < seen.index("die") < seen.index("destroy"), f"order {seen}")


SECTIONS = {
    "version": section_version,
    "containers": section_containers,
    "exec": section_exec,
    "attach": section_attach,
    "volumes": section_volumes,
    "networks": section_networks,
    "images": section_images,
    "events": section_events,
}

if __name__ == "__main__":
    name = sys.argv[1]
    print(f"docker-py {docker.__version__}", file=sys.stderr)
    SECTIONS[name](client())
    print(f"ok {name}")
    sys.stdout.flush()
