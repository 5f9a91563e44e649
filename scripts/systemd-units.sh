#!/usr/bin/env bash
# The systemd units of deploy/systemd, checked by `systemd-analyze verify`
# with ExecStart pointed at the binary the tests built: any warning (an
# unknown key, a bad value, which systemd would ignore) fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CUSTOS_BIN:-target/debug/custos}"
case "$bin" in /*) ;; *) bin="$(pwd)/$bin" ;; esac
[ -x "$bin" ] || cargo build --locked -p custos
if ! command -v systemd-analyze >/dev/null; then
  echo "systemd-analyze is missing (Debian package systemd): the units were not checked" >&2
  exit 1
fi
work=$(mktemp -d -t custos-units.XXXXXX)
trap 'rm -rf "$work"' EXIT
for unit in deploy/systemd/*.service; do
  sed "s#/usr/local/bin/custos#$bin#" "$unit" >"$work/$(basename "$unit")"
done
out=$(systemd-analyze verify "$work"/*.service 2>&1) || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then
  echo "$out" >&2
  exit 1
fi
echo "systemd units: $(ls deploy/systemd/*.service | wc -l) verified"
