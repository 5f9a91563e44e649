#!/usr/bin/env bash
# Installs the system packages the build and the tests need. Idempotent: it
# installs only what is missing. Debian / Ubuntu (apt-get), run as root.
set -euo pipefail

need=()
command -v logger >/dev/null 2>&1 || need+=(bsdutils)   # util-linux `logger`: the real syslog sender in the tests
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v make >/dev/null 2>&1 || need+=(make)

if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi
