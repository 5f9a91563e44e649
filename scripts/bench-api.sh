#!/usr/bin/env bash
# API read throughput and latency, measured from a second process: starts the
# release `custos demo` on a free loopback port, waits for its incidents, then
# drives `wrk` (installed from Debian if missing) at incident reads with the
# admin token. Usage: scripts/bench-api.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
connections="${2:-32}"
if ! command -v wrk >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi
cargo build --release --locked -p custos
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work=$(mktemp -d -t custos-bench-api.XXXXXX)
target/release/custos demo --data-dir "$work/data" --http "127.0.0.1:$port" --tick-seconds 0.2 >"$work/demo.log" 2>&1 &
demo=$!
trap 'kill $demo 2>/dev/null || true; wait $demo 2>/dev/null || true; rm -rf "$work"' EXIT
until [ -s "$work/data/demo-token" ]; do sleep 0.2; done
token=$(cat "$work/data/demo-token")
url="http://127.0.0.1:$port"
for _ in $(seq 1 300); do
  n=$(curl -fs -H "Authorization: Bearer $token" "$url/api/v1/incidents" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["incidents"]))' || echo 0)
  [ "$n" -ge 3 ] && break
  sleep 0.2
done
echo "demo on $url with $n incidents; wrk: 2 threads, $connections connections, ${seconds}s"
for path in /api/v1/incidents "/api/v1/incidents/INC-000001"; do
  echo "== GET $path"
  wrk -t2 -c"$connections" -d"${seconds}s" --latency -H "Authorization: Bearer $token" "$url$path" \
    | grep -E "Requests/sec|Latency|50%|90%|99%|Non-2xx|Socket errors"
done
