#!/usr/bin/env bash
# Installs what the tests need and runs every test: formatting, lints, unit tests, the
# lessons' lint, and the end-to-end tests (real binary, real SQLite, real Chromium).
source "$(dirname "$0")/lib.sh"
need_root
base_packages
# chromium: the browser tests. busybox-static: the runtime tests' root filesystems.
apt_install chromium busybox-static
cd "$REPO"
start=$(date +%s)

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "building"
cargo build --workspace --locked

log "lessons lint"
"$(target_dir)/debug/slipway" lessons lint --strict

log "tests"
cargo test --workspace --locked -- --test-threads 2

log "all tests passed in $(( $(date +%s) - start )) s"
