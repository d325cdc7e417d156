# Shared by run.sh, test.sh and bench.sh: install what Slipway needs on Debian or Ubuntu.
# Everything is idempotent and skips what is already there, so a warm machine starts fast.

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "run this as root: Slipway's runtime and its tests need root" >&2
    exit 1
  fi
}

# apt_install PKG...: installs the packages that are missing.
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_rust() {
  if command -v cargo >/dev/null 2>&1; then return 0; fi
  log "installing Rust with rustup"
  apt_install curl ca-certificates
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
}

ensure_node() {
  if command -v npm >/dev/null 2>&1; then return 0; fi
  apt_install nodejs npm
}

# The front-end packages Slipway serves itself (xterm.js, mermaid), from package-lock.json.
ensure_web_packages() {
  ensure_node
  if [ ! -f "$REPO/web/node_modules/.package-lock.json" ] || [ "$REPO/web/package-lock.json" -nt "$REPO/web/node_modules/.package-lock.json" ]; then
    log "installing the web packages (npm ci)"
    (cd "$REPO/web" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Where cargo puts its builds: $CARGO_TARGET_DIR or the workspace's target/ (CI may keep
# one outside the clone).
target_dir() {
  cargo metadata --format-version 1 --no-deps --manifest-path "$REPO/Cargo.toml" \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'
}

base_packages() {
  # libseccomp-dev: the runtime compiles seccomp profiles with libseccomp. tini: the tiny
  # init for `--init` containers. busybox-static and debootstrap: the catalog's two base
  # images (busybox, debian:trixie-slim), from which its Dockerfiles build the rest.
  # iproute2, util-linux (nsenter, mount) and e2fsprogs: playgrounds' networks and disks.
  apt_install build-essential pkg-config ca-certificates git libseccomp-dev tini busybox-static debootstrap \
    iproute2 util-linux e2fsprogs curl
  ensure_rust
  ensure_web_packages
}

# The host's docker CLI for the Engine API tests: Debian's docker-cli from trixie (26.x, the
# same client as in the nodes). On an older Debian the trixie suite is added with a pin
# that lets only docker-cli come from it, so nothing else on the machine upgrades.
ensure_docker_cli() {
  if dpkg-query -W -f='${Status}' docker-cli 2>/dev/null | grep -q "install ok installed"; then return 0; fi
  local codename=""
  [ -r /etc/os-release ] && codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  case "$codename" in
    bullseye|bookworm)
      log "adding Debian trixie for docker-cli only (pinned)"
      printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: trixie' 'Components: main' \
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' > /etc/apt/sources.list.d/slipway-trixie.sources
      printf '%s\n' "# Slipway's tests take docker-cli from trixie and nothing else." \
        'Package: *' 'Pin: release n=trixie' 'Pin-Priority: 1' '' \
        'Package: docker-cli' 'Pin: release n=trixie' 'Pin-Priority: 990' > /etc/apt/preferences.d/slipway-trixie
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends docker-cli >/dev/null
      ;;
    *)
      apt_install docker-cli
      ;;
  esac
}

# docker-py, the Engine API tests' second client, in a venv outside the clone.
ensure_engine_venv() {
  local venv="${SLIPWAY_ENGINE_VENV:-/var/cache/slipway/engine-venv}"
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import docker' 2>/dev/null; then return 0; fi
  apt_install python3-venv
  log "making the docker-py venv in $venv"
  mkdir -p "$(dirname "$venv")"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'docker>=7.1,<8'
}
