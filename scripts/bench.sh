#!/usr/bin/env bash
# Installs the load generator and the peers, builds a release binary, and runs every
# benchmark. Figures go to standard output; docs/BENCHMARKS.md records them.
source "$(dirname "$0")/lib.sh"
need_root
base_packages
# wrk and nginx: the site benchmark; crun, runc and busybox-static: the runtime benchmark.
apt_install wrk nginx-light crun runc busybox-static
cd "$REPO"
cargo build --release --locked -p slipway
bin="$(target_dir)/release/slipway"
"$bin" bench site
"$bin" bench runtime
