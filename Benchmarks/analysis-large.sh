#!/usr/bin/env bash
# The analysis benchmark at a size whose plaintext CSV does not fit on the disk: a million
# patients of Synthea-shaped CSV is about 100 GB. The CSV is generated in batches (one
# seed each), each batch compressed with zstd as soon as it is written; ingest reads the
# batches through named pipes fed by `zstd -d` (one folder per batch, one dataset), and
# DuckDB reads the same .csv.zst files itself. Peak disk: the compressed CSV (~5% of the
# plaintext), one plaintext batch, the encrypted ingest staging and the sealed shards.
# Then, in one run: the demo's example spec over the sealed shards in worker processes and
# in threads, and the same query in DuckDB over the compressed plaintext CSV.
# Usage: Benchmarks/analysis-large.sh [PATIENTS (default 1000000)] [BATCH (default 100000)] [SHARDS (default PATIENTS/2000)] [WORK_DIR (default $TMPDIR)]
# KEEP=1 keeps the work folder (and prints its path); REUSE=THAT_FOLDER then skips straight
# to the timed analyses, so the preparation and the timing can run at different times;
# PREPARE_ONLY=1 stops (and keeps the folder) before them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
patients="${1:-1000000}"
batch="${2:-100000}"
shards="${3:-$(( (patients + 1999) / 2000 ))}"
work_root="${4:-${TMPDIR:-/tmp}}"
command -v zstd >/dev/null || { echo "needs zstd (apt-get install -y zstd)" >&2; exit 69; }
python3 -c 'import duckdb' 2>/dev/null || python3 -m pip install --quiet duckdb >&2
swift build -c release --product shardvault >&2
bin="$(swift build -c release --show-bin-path)/shardvault"
writers=()
if [ -n "${REUSE:-}" ]; then
  work="$REUSE"
  [ -f "$work/spec.json" ] || { echo "REUSE=$work: not a kept work folder of this script" >&2; exit 66; }
  KEEP=1
else
  work="$(mktemp -d "$work_root/shardvault-analysis-large.XXXXXX")"
fi
cleanup() {
  for pid in "${writers[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
tables=(patients conditions observations medications encounters procedures immunizations)
user="$(id -un)"

if [ -z "${REUSE:-}" ]; then

echo "== generate $patients patients in batches of $batch, zstd -3 each batch"
SECONDS=0
plain=0
part=0
for (( first = 0; first < patients; first += batch )); do
  n=$(( patients - first < batch ? patients - first : batch ))
  dir="$work/csv/part-$(printf %03d "$part")"
  "$bin" generate --patients "$n" --seed "$(( 1000 + part ))" "$dir" >/dev/null
  plain=$(( plain + $(du -sb "$dir" | cut -f1) ))
  zstd -q -T0 -3 --rm "$dir"/*.csv
  part=$(( part + 1 ))
done
echo "CSV: $plain bytes in $part batches, $(du -sb "$work/csv" | cut -f1) bytes as .csv.zst, generated and compressed in $SECONDS s"

echo "== ingest through named pipes, $shards shards"
"$bin" init --vault "$work/vault" >/dev/null
folders=()
for dir in "$work"/csv/part-*; do
  pipes="$work/pipes/$(basename "$dir")"
  mkdir -p "$pipes"
  for table in "${tables[@]}"; do
    mkfifo "$pipes/$table.csv"
    zstd -q -d -c "$dir/$table.csv.zst" > "$pipes/$table.csv" &
    writers+=($!)
  done
  folders+=("$pipes")
done
/usr/bin/time -f "ingest: wall_s=%e peak_rss_kib=%M" \
  "$bin" ingest --vault "$work/vault" --dataset large --format synthea-csv --shards "$shards" --json "${folders[@]}" > "$work/ingest.json"
wait "${writers[@]}"
writers=()
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("ingested: %d patients, %d records" % (r["records"]["patients"], sum(r["records"].values())))' "$work/ingest.json"
echo "sealed: $(du -sb "$work/vault/data" | cut -f1) bytes in $(ls "$work/vault/data/large"/g*/ | wc -l) shards"

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
sed -n '/static let exampleSpec = """/,/^    """/p' Sources/shardvault/DemoCommand.swift | sed '1d;$d' | sed 's/^    //' \
  | sed 's/"dataset": "[^"]*"/"dataset": "large"/' > "$work/spec.json"
fi
if [ "${PREPARE_ONLY:-0}" = 1 ]; then KEEP=1; exit 0; fi

echo "== one analysis, the demo's example spec"
for isolation in process thread process thread; do
  /usr/bin/time -f "analyze --isolation $isolation: wall_s=%e peak_rss_kib=%M" \
    "$bin" analyze --vault "$work/vault" --spec "$work/spec.json" --as "$user-bench" --isolation "$isolation" --json > "$work/analysis.json"
done
for run in 1 2; do
  DUCKDB_RESULT="$work/duckdb.json" /usr/bin/time -f "duckdb over .csv.zst: wall_s=%e peak_rss_kib=%M" \
    python3 Benchmarks/duckdb_example.py "$work/csv/part-*/patients.csv.zst" "$work/csv/part-*/observations.csv.zst"
done
result="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["result"])' "$work/analysis.json")"
"$bin" results reveal "$result" --vault "$work/vault" --as "$user-bench" > "$work/revealed.json"
python3 Benchmarks/same_numbers.py "$work/revealed.json" "$work/duckdb.json"
