#!/usr/bin/env bash
# Make sure Debian's Chromium is installed (/usr/bin/chromium) for the `browser` tests
# (the dashboard checked in headless Chromium through playwright; playwright's own
# browser downloads are never used).
set -euo pipefail
if command -v chromium >/dev/null; then
  echo "chromium-up: $(command -v chromium) present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    exec sudo -n -E bash "$0" "$@"
  fi
  echo "chromium-up: needs root (or passwordless sudo) to apt-get install chromium" >&2
  exit 2
fi
echo "chromium-up: installing chromium with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium
