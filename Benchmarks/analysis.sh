#!/usr/bin/env bash
# One analysis (the demo's example spec) over sealed shards, in worker processes and in
# threads, next to the same query in DuckDB over the plaintext CSV, in one run.
# Usage: Benchmarks/analysis.sh [PATIENTS (default 100000)] [WORK_DIR (default $TMPDIR)]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
patients="${1:-100000}"
work_root="${2:-${TMPDIR:-/tmp}}"
python3 -c 'import duckdb' 2>/dev/null || python3 -m pip install --quiet duckdb >&2
swift build -c release --product shardvault >&2
bin="$(swift build -c release --show-bin-path)/shardvault"
work="$(mktemp -d "$work_root/shardvault-analysis.XXXXXX")"
trap 'rm -rf "$work"' EXIT

"$bin" generate --patients "$patients" --seed 7 "$work/csv" | tail -1
echo "CSV: $(du -sb "$work/csv" | cut -f1) bytes"
"$bin" init --vault "$work/vault" >/dev/null
"$bin" ingest --vault "$work/vault" --dataset demo --format synthea-csv --json "$work/csv" > "$work/ingest.json"
echo "sealed: $(du -sb "$work/vault/data" | cut -f1) bytes in $(ls "$work/vault/data/demo"/g*/ | wc -l) shards"
user="$(id -un)"
cat > "$work/vault/policies/bench.yaml" <<YAML
principals:
  "$user-bench": {roles: [bench]}
roles:
  bench:
    allow:
      - actions: [analyze, reveal]
        datasets: ["*"]
        purposes: [HRESCH]
    disclosure: {minCell: 11}
YAML
"$bin" demo --help >/dev/null
sed -n '/static let exampleSpec = """/,/^    """/p' Sources/shardvault/DemoCommand.swift | sed '1d;$d' | sed 's/^    //' > "$work/spec.json"
for isolation in process thread process thread; do
  /usr/bin/time -f "analyze --isolation $isolation: wall_s=%e peak_rss_kib=%M" \
    "$bin" analyze --vault "$work/vault" --spec "$work/spec.json" --as "$user-bench" --isolation "$isolation" --json > /dev/null
done
python3 Benchmarks/duckdb_example.py "$work/csv"
python3 Benchmarks/duckdb_example.py "$work/csv"
