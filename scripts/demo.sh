#!/usr/bin/env bash
# The main job on the embedded defaults: build, then `shardvault demo`: init a throw-away
# vault, generate and ingest a Synthea-shaped sample, analyze the example spec in parallel
# worker processes, reveal the result, and verify the audit log, printing each step.
# Pass a patient count to change the sample size (default 1000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
patients="${1:-1000}"
swift build -c release --product shardvault >&2
bin="$(swift build -c release --show-bin-path)/shardvault"
"$bin" demo --patients "$patients"
