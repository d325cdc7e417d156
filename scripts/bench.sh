#!/usr/bin/env bash
# Installs the load generator and the peers, builds a release binary, and runs every
# benchmark. Figures go to standard output; docs/BENCHMARKS.md records them.
source "$(dirname "$0")/lib.sh"
need_root
base_packages
# wrk and nginx: the site benchmark; crun, runc and busybox-static: the runtime benchmark.
# GNU tar: the image benchmark's peer (Debian has it).
apt_install wrk nginx-light crun runc busybox-static debootstrap tar
cd "$REPO"
cargo build --release --locked -p slipway
bin="$(target_dir)/release/slipway"
"$bin" bench site
"$bin" bench runtime
# The image benchmark uses the catalog the tests build (it builds python first if absent).
"$bin" bench images --data-dir "${SLIPWAY_CATALOG_DIR:-/var/cache/slipway/catalog}"
# The playground benchmark needs slipway/node from the same catalog.
SLIPWAY_CATALOG_DIR="${SLIPWAY_CATALOG_DIR:-/var/cache/slipway/catalog}" "$bin" bench playground
# The engine benchmark: docker run and docker compose through the real clients in a node
# (slipway/node, busybox and redis from the same catalog).
SLIPWAY_CATALOG_DIR="${SLIPWAY_CATALOG_DIR:-/var/cache/slipway/catalog}" "$bin" bench engine
# Live grading: an engine event to the check's new result on the lesson page's socket.
SLIPWAY_CATALOG_DIR="${SLIPWAY_CATALOG_DIR:-/var/cache/slipway/catalog}" "$bin" bench grading
