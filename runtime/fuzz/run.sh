#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 20), starting from the seed
# corpus in corpus/<target>/. Exits non-zero if a target crashes; the input that crashed
# is saved under artifacts/<target>/. See README.md.
#
#   runtime/fuzz/run.sh [SECONDS]
#
# Environment:
#   FUZZ_SANITIZER  none (default; fastest, works on a stable toolchain) or address, which
#                   needs nightly flags: RUSTC_BOOTSTRAP=1 is set for it.
#   FUZZ_TARGETS    the targets to run (default: dockerfile_parse dockerignore_match).
#   FUZZ_JOBS       parallel fuzzing processes per target (default 1).
#   FUZZ_ARGS       extra libFuzzer arguments.
set -euo pipefail

secs="${1:-20}"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
sanitizer="${FUZZ_SANITIZER:-none}"
read -r -a targets <<< "${FUZZ_TARGETS:-dockerfile_parse dockerignore_match}"
jobs="${FUZZ_JOBS:-1}"

if ! command -v cargo-fuzz > /dev/null; then
    echo "run.sh: cargo-fuzz is not installed; run: cargo install cargo-fuzz" >&2
    exit 2
fi
if [ "$sanitizer" != none ]; then
    # -Zsanitizer is a nightly flag; this lets a stable toolchain accept it.
    export RUSTC_BOOTSTRAP=1
fi

start=$(date +%s)
for t in "${targets[@]}"; do
    cargo fuzz build --sanitizer "$sanitizer" "$t"
done
echo "run.sh: built in $(( $(date +%s) - start ))s"

status=0
for t in "${targets[@]}"; do
    # New inputs go to corpus-work/ (ignored by git); corpus/ keeps only the seeds.
    work="corpus-work/$t"
    mkdir -p "$work"
    dict=()
    if [ -f "$t.dict" ]; then dict=("-dict=$t.dict"); elif [ "$t" = dockerfile_parse ]; then dict=("-dict=dockerfile.dict"); fi
    extra=()
    if [ "$jobs" -gt 1 ]; then extra=("-jobs=$jobs" "-workers=$jobs"); fi
    echo "run.sh: fuzzing $t for ${secs}s"
    # shellcheck disable=SC2086
    if ! cargo fuzz run --sanitizer "$sanitizer" "$t" "$work" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "${dict[@]}" "${extra[@]}" ${FUZZ_ARGS:-}; then
        echo "run.sh: $t FAILED; the input is in artifacts/$t/ (reproduce: cargo fuzz run --sanitizer $sanitizer $t artifacts/$t/<file>)" >&2
        status=1
    fi
done
echo "run.sh: done in $(( $(date +%s) - start ))s"
exit $status
