#!/usr/bin/env bash
# Fetch (once) Debian's prometheus package and unpack its two static binaries, prometheus and promtool,
# into .prometheus/ for the scrape test. Not installed system-wide: nothing on the machine changes.
# Usage: tests/support/prometheus_fetch.sh [DIR]   (default: .prometheus in the repo root). Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${1:-$ROOT/.prometheus}"
if [ -x "$DIR/usr/bin/prometheus" ] && [ -x "$DIR/usr/bin/promtool" ]; then
  echo "prometheus ready in $DIR"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# apt-get download writes into the current folder; as root it warns that _apt cannot read it (harmless).
(cd "$work" && apt-get download prometheus 2>&1 | grep -v "unsandboxed" || true)
deb="$(ls "$work"/prometheus_*.deb 2>/dev/null | head -1)"
[ -n "$deb" ] || { echo "could not download Debian's prometheus package (apt-get download prometheus)" >&2; exit 1; }
mkdir -p "$DIR"
dpkg-deb -x "$deb" "$DIR"
"$DIR/usr/bin/prometheus" --version | head -1
echo "prometheus ready in $DIR"
