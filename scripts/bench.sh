#!/usr/bin/env bash
# Installs the load generator and the peers, builds a release binary, and runs every
# benchmark. Figures go to standard output; docs/BENCHMARKS.md records them.
source "$(dirname "$0")/lib.sh"
need_root
base_packages
apt_install wrk nginx-light
cd "$REPO"
cargo build --release --locked -p slipway
"$(target_dir)/release/slipway" bench site "$@"
