#!/usr/bin/env python3
"""Turns the harness's report (benchmarks.json) into docs/benchmarks.md and the scaling
plot docs/benchmarks-scaling.svg. Run by harness.py; can be rerun on a kept report.

Usage: report.py REPORT.json OUT_DIR
"""
import json
import math
import sys

report = json.load(open(sys.argv[1]))
out_dir = sys.argv[2]
rows = []  # (group, what, shardvault, reference, ratio, target, met)


def add(group, what, ours, theirs, ratio, target, met):
    rows.append((group, what, ours, theirs, ratio, target, "yes" if met else "**no**" if met is not None else "-"))


def gbps(value):
    return f"{value:.2f} GB/s"


def seconds(value):
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


crypto = report.get("crypto")
if crypto:
    cores = report["machine"]["cores"]
    for run in crypto["shardvault"]["runs"]:
        limit = crypto["limits"][str(run["threads"])]
        label = "1 core" if run["threads"] == 1 else f"{run['threads']} cores"
        reference = f"limit {gbps(limit['limitGBps'])} (GCM {limit['aesGcmGBps']:.2f}, HMAC {limit['hmacSha256GBps']:.2f})"
        for kind in ("seal", "open"):
            ratio = run[f"{kind}GBps"] / limit["limitGBps"]
            add("Seal and open, 1 GiB", f"{kind}, {label}", gbps(run[f"{kind}GBps"]), reference, f"{ratio:.2f}", ">= 0.90 of the limit", ratio >= 0.9)
    best = max(crypto["shardvault"]["runs"], key=lambda r: r["threads"])
    for tool, figures in crypto["others"].items():
        for kind in ("seal", "open"):
            ratio = best[f"{kind}GBps"] / figures[f"{kind}GBps"]
            add("Seal and open, 1 GiB", f"{kind}, {best['threads']} cores, against {tool}", gbps(best[f"{kind}GBps"]),
                gbps(figures[f"{kind}GBps"]), f"{ratio:.1f}x", "> 1x (faster)", ratio > 1)

for scale in report.get("scales", []):
    patients = f"{scale['patients']:,}"
    if "skipped" in scale:
        add("Ingest", f"{patients} patients", "not run", scale["skipped"], "-", "<= 2x DuckDB's time", None)
        continue
    ingest, load = scale["ingest"], scale["duckdbLoad"]
    ratio = ingest["seconds"] / load["seconds"]
    add("Ingest", f"{patients} patients ({scale['csvBytes'] / 1e9:.1f} GB CSV)", f"{seconds(ingest['seconds'])}, {ingest['peakMiB']:.0f} MiB",
        f"DuckDB load {seconds(load['seconds'])}, {load['peakMiB']:.0f} MiB", f"{ratio:.2f}x the time", "<= 2x", ratio <= 2)
    for spec, row in scale.get("analyses", {}).items():
        ours = row["process"]["seconds"]
        same = "same numbers" if row["duckdbCsv"]["sameNumbers"] and row["duckdbTable"]["sameNumbers"] else "**numbers differ**"
        ratio = ours / row["duckdbCsv"]["seconds"]
        add(f"Analysis, {patients} patients", f"{spec} vs DuckDB over CSV ({same})", seconds(ours), seconds(row["duckdbCsv"]["seconds"]),
            f"{ratio:.2f}x the time", "<= 1x", ratio <= 1)
        ratio = ours / row["duckdbTable"]["seconds"]
        add(f"Analysis, {patients} patients", f"{spec} vs DuckDB table", seconds(ours), seconds(row["duckdbTable"]["seconds"]),
            f"{ratio:.2f}x the time", "<= 2x", ratio <= 2)
        ratio = ours / row["thread"]["seconds"]
        add(f"Isolation, {patients} patients", f"{spec}: process vs thread", seconds(ours), seconds(row["thread"]["seconds"]),
            f"{(ratio - 1) * 100:+.0f}%", "< +10%", ratio < 1.10)

keys = report.get("keys")
if keys:
    rewrap = min(r["seconds"] for r in keys["rewrap"])
    files = keys["rewrap"][0]["files"]
    data = keys["rotateData"]
    add("Key rotation", f"rewrap of {files:,} files vs full data rotation ({keys['patients']:,} patients)",
        f"rewrap {seconds(rewrap)} ({files / rewrap:,.0f} shards/s)",
        f"rotate --data {seconds(data['seconds'])} ({data['plaintextBytes'] / 1e6 / data['seconds']:.0f} MB/s)",
        f"{data['seconds'] / rewrap:.0f}x faster", "-", None)

audit = report.get("audit")
if audit:
    add("Audit", "durable appends, batches of 1,000", f"{audit['batchedAppendsPerSecond']:,.0f}/s", f"fsync {audit['fsyncPerSecond']:,.0f}/s",
        f"{audit['batchedAppendsPerSecond'] / audit['fsyncPerSecond']:.0f}x", "-", None)
    add("Audit", "durable appends, one per call", f"{audit['singleAppendsPerSecond']:,.0f}/s", f"fsync {audit['fsyncPerSecond']:,.0f}/s",
        f"{audit['singleAppendsPerSecond'] / audit['fsyncPerSecond']:.2f}x", "-", None)
    add("Audit", f"`audit verify` of {audit['entries']:,} entries", seconds(audit["verifySeconds"]), "-",
        f"{audit['entries'] / audit['verifySeconds']:,.0f} entries/s", "-", None)

machine = report["machine"]
lines = [
    "# Benchmarks",
    "",
    f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memoryGiB']} GiB, Linux {machine['kernel']};",
    f"{machine['openssl']}; {machine['swift']}; DuckDB {machine['duckdb']}, Python cryptography {machine['pythonCryptography']},",
    f"age {machine['age']}, {machine['gpg']}.",
    "",
    "Reproduce every figure with `Benchmarks/run.sh` (about an hour on 2 cores; see the",
    "script for its arguments). This page comes from: "
    + "; ".join(f"`{run['command']}` on {run['date']}" + (f" ({run['cpu']})" if run.get("cpu") else "")
                for run in report.get("runs", [{"command": report["command"], "date": machine["date"]}]))
    + " (the machine above is the latest run's; a section not run then keeps its figures from the run that made them).",
    "Every figure is measured in the same run as its reference, because the machine is shared and",
    "absolute times alone mean little. The whole report is `docs/benchmarks.json`; what each",
    "operation must do at the least, the profiles, and why some targets are missed are in",
    "`docs/performance.md`.",
    "",
    "| group | measure | ShardVault | reference | ratio | target | met |",
    "|---|---|---|---|---|---|---|",
]
lines += [f"| {' | '.join(row)} |" for row in rows]

if report.get("notes"):
    lines += [""] + [f"Note: {note}" for note in report["notes"]]

scales = [s for s in report.get("scales", []) if "skipped" not in s and len(s.get("analyses", {})) == 3]
if scales:
    lines += ["", "## Scaling", "",
              "Analysis time (all three specs, worker processes) and the peak memory of the largest",
              "process, by dataset size. The memory bound is the largest shard times the workers.", "",
              "| patients | sealed | shards | largest shard | analysis (process) | analysis (thread) | peak memory | workers x largest shard |",
              "|---|---|---|---|---|---|---|---|"]
    for s in scales:
        process = sum(r["process"]["seconds"] for r in s["analyses"].values())
        thread = sum(r["thread"]["seconds"] for r in s["analyses"].values())
        peak = max(max(r["process"]["peakMiB"], r["thread"]["peakMiB"]) for r in s["analyses"].values())
        lines.append(f"| {s['patients']:,} | {s['ingest']['sealedBytes'] / 1e9:.2f} GB | {s['ingest']['shards']} | "
                     f"{s['largestShardBytes'] / 1e6:.0f} MB | {seconds(process)} | {seconds(thread)} | {peak:.0f} MiB | "
                     f"{machine['cores'] * s['largestShardBytes'] / 2**20:.0f} MiB |")
    lines += ["", "![analysis time and peak memory by patients](benchmarks-scaling.svg)"]

    # The plot: time and memory against patients, both axes logarithmic.
    width, height, pad = 640, 300, 50
    xs = [math.log10(s["patients"]) for s in scales]
    series = {
        "process (s)": [sum(r["process"]["seconds"] for r in s["analyses"].values()) for s in scales],
        "thread (s)": [sum(r["thread"]["seconds"] for r in s["analyses"].values()) for s in scales],
        "peak memory (MiB)": [max(max(r["process"]["peakMiB"], r["thread"]["peakMiB"]) for r in s["analyses"].values()) for s in scales],
    }
    values = [v for vs in series.values() for v in vs]
    y_low, y_high = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    x_low, x_high = math.floor(min(xs)), math.ceil(max(xs)) if max(xs) > min(xs) else math.floor(min(xs)) + 1

    def point(x, y):
        px = pad + (x - x_low) / (x_high - x_low) * (width - 2 * pad)
        py = height - pad - (math.log10(y) - y_low) / max(y_high - y_low, 1) * (height - 2 * pad)
        return px, py

    colours = ["#1f77b4", "#ff7f0e", "#2ca02c"]
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for e in range(y_low, y_high + 1):
        _, py = point(x_low, 10 ** e)
        svg.append(f'<line x1="{pad}" y1="{py:.1f}" x2="{width - pad}" y2="{py:.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{pad - 6}" y="{py + 4:.1f}" text-anchor="end">{10 ** e:g}</text>')
    for e in range(x_low, x_high + 1):
        px, _ = point(e, 10 ** y_low)
        svg.append(f'<line x1="{px:.1f}" y1="{pad}" x2="{px:.1f}" y2="{height - pad}" stroke="#ddd"/>')
        svg.append(f'<text x="{px:.1f}" y="{height - pad + 16}" text-anchor="middle">{10 ** e:,}</text>')
    svg.append(f'<text x="{width / 2}" y="{height - 10}" text-anchor="middle">patients</text>')
    for (name, ys), colour, row in zip(series.items(), colours, range(3)):
        points = " ".join(f"{point(x, y)[0]:.1f},{point(x, y)[1]:.1f}" for x, y in zip(xs, ys))
        svg.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in zip(xs, ys):
            px, py = point(x, y)
            svg.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>')
        svg.append(f'<text x="{pad + 10}" y="{pad - 30 + 12 * row}" fill="{colour}">{name}</text>')
    svg.append("</svg>")
    with open(f"{out_dir}/benchmarks-scaling.svg", "w") as plot:
        plot.write("\n".join(svg) + "\n")

with open(f"{out_dir}/benchmarks.md", "w") as page:
    page.write("\n".join(lines) + "\n")
print(f"wrote {out_dir}/benchmarks.md")
