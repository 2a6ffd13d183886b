#!/usr/bin/env bash
# The main job on the embedded defaults: build, init a throw-away vault, generate a
# synthetic sample, ingest it into sealed shards, show the dataset, verify it (signatures
# only, then deep), then review the audit log and verify it. Pass a patient count to
# change the sample size (default 1000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
patients="${1:-1000}"
swift build -c release --product shardvault >&2
bin="$(swift build -c release --show-bin-path)/shardvault"
work="$(mktemp -d "${TMPDIR:-/tmp}/shardvault-demo.XXXXXX")"
trap 'rm -rf "$work"' EXIT
vault="$work/vault"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
step "$bin" init --vault "$vault"
step "$bin" generate --patients "$patients" --seed 2026 "$work/sample"
step "$bin" ingest --vault "$vault" --dataset demo --format synthea-csv "$work/sample"
step "$bin" datasets show demo --vault "$vault"
step "$bin" verify --vault "$vault" --dataset demo
step "$bin" verify --vault "$vault" --dataset demo --deep
step "$bin" audit log --vault "$vault" --dataset demo
step "$bin" audit verify --vault "$vault"
step "$bin" audit checkpoint --vault "$vault"
printf '\nThe throw-away vault in %s is removed on exit.\n' "$work"
