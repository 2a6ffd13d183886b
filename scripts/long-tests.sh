#!/usr/bin/env bash
# The long profile of the attack and fault suite: every tamper-corpus position, ten times the
# crash-consistency kills, then every fuzz target for SECONDS each. The quick profile of the
# same suites runs in scripts/test.sh (and CI).
# Usage: scripts/long-tests.sh [FUZZ_SECONDS_PER_TARGET (default 300)] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
fuzz_seconds="${1:-300}"
[ -z "${2:-}" ] || export SHARDVAULT_SEED="$2"
SHARDVAULT_LONG=1 swift test --filter 'TamperCorpusTests|CrashCLITests' 2>&1 \
  | grep -E 'tamper corpus|crash consistency|Test run|✘' 
scripts/fuzz.sh "$fuzz_seconds"
