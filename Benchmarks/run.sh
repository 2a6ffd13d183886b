#!/usr/bin/env bash
# Reproduces every figure of docs/benchmarks.md in one run, each next to its reference:
# seal and open of 1 GiB against the `openssl speed` limit, age, Python cryptography and
# gpg; ingest against DuckDB loading the same CSV; three analyses against DuckDB over the
# CSV and over its own tables; process against thread isolation; key rewrap against a
# full data rotation; audit appends against the fsync rate and `audit verify`; and the
# scaling of analysis time and memory. Writes docs/benchmarks.json, docs/benchmarks.md
# and docs/benchmarks-scaling.svg.
#
# Usage: Benchmarks/run.sh [--scales 10000,100000,1000000] [--seal-mib 1024]
#          [--audit-entries 1000000] [--key-patients 100000] [--key-shards 1000]
#          [--only crypto,scales,keys,audit] [--merge] [--work DIR (default $TMPDIR)]
# A scale whose plain CSV does not fit on the work disk is generated in zstd-compressed
# batches, fed to ingest through named pipes and read by DuckDB compressed. --merge keeps
# the sections and scales not run now from the last report. A full run takes about
# an hour on 2 cores, most of it at 1,000,000 patients.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
missing=()
command -v age >/dev/null || missing+=(age)
command -v gpg >/dev/null || missing+=(gnupg)
[ -x /usr/bin/time ] || missing+=(time)
command -v zstd >/dev/null || missing+=(zstd)
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get install -y "${missing[@]}" >&2 || { $sudo_cmd apt-get update >&2 && $sudo_cmd apt-get install -y "${missing[@]}" >&2; }
fi
python3 -c 'import duckdb' 2>/dev/null || python3 -m pip install --quiet duckdb >&2
python3 -c 'import cryptography' 2>/dev/null || python3 -m pip install --quiet cryptography >&2
swift build -c release --product shardvault >&2
swift build -c release --product shardvault-bench >&2
bin="$(swift build -c release --show-bin-path)"
work_root="${TMPDIR:-/tmp}"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --work) work_root="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
work="$(mktemp -d "$work_root/shardvault-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
python3 Benchmarks/harness.py --bin "$bin" --work "$work" --out docs --command "Benchmarks/run.sh${args[*]:+ ${args[*]}}" "${args[@]}"
