#!/usr/bin/env bash
# Installs every Debian package reclm's build and tests need. Idempotent: quiet when all are
# present; runs `apt-get update` only when something is missing. Run as root or with sudo.
set -euo pipefail

# The list: scripts/debian_packages.txt (first word of each line that is not a comment).
mapfile -t PACKAGES < <(sed -e 's/#.*//' "$(dirname "$0")/debian_packages.txt" | awk 'NF {print $1}')

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "setup.sh: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup.sh: done"
