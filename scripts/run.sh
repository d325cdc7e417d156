#!/usr/bin/env bash
# Installs what Slipway needs, builds it, and serves it on http://127.0.0.1:8080/.
# Extra arguments go to `slipway serve` (for example --listen 0.0.0.0:8080).
source "$(dirname "$0")/lib.sh"
need_root
base_packages
log "building Slipway (release)"
cargo build --release --manifest-path "$REPO/Cargo.toml" -p slipway
log "serving; stop with Ctrl+C"
exec "$(target_dir)/release/slipway" serve --lessons "$REPO/lessons" "$@"
