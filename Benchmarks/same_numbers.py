#!/usr/bin/env python3
"""Compares a revealed ShardVault result with the same query's rows from DuckDB
(duckdb_example.py with DUCKDB_RESULT set): the same groups, the same suppression, counts
equal and statistics within 1e-9 relative. Prints one line; exits 1 on a difference.

Usage: same_numbers.py REVEALED.json DUCKDB.json
"""
import json
import sys


def key(group):
    return json.dumps(group["key"], sort_keys=True)


def close(a, b, where, problems):
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            problems.append(f"{where}: fields {sorted(a)} vs {sorted(b)}")
        for k in a.keys() & b.keys():
            close(a[k], b[k], f"{where}.{k}", problems)
    elif a is None or b is None:
        if a is not b:
            problems.append(f"{where}: {a} vs {b}")
    elif abs(a - b) > max(1e-9 * max(abs(a), abs(b)), 1e-12):
        problems.append(f"{where}: {a} vs {b}")


ours = {key(g): g for g in json.load(open(sys.argv[1]))["groups"]}
theirs = {key(g): g for g in json.load(open(sys.argv[2]))["groups"]}
problems = []
if ours.keys() != theirs.keys():
    problems.append(f"groups differ: {sorted(ours.keys() ^ theirs.keys())}")
for k in ours.keys() & theirs.keys():
    if ours[k]["suppressed"] != theirs[k]["suppressed"]:
        problems.append(f"{k}: suppressed {ours[k]['suppressed']} vs {theirs[k]['suppressed']}")
    elif not ours[k]["suppressed"]:
        close(ours[k]["measures"], theirs[k]["measures"], k, problems)
shown = sum(1 for g in ours.values() if not g["suppressed"])
if problems:
    print(f"DIFFERENT from DuckDB in {len(problems)} places:", *problems[:10], sep="\n  ")
    sys.exit(1)
print(f"same numbers as DuckDB: {len(ours)} groups ({shown} shown, {len(ours) - shown} suppressed), counts equal, statistics within 1e-9")
