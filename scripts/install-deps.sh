#!/usr/bin/env bash
# Installs what the build and the tests need. Idempotent: only what is missing.
#  - Debian packages: util-linux `logger` (the real syslog sender in the tests),
#    gcc and make (bundled librdkafka), curl and jq (the README's tours), python3-venv,
#    prometheus (its server and promtool check the alerting rules and /metrics),
#    systemd (`systemd-analyze verify` checks the units of deploy/systemd);
#  - tansu, an Apache Kafka-compatible broker, from crates.io (about 9 minutes
#    the first time, then cached in ~/.cargo/bin);
#  - a Python venv with confluent-kafka, the independent Kafka client of the tests,
#    and schemathesis, which checks the running API against its OpenAPI document.
set -euo pipefail

need=()
command -v logger >/dev/null 2>&1 || need+=(bsdutils)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v make >/dev/null 2>&1 || need+=(make)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi

# Prometheus and promtool (scripts/monitoring.sh), without the web UI's
# recommended packages.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  echo "installing: prometheus"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus
fi

if ! command -v tansu >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tansu" ]; then
  echo "installing tansu (Kafka-compatible broker for the tests)"
  cargo install tansu --locked --features dynostore
fi

venv="${CUSTOS_VENV:-$HOME/.cache/custos-venv}"
if ! "$venv/bin/python" -c "import confluent_kafka" >/dev/null 2>&1; then
  echo "creating $venv with confluent-kafka"
  python3 -m venv "$venv" || { apt-get install -y -qq python3-venv && python3 -m venv "$venv"; }
  "$venv/bin/pip" install -q confluent-kafka
fi
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
  echo "installing schemathesis (API contract tests) into $venv"
  "$venv/bin/pip" install -q schemathesis
fi
