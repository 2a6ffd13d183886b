#!/usr/bin/env bash
# Key rotation costs on one dataset, in one run: `keys rewrap` after `keys rotate --kek`
# (headers and manifest only) next to `keys rotate --data` (every shard decrypted and
# sealed again), and the rewrap rate in shards per second; then `keys rotate --signing`
# and `keys rotate --root` for reference. The dataset is generated Synthea-shaped CSV
# ingested into SHARDS shards.
# Usage: Benchmarks/keys.sh [PATIENTS (default 100000)] [SHARDS (default 1000)] [WORK_DIR (default $TMPDIR)]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
patients="${1:-100000}"
shards="${2:-1000}"
work_root="${3:-${TMPDIR:-/tmp}}"
swift build -c release --product shardvault >&2
bin="$(swift build -c release --show-bin-path)/shardvault"
work="$(mktemp -d "$work_root/shardvault-keys.XXXXXX")"
trap 'rm -rf "$work"' EXIT

"$bin" generate --patients "$patients" --seed 11 "$work/csv" >/dev/null
"$bin" init --vault "$work/vault" >/dev/null
"$bin" ingest --vault "$work/vault" --dataset bench --format synthea-csv --shards "$shards" --json "$work/csv" > "$work/ingest.json"
rm -rf "$work/csv"
echo "dataset: $patients patients, $shards shards, $(du -sb "$work/vault/data/bench" | cut -f1) bytes sealed"

timed() { # label, command...
  local label="$1"; shift
  /usr/bin/time -f "$label: wall_s=%e peak_rss_kib=%M" "$@" > "$work/out.json"
}
for run in 1 2; do
  "$bin" keys rotate --vault "$work/vault" --dataset bench --kek >/dev/null
  timed "keys rewrap (run $run)" "$bin" keys rewrap --vault "$work/vault" --dataset bench --json
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); n=r["shards"]+r["results"]; print("  %d files rewrapped in %.3f s: %.0f shards/s" % (n, r["seconds"], n / r["seconds"]))' "$work/out.json"
done
timed "keys rotate --data" "$bin" keys rotate --vault "$work/vault" --dataset bench --data --json
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("  %d shards, %.0f MB of plaintext re-encrypted in %.2f s: %.0f MB/s" % (r["shards"], r["plaintextBytes"] / 1e6, r["seconds"], r["plaintextBytes"] / 1e6 / r["seconds"]))' "$work/out.json"
timed "keys rotate --signing" "$bin" keys rotate --vault "$work/vault" --dataset bench --signing --json
timed "keys rotate --root" "$bin" keys rotate --vault "$work/vault" --root --json
"$bin" verify --vault "$work/vault" --dataset bench --deep | tail -1
