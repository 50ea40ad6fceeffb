# Shared by run.sh and build.sh: find or install uv, make the virtual environment.
# shellcheck shell=bash
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export UV_PROJECT_ENVIRONMENT="$ROOT/.venv"

ensure_uv() {
  if command -v uv >/dev/null 2>&1; then UV="$(command -v uv)"; return; fi
  local tools="${XDG_CACHE_HOME:-$HOME/.cache}/orderproc/tools"
  if [ ! -x "$tools/bin/uv" ]; then
    echo "==> installing uv (the Python package manager) into $tools"
    python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet --disable-pip-version-check uv
  fi
  UV="$tools/bin/uv"
}

# sync_env [--no-dev]: install exactly what uv.lock pins.
sync_env() {
  ensure_uv
  "$UV" sync --frozen --quiet "$@"
}

# apt_install PKG...: install Debian packages that are missing (needs root or sudo).
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "==> installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
