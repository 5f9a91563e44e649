#!/usr/bin/env bash
# Runs every test of the workspace, after installing what they need.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo test --workspace --locked "$@"
