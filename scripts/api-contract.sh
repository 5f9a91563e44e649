#!/usr/bin/env bash
# The API against its own OpenAPI document: starts `custos demo` (the debug
# binary the tests built) on a free loopback port, lets schemathesis generate
# requests for every operation with the admin token, and fails on any server
# error (5xx), any response that breaks the documented schema, or a wrong
# content type.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${CUSTOS_VENV:-$HOME/.cache/custos-venv}"
source scripts/demo-for-checks.sh contract
curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/openapi.json" >"$work/openapi.json"
# Real identifiers, so that operations on one thing are tested past their
# 404: the demo's first incident (it opens within seconds), its HTTP push
# source, a standing alarm, and today for an evidence export.
incident=""
for _ in $(seq 1 1200); do
  incident=$(curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/incidents?limit=1" |
    python3 -c 'import json, sys; i = json.load(sys.stdin)["incidents"]; print(i[0]["id"] if i else "")')
  [ -n "$incident" ] && break
  sleep 0.1
done
[ -n "$incident" ] || { echo "the demo opened no incident in 120 s" >&2; exit 1; }
alarm=$(curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/alarms" |
  python3 -c 'import json, sys; a = json.load(sys.stdin)["alarms"]; print(a[0]["alarm"]["key"] if a else "")')
cat >"$work/schemathesis.toml" <<TOML
[parameters]
"path.id" = "$incident"
"path.source" = "badge"
"body.key" = "$alarm"
"body.from" = "$(date -u +%F)T00:00:00Z"
"body.to" = "$(date -u -d tomorrow +%F)T00:00:00Z"
TOML
"$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$work/openapi.json" --url "http://127.0.0.1:$port" \
  -H "Authorization: Bearer $token" \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance \
  --max-examples "${CUSTOS_CONTRACT_EXAMPLES:-25}" --no-color
