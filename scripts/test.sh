#!/usr/bin/env bash
# Installs what the tests need and runs every test: formatting, lints, unit tests, the
# lessons' lint, and the end-to-end tests (real binary, real SQLite, real Chromium).
source "$(dirname "$0")/lib.sh"
need_root
base_packages
# chromium: the browser tests. busybox-static: the runtime tests' root filesystems.
apt_install chromium busybox-static
# The Engine API tests' host clients: Debian's docker CLI and docker-py in a venv.
ensure_docker_cli
export SLIPWAY_ENGINE_VENV="${SLIPWAY_ENGINE_VENV:-/var/cache/slipway/engine-venv}"
ensure_engine_venv
cd "$REPO"
start=$(date +%s)

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "building"
cargo build --workspace --locked

# Build containers' cgroups go under a root of the tests' own, removed at the end.
export SLIPWAY_CGROUP_ROOT=slipway-test-ci
trap 'for h in /sys/fs/cgroup/*/; do rmdir "$h$SLIPWAY_CGROUP_ROOT/builds" "$h$SLIPWAY_CGROUP_ROOT" 2>/dev/null || true; done' EXIT

# The offline catalog, built once per machine and kept outside the clone (about ten
# minutes the first time, seconds after); tests/tests/catalog.rs reads it.
export SLIPWAY_CATALOG_DIR="${SLIPWAY_CATALOG_DIR:-/var/cache/slipway/catalog}"
log "catalog images in $SLIPWAY_CATALOG_DIR"
"$(target_dir)/debug/slipway" images --data-dir "$SLIPWAY_CATALOG_DIR" ensure

log "lessons lint"
"$(target_dir)/debug/slipway" lessons lint --strict

# Lesson CI: every exercise's checks fail on a fresh playground and pass after its
# solution, through the real docker CLI in real nodes.
log "lessons verify"
"$(target_dir)/debug/slipway" lessons verify

log "tests"
cargo test --workspace --locked -- --test-threads 2

log "fuzzing the Dockerfile parser and the .dockerignore matcher (15 s each)"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
"$REPO/runtime/fuzz/run.sh" 15

log "all tests passed in $(( $(date +%s) - start )) s"
