#!/usr/bin/env bash
# Operating Custos with Prometheus: checks and unit-tests the alerting rules
# of deploy/prometheus (promtool), then has a real Prometheus server scrape a
# running demo with a token of role `monitoring`, as deploy/prometheus/
# prometheus.yml does, and checks what it reads: the exposition passes
# `promtool check metrics`, every metric the rules use is one Custos exports,
# the scrape is up, the rules load and none of them is broken, and the token
# reads nothing but the metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
rules=deploy/prometheus
promtool check rules "$rules/custos-alerts.yml"
promtool test rules "$rules/custos-alerts.test.yml"
promtool check config --syntax-only "$rules/prometheus.yml"

source scripts/demo-for-checks.sh monitoring
api="http://127.0.0.1:$port"
echo 'a long passphrase for the scraper' |
  "$bin" user add prometheus --role monitoring --printed-name "Prometheus" --token-days 30 --data-dir "$work/data" \
    >"$work/token"
[ -s "$work/token" ] || { echo "custos user add printed no token" >&2; exit 1; }
chmod 600 "$work/token"
scraper="Authorization: Bearer $(cat "$work/token")"
for _ in $(seq 1 100); do curl -fs -H "$scraper" "$api/metrics" >"$work/metrics" && break; sleep 0.1; done
promtool check metrics <"$work/metrics"
exported=$(sed -n 's/^# TYPE \(custos_[a-z_]*\) .*/\1/p' "$work/metrics" | sort -u)
used=$(grep -o 'custos_[a-z_]*' "$rules/custos-alerts.yml" | sort -u)
missing=$(comm -13 <(echo "$exported") <(echo "$used"))
[ -z "$missing" ] || { echo "the rules use metrics Custos does not export: $missing" >&2; exit 1; }
status=$(curl -s -o /dev/null -w '%{http_code}' -H "$scraper" "$api/api/v1/incidents")
[ "$status" = 403 ] || { echo "a monitoring token read incidents: $status" >&2; exit 1; }

# The real server, with the shipped rules and the shipped scrape job (the
# token file and the target moved to this demo).
prom_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/prometheus"
cp "$rules/custos-alerts.yml" "$work/prometheus/"
sed -e "s|/etc/prometheus/custos-token|$work/token|" -e "s|\"core:8088\"|\"127.0.0.1:$port\"|" \
  -e 's/scrape_interval: 30s/scrape_interval: 1s/' -e 's/evaluation_interval: 30s/evaluation_interval: 1s/' \
  "$rules/prometheus.yml" >"$work/prometheus/prometheus.yml"
prometheus --config.file="$work/prometheus/prometheus.yml" --storage.tsdb.path="$work/prometheus/data" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
prom=$!
trap 'kill $prom $demo 2>/dev/null || true; wait $prom $demo 2>/dev/null || true; rm -rf "$work"' EXIT
ask() { curl -fs "http://127.0.0.1:$prom_port/api/v1/$1"; }
up=""
for _ in $(seq 1 300); do
  up=$(ask 'query?query=up%7Bjob%3D%22custos%22%7D' 2>/dev/null | jq -r '.data.result[0].value[1] // empty') || true
  [ "$up" = 1 ] && break
  kill -0 $prom 2>/dev/null || { cat "$work/prometheus.log"; echo "prometheus stopped" >&2; exit 1; }
  sleep 0.1
done
[ "$up" = 1 ] || { ask 'targets' | jq '.data.activeTargets'; echo "prometheus could not scrape custos" >&2; exit 1; }
records=$(ask 'query?query=custos_ledger_records' | jq -r '.data.result[0].value[1]')
[ "$records" -gt 0 ] || { echo "prometheus read no ledger records" >&2; exit 1; }
# Every rule evaluated at least once, and none failed.
for _ in $(seq 1 100); do
  evaluated=$(ask rules | jq '[.data.groups[].rules[] | select(.lastEvaluation > "2000")] | length')
  [ "$evaluated" = "$(grep -c -- '- alert:' "$rules/custos-alerts.yml")" ] && break
  sleep 0.1
done
broken=$(ask rules | jq -r '.data.groups[].rules[] | select(.health != "ok") | "\(.name): \(.lastError)"')
[ -z "$broken" ] || { echo "rules failed to evaluate: $broken" >&2; exit 1; }
echo "prometheus scraped custos: up, $records ledger records, $evaluated rules evaluated"
