#!/usr/bin/env bash
# System services some tests bring up for real (Debian packages): a single-node Slurm cluster
# on loopback for tests/integration/test_slurm.py (slurmctld, slurmd, slurm-client, munge).
#
#   sudo bash tools/install_test_services.sh     # or: CMID_TEST_SERVICES=1 bash tools/setup_env.sh
#
# Idempotent: does nothing when every package is installed, runs `apt-get update` only when
# apt does not know a package yet, then `apt-get install -y --no-install-recommends` (8 small
# packages, ~10 s). apt's postinst does not start the daemons; the tests start their own.
# Exits 0 with a message (and installs nothing) when not root or when apt-get is missing: the
# Slurm tests then skip and say why.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)
say() { echo "[install_test_services] $*"; }

installed() {  # 0 when package $1 is installed (dpkg status "install ok installed")
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

known_to_apt() {  # 0 when apt has an install candidate for package $1
  local cand
  cand="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')"
  [[ -n "$cand" && "$cand" != "(none)" ]]
}

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
  say "no apt-get/dpkg here (not Debian/Ubuntu): not installing ${PACKAGES[*]};" \
      "the Slurm tests will skip. Install Slurm + munge with your system's package manager."
  exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  say "already installed: ${PACKAGES[*]}"
  exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
  say "not root: cannot install ${missing[*]}; the Slurm tests will skip." \
      "Run as root: sudo bash $0"
  exit 0
fi

need_update=0
for p in "${missing[@]}"; do
  known_to_apt "$p" || need_update=1
done
if [[ $need_update == 1 ]]; then
  say "apt does not know all of ${missing[*]} yet: apt-get update"
  apt-get update -q
else
  say "apt already knows ${missing[*]}: skipping apt-get update"
fi

say "apt-get install -y --no-install-recommends ${missing[*]}"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"

for p in "${PACKAGES[@]}"; do
  if ! installed "$p"; then
    say "ERROR: package $p is still not installed after apt-get install; see apt's output above."
    exit 1
  fi
done
say "installed: ${PACKAGES[*]} ($(dpkg-query -W -f='${Version}' slurmctld) for Slurm)"
