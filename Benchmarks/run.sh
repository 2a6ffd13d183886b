#!/usr/bin/env bash
# Prints throughput figures next to their references, measured in the same run:
#   openssl speed (AES-256-GCM, HMAC-SHA256 and SHA-256 at 16 KiB, one process and one per core),
#   shard sealing and deep verification (one thread and all cores),
#   ingest of generated Synthea CSV (MB/s of CSV, peak memory) and deep verify of the result,
#   audit log appends (one writer, batched) and `audit verify` next to the disk's fsync rate.
# Usage: Benchmarks/run.sh [SEAL_MIB (default 1024)] [PATIENTS (default 100000)] [WORK_DIR (default $TMPDIR)] [AUDIT_ENTRIES (default 1000000)]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
seal_mib="${1:-1024}"
patients="${2:-100000}"
work_root="${3:-${TMPDIR:-/tmp}}"
audit_entries="${4:-1000000}"
cores="$(nproc)"
swift build -c release --product shardvault >&2
swift build -c release --product shardvault-bench >&2
bin="$(swift build -c release --show-bin-path)"
work="$(mktemp -d "$work_root/shardvault-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "== openssl speed, 16 KiB blocks (reference)"
for threads in 1 "$cores"; do
  multi=(); [ "$threads" -gt 1 ] && multi=(-multi "$threads")
  openssl speed "${multi[@]}" -seconds 3 -bytes 16384 -evp aes-256-gcm 2>/dev/null | awk -v t="$threads" '/^(aes-256-gcm|AES-256-GCM|evp)/ {printf "processes=%s  aes-256-gcm  %.2f GB/s\n", t, $NF/1e6}'
  openssl speed "${multi[@]}" -seconds 3 -bytes 16384 -hmac sha256 2>/dev/null | awk -v t="$threads" '/^(hmac|HMAC)/ {printf "processes=%s  hmac-sha256  %.2f GB/s\n", t, $NF/1e6}'
  openssl speed "${multi[@]}" -seconds 3 -bytes 16384 sha256 2>/dev/null | awk -v t="$threads" '/^sha256/ {printf "processes=%s  sha256       %.2f GB/s\n", t, $NF/1e6}'
done

echo
echo "== shard sealing and deep verification, ${seal_mib} MiB of plaintext (files in $work)"
"$bin/shardvault-bench" "$seal_mib" "$work"

echo
echo "== ingest of $patients generated patients"
"$bin/shardvault" generate --patients "$patients" --seed 7 "$work/csv"
csv_bytes="$(du -sb "$work/csv" | cut -f1)"
"$bin/shardvault" init --vault "$work/vault" >/dev/null
/usr/bin/time -f "peak_rss_kib=%M wall_s=%e" -o "$work/time.txt" \
  "$bin/shardvault" ingest --vault "$work/vault" --dataset bench --format synthea-csv --json "$work/csv" > "$work/ingest.json"
read -r rss wall < <(sed -E 's/peak_rss_kib=([0-9]+) wall_s=([0-9.]+)/\1 \2/' "$work/time.txt")
awk -v b="$csv_bytes" -v w="$wall" -v r="$rss" 'BEGIN { printf "CSV in: %.2f GB, %.1f s, %.1f MB/s, peak memory %.0f MiB\n", b/1e9, w, b/1e6/w, r/1024 }'
jq -r '"shards: \(.shards), plaintext: \(.plaintextBytes/1e9*100|floor/100) GB, sealed: \(.sealedBytes/1e9*100|floor/100) GB, patients: \(.records.patients), observations: \(.records.observations)"' "$work/ingest.json" 2>/dev/null || cat "$work/ingest.json"
rm -rf "$work/csv"
/usr/bin/time -f "wall_s=%e" "$bin/shardvault" verify --vault "$work/vault" --dataset bench --deep

echo
echo "== audit log: $audit_entries entries (fsync rate measured first, in the same run)"
AUDITBENCH_KEEP=1 "$bin/shardvault-bench" audit "$audit_entries" 1000 "$work"
/usr/bin/time -f "shardvault audit verify (command line, whole log): wall_s=%e peak_rss_kib=%M" \
  "$bin/shardvault" audit verify --vault "$work/auditbench-vault"
