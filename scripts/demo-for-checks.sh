# Sourced by the scripts that check a running demo (tours.sh,
# api-contract.sh): starts `custos demo` (the debug binary the tests built,
# or $CUSTOS_BIN) on a free loopback port in a temporary directory, stops it
# and removes the directory on exit, and waits until it is ready. Sets
# `bin` (absolute), `port`, `work`, `demo` (its pid) and `token` (the admin's).
# $1 names the temporary directory.
bin="${CUSTOS_BIN:-target/debug/custos}"
case "$bin" in /*) ;; *) bin="$(pwd)/$bin" ;; esac
[ -x "$bin" ] || cargo build --locked -p custos
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work=$(mktemp -d -t "custos-$1.XXXXXX")
"$bin" demo --data-dir "$work/data" --http "127.0.0.1:$port" --tick-seconds 0.5 >"$work/demo.log" 2>&1 &
demo=$!
trap 'kill $demo 2>/dev/null || true; wait $demo 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do
  if [ -s "$work/data/demo-token" ] && "$bin" probe "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 $demo 2>/dev/null; then cat "$work/demo.log"; echo "custos demo did not start" >&2; exit 1; fi
  sleep 0.1
done
token=$(cat "$work/data/demo-token")
