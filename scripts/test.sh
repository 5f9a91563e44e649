#!/usr/bin/env bash
# Runs every test of the workspace, the Kafka ones included: installs what the
# tests need, starts a tansu broker on a free loopback port, runs the tests
# against it, stops it; then the README's tours, the systemd units, the
# monitoring checks and the API contract, each against a demo of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

export PATH="$HOME/.cargo/bin:$PATH"
venv="${CUSTOS_VENV:-$HOME/.cache/custos-venv}"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp -t tansu.XXXXXX)
tansu broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine memory://tansu/ >"$log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null || true; wait $broker 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then break; fi
  if ! kill -0 $broker 2>/dev/null; then cat "$log"; echo "tansu did not start" >&2; exit 1; fi
  sleep 0.1
done
echo "tansu broker on 127.0.0.1:$port"

export CUSTOS_TEST_KAFKA_BROKERS="127.0.0.1:$port"
export CUSTOS_TEST_PYTHON="$venv/bin/python"
cargo test --workspace --locked --features custos-e2e/kafka "$@"
# The README's tours, as written, against a running demo.
scripts/tours.sh
# The systemd units, as systemd reads them.
scripts/systemd-units.sh
# The alerting rules, and a real Prometheus scraping a demo.
scripts/monitoring.sh
# The running API against its OpenAPI document.
scripts/api-contract.sh
