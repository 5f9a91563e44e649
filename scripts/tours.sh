#!/usr/bin/env bash
# The README's tours, run as written against a fresh `custos demo`: the
# commands of "A five-minute tour" and of the curl tours (a SOC analyst, a
# quality reviewer, the control room) are taken from the README, pointed at the demo
# (its ports, data directory and the binary the tests built instead of `cargo
# run --release --`) and run with `set -euo pipefail`. Every request must
# answer below 400 (but a login with the tour's own wrong passwords, and a
# request without a token) and no jq answer may be `null`. Last, the demo is
# stopped with Ctrl-C (SIGINT) and the tour's offline verification runs: each
# line marked `(exit N)` must exit N. So the tours cannot drift from the
# product. CUSTOS_TOURS_VERBOSE=1 prints the answers.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
source scripts/demo-for-checks.sh tours
api="http://127.0.0.1:$port/api/v1"
# The tours speak of the demo's scenarios: wait for the last of them to be an incident.
for _ in $(seq 1 1200); do
  found=$(curl -fs -H "Authorization: Bearer $token" "$api/incidents?rule=custos-tailgating-inferred" |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)["incidents"]))')
  [ "$found" != 0 ] && break
  sleep 0.1
done
[ "$found" != 0 ] || { echo "the demo raised no tailgating incident in 120 s" >&2; exit 1; }

# What each tour runs before its own lines.
cat >"$work/prelude.sh" <<'SH'
set -euo pipefail
tour_failed() { echo "tour: $*" >&2; exit 1; }
curl() {
  local out code refusable=1 to_file=0
  for a in "$@"; do
    case "$a" in
      */api/v1/login) refusable=1; break ;;
      "Authorization: Bearer "*) refusable=0 ;;
      -o) to_file=1 ;;
    esac
  done
  out=$(mktemp)
  if [ $to_file = 1 ]; then
    code=$(command curl -sS -w '%{http_code}' "$@")
  else
    code=$(command curl -sS -w '%{http_code}' -o "$out" "$@")
    cat "$out"
  fi
  rm -f "$out"
  if [ "$code" -ge 400 ] && ! { [ $refusable = 1 ] && [ "$code" -le 403 ]; }; then
    tour_failed "curl $* answered $code"
  fi
}
jq() {
  local out
  out=$(command jq "$@")
  if grep -qx 'null' <<<"$out"; then tour_failed "jq $* gave null"; fi
  [ -z "$out" ] || printf '%s\n' "$out"
}
# diff says 1 when the two differ, which is the answer, not a failure.
diff() { command diff "$@" || [ $? = 1 ]; }
SH

udp=$(sed -n 's/.*syslog  *udp 127.0.0.1:\([0-9]*\).*/\1/p' "$work/demo.log")
[ -n "$udp" ] || { cat "$work/demo.log"; echo "the demo printed no syslog port" >&2; exit 1; }

# The commands of the Nth ```sh block of a README section, pointed at this demo.
commands() {
  python3 - "$1" "$2" "$root/README.md" <<'PY' |
import sys
title, n, readme = sys.argv[1], int(sys.argv[2]), open(sys.argv[3]).read()
section = readme.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
print(section.split("```sh\n")[n].split("```", 1)[0])
PY
    sed -e "s#cargo run --release -- #\"$bin\" #g" \
      -e "s#^custos #\"$bin\" #" \
      -e "s#localhost:8088#127.0.0.1:$port#g" \
      -e "s#--port PORT #--port $udp #g" \
      -e "s#demo-data#$work/data#g"
}

tour() {
  local title=$1 script="$work/tour-$2.sh"
  { cat "$work/prelude.sh"; commands "$title" "${3:-1}"; } >"$script"
  echo "== $title"
  (cd "$work" && bash "$script") >"$work/tour-$2.out" 2>&1 || {
    cat "$work/tour-$2.out"
    echo "the README's \"$title\" failed (above)" >&2
    exit 1
  }
  if [ -n "${CUSTOS_TOURS_VERBOSE:-}" ]; then cat "$work/tour-$2.out"; fi
  echo "$(grep -c . "$work/tour-$2.out") lines of answers"
}
tour "A five-minute tour" five 2
tour "Curl tour: a SOC analyst" soc
tour "Curl tour: a quality reviewer" quality
tour "Curl tour: the control room" control

# Ctrl-C drains the pipeline and signs a last checkpoint; then the ledger is
# verified offline, tampered with, and verified again.
kill -INT $demo
wait $demo || true
echo "== A five-minute tour: offline verification"
commands "A five-minute tour" 3 | while IFS= read -r line; do
  [ -n "$line" ] || continue
  want=$(sed -n 's/.*(exit \([0-9]*\)).*/\1/p' <<<"$line")
  got=0
  out=$(cd "$work" && bash -c "$line" </dev/null 2>&1) || got=$?
  if [ -n "${CUSTOS_TOURS_VERBOSE:-}" ]; then printf '%s\n' "$out"; fi
  if [ "$got" != "${want:-0}" ]; then
    printf '%s\n' "$out"
    echo "the README's \"$line\" exited $got, not ${want:-0}" >&2
    exit 1
  fi
done
echo "tours: all ran as the README writes them"
