#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine needs to build and test derecho-k8s:
# system packages (only those missing; one `apt-get update`), then the npm dependencies.
# Idempotent: a second run installs nothing and skips apt entirely.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Only what the build (native/CMakeLists.txt: a C++ toolchain, cmake + ninja, GTest, libibverbs
# for the verbs transport, libpmem and zlib for the persistent log) and the tests use today.
packages=(
  build-essential cmake ninja-build libgtest-dev libibverbs-dev rdma-core libpmem-dev zlib1g-dev
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} > 0)); then
  echo "setup: installing system packages: ${missing[*]}"
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "setup: installing ${missing[*]} needs root, and sudo is not installed;" >&2
      echo "setup: run this script as root, or install those packages first (apt-get install ${missing[*]})" >&2
      exit 1
    fi
    sudo_cmd=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update
  "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
else
  echo "setup: system packages present"
fi

if ! command -v node >/dev/null 2>&1; then
  echo "setup: node (>= 20) is required but not installed" >&2
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
  echo "setup: node >= 20 is required, found $(node --version)" >&2
  exit 1
fi

# npm: reinstall only when package-lock.json changed since the last successful install here.
stamp=node_modules/.derecho-setup-stamp
if [[ -f package-lock.json ]]; then
  want=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    echo "setup: node_modules up to date"
  else
    echo "setup: npm ci"
    npm ci --no-audit --no-fund
    echo "$want" >"$stamp"
  fi
else
  echo "setup: npm install"
  npm install --no-audit --no-fund
fi

