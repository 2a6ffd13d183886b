#!/usr/bin/env bash
# Fuzzes every parser of untrusted input with libFuzzer (Fuzz/, VaultCore's FuzzTargets):
# job specs, policy files, shard headers, manifests, audit entries, checkpoint notes,
# Synthea CSV, FHIR resources (NDJSON lines), FHIR Bundles and shard plaintexts (the
# column decoder). Seeds: Fuzz/corpus plus
# files from a throw-away vault of generated patients. Prints executions and crashes per
# target; a crashing input is saved as Fuzz/artifacts/<target>-crash-*.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(job-spec policy shard-header manifest audit-entry checkpoint csv fhir-resource fhir-bundle plaintext)

swift build --package-path Fuzz --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer -Xswiftc -use-ld=lld >&2
fuzzer=".build-fuzz/debug/shardvault-fuzz"
swift build --product shardvault >&2
sv="$(swift build --show-bin-path)/shardvault"
work="$(mktemp -d "${TMPDIR:-/tmp}/shardvault-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Seeds from a throw-away vault: real headers, manifests, audit lines, checkpoints and CSV.
"$sv" init --vault "$work/v" >/dev/null
"$sv" generate --patients 20 --seed 3 "$work/csv" >/dev/null
"$sv" ingest --vault "$work/v" --dataset seeds --format synthea-csv --shards 2 "$work/csv" >/dev/null 2>&1
for t in "${targets[@]}"; do mkdir -p "$work/corpus/$t"; cp Fuzz/corpus/"$t"/* "$work/corpus/$t/" 2>/dev/null || true; done
# The folders the vault's seeds go to, whichever targets run.
mkdir -p "$work"/corpus/{shard-header,manifest,audit-entry,checkpoint,csv}
for f in "$work"/v/data/seeds/g*/shard-*.svs; do head -c 4096 "$f" > "$work/corpus/shard-header/$(basename "$f").head" 2>/dev/null || true; done
cp "$work/v/data/seeds/manifest.jsonl" "$work/corpus/manifest/" 2>/dev/null || true
split -l 1 "$work"/v/audit/log-*.jsonl "$work/corpus/audit-entry/line-" 2>/dev/null || true
cp "$work"/v/audit/checkpoints/*.note "$work/corpus/checkpoint/" 2>/dev/null || true
for f in patients conditions observations; do head -c 3000 "$work/csv/$f.csv" > "$work/corpus/csv/$f.csv" 2>/dev/null || true; done

mkdir -p Fuzz/artifacts
failed=0
printf '%-14s %12s %8s\n' target executions crashes
for t in "${targets[@]}"; do
  status=0
  SHARDVAULT_FUZZ_TARGET="$t" "$fuzzer" "$work/corpus/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="Fuzz/artifacts/$t-" > "$work/$t.log" 2>&1 || status=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$' || echo 0)
  crashes=0
  if [ "$status" -ne 0 ]; then crashes=1; failed=1; tail -30 "$work/$t.log" >&2; fi
  printf '%-14s %12s %8s\n' "$t" "${runs:-0}" "$crashes"
done
exit "$failed"
