#!/usr/bin/env bash
# Installs every tool the test suite runs for real: CI calls this from .ci/run, and a developer may run it
# once to stop tests from skipping. Idempotent: what is already installed is left alone.
# Sources: Debian packages and PyPI only (the only registries these machines reach).
set -euo pipefail

log() { printf '==> install-tools: %s\n' "$*" >&2; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }

apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$apt_updated" -eq 0 ]; then
    run apt-get update -qq
    apt_updated=1
  fi
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

pip_install() {
  local missing=()
  for spec in "$@"; do
    python3 -m pip show -q "${spec%%[=<>]*}" >/dev/null 2>&1 || missing+=("$spec")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  run python3 -m pip install -q --disable-pip-version-check "${missing[@]}"
}

main() {
  log "base tools"
  apt_install ca-certificates curl
}

main "$@"
