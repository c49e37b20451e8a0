#!/usr/bin/env bash
# Install the Debian packages named on the command line if any is missing.
# As root: apt-get directly; otherwise sudo (non-interactive); otherwise stop and print the exact command.
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then SUDO=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"
else
  echo "error: missing system packages: ${missing[*]}" >&2
  echo "install them with:  sudo sh -c '$cmd'" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || { echo "error: apt-get update failed; run: sudo sh -c '$cmd'" >&2; exit 1; }
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" || { echo "error: could not install ${missing[*]}; run: sudo sh -c '$cmd'" >&2; exit 1; }
