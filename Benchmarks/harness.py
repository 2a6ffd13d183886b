#!/usr/bin/env python3
"""Every benchmark figure of docs/benchmarks.md, each measured in the same run as its
reference, and written out as a report (JSON), a markdown page and a scaling plot (SVG).
Run through Benchmarks/run.sh, which builds the release binaries and installs the
reference tools first.

  harness.py --bin DIR --work DIR [--scales 10000,100000,1000000] [--seal-mib 1024]
             [--audit-entries 1000000] [--key-patients 100000] [--key-shards 1000]
             [--only crypto,scales,keys,audit] [--merge] [--out docs]

A scale whose plain CSV, vault and DuckDB database would not fit on the work disk is
generated in batches of 100,000 patients kept zstd-compressed: ingest reads them through
named pipes and DuckDB reads the compressed files itself. The report is rewritten after
each section, so an interrupted run keeps what it measured.

Times are wall-clock seconds of whole commands (the best of the runs where there are
several); memory is the peak resident set of the largest process of a command (GNU
time's %M). Ratios put ShardVault over its reference so that above 1 means
ShardVault is faster, except where the row says otherwise.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SPECS = ["count-by-sex-age", "diabetes-hba1c", "metformin-obese"]
TABLES = ["patients", "conditions", "observations", "medications", "encounters", "procedures", "immunizations"]
CSV_BYTES_PER_PATIENT = 102_000  # generated Synthea-shaped CSV, measured at 100,000 patients


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


def run(command, stdout=None, env=None, check=True):
    """Runs a command; returns (wall seconds, peak RSS in KiB, stdout text).

    The peak comes from GNU time around the command: a child forked from this Python
    process would report at least this process's own resident size (the high-water mark
    survives exec), which would hide anything smaller."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        started = time.time()
        process = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss_file.name] + command,
                                   stdout=subprocess.PIPE if stdout is None else stdout, env=env, text=True)
        output = process.stdout.read() if stdout is None else ""
        process.wait()
        wall = time.time() - started
        if check and process.returncode != 0:
            raise SystemExit(f"failed ({process.returncode}): {' '.join(command)}")
        lines = [line for line in rss_file.read().splitlines() if line.strip().isdigit()]
        return wall, int(lines[-1]) if lines else 0, output


def version(command):
    try:
        out = subprocess.run(command, capture_output=True, text=True).stdout + ""
        return out.strip().splitlines()[0] if out.strip() else "unknown"
    except OSError:
        return "not installed"


def machine():
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    memory = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    import cryptography
    import duckdb
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model, "cores": os.cpu_count(), "memoryGiB": round(memory / 2**20, 1),
        "kernel": platform.release(), "openssl": version(["openssl", "version"]),
        "swift": version(["swift", "--version"]), "duckdb": duckdb.__version__,
        "pythonCryptography": cryptography.__version__, "age": version(["age", "--version"]),
        "gpg": version(["gpg", "--version"]),
    }


def openssl_speed(processes, algorithm):
    """GB/s at 16 KiB blocks, from `openssl speed`."""
    multi = ["-multi", str(processes)] if processes > 1 else []
    what = {"aes-256-gcm": ["-evp", "aes-256-gcm"], "hmac-sha256": ["-hmac", "sha256"]}[algorithm]
    out = subprocess.run(["openssl", "speed", *multi, "-seconds", "3", "-bytes", "16384", *what],
                         capture_output=True, text=True).stdout
    line = [l for l in out.splitlines() if re.match(r"^(aes-256-gcm|AES-256-GCM|evp|hmac|HMAC)", l.strip())][-1]
    return float(line.split()[-1].rstrip("k")) * 1000 / 1e9


def crypto(args, work):
    cores = os.cpu_count()
    result = {"limits": {}, "shardvault": None, "others": {}}
    for processes in sorted({1, cores}):
        gcm, hmac = openssl_speed(processes, "aes-256-gcm"), openssl_speed(processes, "hmac-sha256")
        result["limits"][str(processes)] = {"aesGcmGBps": gcm, "hmacSha256GBps": hmac, "limitGBps": 1 / (1 / gcm + 1 / hmac)}
        log(f"openssl speed, {processes} process(es): GCM {gcm:.2f} GB/s, HMAC {hmac:.2f} GB/s")
    _, rss, out = run([f"{args.bin}/shardvault-bench", str(args.seal_mib), work, "--json"])
    result["shardvault"] = json.loads(out)
    log(f"shardvault seal/open: {out.strip()}")
    # The same amount of data through the tools people use instead, one file each way.
    size = result["shardvault"]["plaintextBytes"]
    plain, sealed = f"{work}/plain.bin", f"{work}/sealed.bin"
    with open(plain, "wb") as out_file:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, 1 << 24))
            out_file.write(block)
            remaining -= len(block)
    run(["cat", plain], stdout=subprocess.DEVNULL)  # into the page cache
    key = f"{work}/age-key.txt"
    subprocess.run(["age-keygen", "-o", key], capture_output=True, check=True)
    recipient = subprocess.run(["age-keygen", "-y", key], capture_output=True, text=True, check=True).stdout.strip()
    passphrase = f"{work}/passphrase"
    with open(passphrase, "w") as p:
        p.write(os.urandom(16).hex())
    gpg_home = f"{work}/gnupg"
    os.makedirs(gpg_home, mode=0o700, exist_ok=True)
    gpg = ["gpg", "--batch", "--yes", "--quiet", "--homedir", gpg_home, "--pinentry-mode", "loopback", "--passphrase-file", passphrase]
    python_gcm = f"{HERE}/python_aesgcm.py"
    tools = {
        "age": (["age", "-r", recipient, "-o", sealed, plain], ["age", "-d", "-i", key, "-o", "/dev/null", sealed]),
        "python-cryptography-aesgcm-1MiB": (["python3", python_gcm, "seal", plain, sealed], ["python3", python_gcm, "open", sealed, "/dev/null"]),
        "gpg-aes256": (gpg + ["--symmetric", "--cipher-algo", "AES256", "--compress-algo", "none", "-o", sealed, plain],
                       gpg + ["-o", "/dev/null", "-d", sealed]),
    }
    for name, (seal_command, open_command) in tools.items():
        seal_seconds = min(run(seal_command)[0] for _ in range(2))
        open_seconds = min(run(open_command)[0] for _ in range(2))
        result["others"][name] = {"sealGBps": size / 1e9 / seal_seconds, "openGBps": size / 1e9 / open_seconds}
        log(f"{name}: seal {size / 1e9 / seal_seconds:.2f} GB/s, open {size / 1e9 / open_seconds:.2f} GB/s")
        os.remove(sealed)
    os.remove(plain)
    return result


POLICY = """principals:
  "{user}-bench": {{roles: [bench]}}
roles:
  bench:
    allow:
      - actions: [analyze, reveal]
        datasets: ["*"]
        purposes: [HRESCH]
    disclosure: {{minCell: 11}}
"""


def default_shards(input_bytes):
    """The shard count ingest picks for this much input (Ingestor.defaultShardCount): the
    named pipes the compressed path reads have no size for ingest to see."""
    per_shard = 384 << 20
    return max(4, min(4096, (input_bytes + per_shard - 1) // per_shard))


def scale(args, work, patients, progress=lambda out: None):
    """One dataset size; `progress(out)` is called with the figures so far after each step."""
    sv = f"{args.bin}/shardvault"
    out = {"patients": patients}
    need = patients * CSV_BYTES_PER_PATIENT * 1.6
    free = shutil.disk_usage(work).free
    compressed = need > free
    if compressed and patients * CSV_BYTES_PER_PATIENT * 0.45 > free:
        out["skipped"] = f"needs about {patients * CSV_BYTES_PER_PATIENT * 0.45 / 1e9:.0f} GB of disk even with compressed CSV; {free / 1e9:.0f} GB free"
        log(f"{patients} patients: skipped, {out['skipped']}")
        return out
    csv, vault, db = f"{work}/csv-{patients}", f"{work}/vault-{patients}", f"{work}/duck-{patients}.duckdb"
    run([sv, "init", "--vault", vault], stdout=subprocess.DEVNULL)
    if not compressed:
        wall, _, _ = run([sv, "generate", "--patients", str(patients), "--seed", "7", csv], stdout=subprocess.DEVNULL)
        out["csvBytes"] = sum(os.path.getsize(f"{csv}/{f}") for f in os.listdir(csv))
        log(f"{patients} patients: {out['csvBytes'] / 1e9:.2f} GB of CSV generated in {wall:.1f} s")
        run(["cat"] + [f"{csv}/{f}" for f in os.listdir(csv)], stdout=subprocess.DEVNULL)
        pattern = f"{csv}/{{table}}.csv"
        wall, rss, text = run([sv, "ingest", "--vault", vault, "--dataset", "bench", "--format", "synthea-csv", "--json", csv])
    else:
        # Batches of 100,000 patients, each compressed with zstd as soon as it is written;
        # ingest reads them through named pipes fed by `zstd -d`, DuckDB reads the .csv.zst
        # files itself. Both sides pay for decompression.
        out["csvBytes"], out["compressedBytes"], parts = 0, 0, []
        started = time.time()
        for first in range(0, patients, 100_000):
            part = f"{csv}/part-{len(parts):03d}"
            run([sv, "generate", "--patients", str(min(100_000, patients - first)), "--seed", str(1000 + len(parts)), part], stdout=subprocess.DEVNULL)
            out["csvBytes"] += sum(os.path.getsize(f"{part}/{f}") for f in os.listdir(part))
            run(["zstd", "-q", "-T0", "-3", "--rm"] + [f"{part}/{f}" for f in os.listdir(part)])
            out["compressedBytes"] += sum(os.path.getsize(f"{part}/{f}") for f in os.listdir(part))
            parts.append(part)
        log(f"{patients} patients: {out['csvBytes'] / 1e9:.1f} GB of CSV, {out['compressedBytes'] / 1e9:.2f} GB as zstd, in {time.time() - started:.0f} s")
        pattern = f"{csv}/part-*/{{table}}.csv.zst"
        folders, writers = [], []
        for part in parts:
            pipes = f"{work}/pipes/{os.path.basename(part)}"
            os.makedirs(pipes)
            for table in TABLES:
                os.mkfifo(f"{pipes}/{table}.csv")
                writers.append(subprocess.Popen(f"exec zstd -q -d -c {part}/{table}.csv.zst > {pipes}/{table}.csv", shell=True))
            folders.append(pipes)
        wall, rss, text = run([sv, "ingest", "--vault", vault, "--dataset", "bench", "--format", "synthea-csv", "--json",
                               "--shards", str(default_shards(out["csvBytes"]))] + folders)
        for writer in writers:
            writer.wait()
        shutil.rmtree(f"{work}/pipes")
    out["input"] = "zstd-compressed CSV through named pipes" if compressed else "CSV files"
    ingest = json.loads(text)
    out["ingest"] = {"seconds": wall, "peakMiB": rss / 1024, "shards": ingest.get("shards"), "sealedBytes": ingest.get("sealedBytes"),
                     "plaintextBytes": ingest.get("plaintextBytes")}
    log(f"  ingest: {wall:.1f} s, {rss / 1024:.0f} MiB")
    if not compressed:
        run(["cat"] + [f"{csv}/{f}" for f in os.listdir(csv)], stdout=subprocess.DEVNULL)
    wall, rss, text = run(["python3", f"{HERE}/duckdb_specs.py", "load", pattern, db])
    out["duckdbLoad"] = {"seconds": wall, "peakMiB": rss / 1024, "bytes": os.path.getsize(db)}
    log(f"  duckdb load: {wall:.1f} s, {rss / 1024:.0f} MiB")
    progress(out)
    generation = [d for d in os.listdir(f"{vault}/data/bench") if d.startswith("g")][0]
    shard_files = [f"{vault}/data/bench/{generation}/{f}" for f in os.listdir(f"{vault}/data/bench/{generation}") if f.endswith(".svs")]
    out["largestShardBytes"] = max(os.path.getsize(f) for f in shard_files)
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    with open(f"{vault}/policies/bench.yaml", "w") as policy:
        policy.write(POLICY.format(user=user))
    out["analyses"] = {}
    for spec in SPECS:
        # The sealed files are read first, as the CSV is for DuckDB: DuckDB's load or its
        # scans of the CSV for the previous spec may have pushed them out of the page cache,
        # and whichever isolation ran first would pay for it.
        run(["cat"] + shard_files, stdout=subprocess.DEVNULL)
        spec_path = f"{HERE}/specs/{spec}.json"
        row = {}
        runs = {"process": [], "thread": []}
        # Alternated, so that neither isolation always runs on a cooler or warmer machine;
        # the best of three of each, as for DuckDB over its table.
        for _ in range(3):
            for isolation in ("process", "thread"):
                wall, rss, text = run([sv, "analyze", "--vault", vault, "--spec", spec_path, "--as", f"{user}-bench",
                                       "--isolation", isolation, "--json", "--no-progress"])
                runs[isolation].append((wall, rss, json.loads(text)["result"]))
        for isolation in ("process", "thread"):
            row[isolation] = {"seconds": min(r[0] for r in runs[isolation]), "peakMiB": max(r[1] for r in runs[isolation]) / 1024}
        result_id = runs["process"][-1][2]
        revealed = f"{work}/revealed-{spec}.json"
        run([sv, "results", "reveal", result_id, "--vault", vault, "--as", f"{user}-bench"], stdout=open(revealed, "w"))
        for name, source, repeats in (("duckdbCsv", ["--csv", pattern], 2), ("duckdbTable", ["--db", db], 3)):
            reference = f"{work}/{name}-{spec}.json"
            _, rss, text = run(["python3", f"{HERE}/duckdb_specs.py", "query", spec_path, *source, "--runs", str(repeats), "--result", reference])
            same = subprocess.run(["python3", f"{HERE}/same_numbers.py", revealed, reference], capture_output=True, text=True)
            row[name] = {"seconds": min(json.loads(text)["seconds"]), "peakMiB": rss / 1024,
                         "sameNumbers": same.returncode == 0, "comparison": same.stdout.strip()}
        out["analyses"][spec] = row
        progress(out)
        log(f"  {spec}: " + ", ".join(f"{k} {v['seconds']:.2f} s" for k, v in row.items()))
    shutil.rmtree(csv)
    shutil.rmtree(vault)
    os.remove(db)
    return out


def keys(args, work):
    sv = f"{args.bin}/shardvault"
    csv, vault = f"{work}/csv-keys", f"{work}/vault-keys"
    run([sv, "generate", "--patients", str(args.key_patients), "--seed", "11", csv], stdout=subprocess.DEVNULL)
    run([sv, "init", "--vault", vault], stdout=subprocess.DEVNULL)
    run([sv, "ingest", "--vault", vault, "--dataset", "bench", "--format", "synthea-csv", "--shards", str(args.key_shards), csv],
        stdout=subprocess.DEVNULL)
    shutil.rmtree(csv)
    out = {"patients": args.key_patients, "shards": args.key_shards, "rewrap": []}
    for _ in range(2):
        run([sv, "keys", "rotate", "--vault", vault, "--dataset", "bench", "--kek"], stdout=subprocess.DEVNULL)
        wall, rss, text = run([sv, "keys", "rewrap", "--vault", vault, "--dataset", "bench", "--json"])
        out["rewrap"].append({"seconds": wall, "peakMiB": rss / 1024, "files": json.loads(text)["shards"] + json.loads(text)["results"]})
    wall, rss, text = run([sv, "keys", "rotate", "--vault", vault, "--dataset", "bench", "--data", "--json"])
    data = json.loads(text)
    out["rotateData"] = {"seconds": wall, "peakMiB": rss / 1024, "plaintextBytes": data["plaintextBytes"], "shards": data["shards"]}
    run([sv, "verify", "--vault", vault, "--dataset", "bench", "--deep"], stdout=subprocess.DEVNULL)
    log(f"keys: rewrap {min(r['seconds'] for r in out['rewrap']):.2f} s, rotate --data {wall:.1f} s")
    shutil.rmtree(vault)
    return out


def audit(args, work):
    env = dict(os.environ, AUDITBENCH_KEEP="1")
    _, _, text = run([f"{args.bin}/shardvault-bench", "audit", str(args.audit_entries), "1000", work], env=env)
    number = lambda pattern: float(re.search(pattern, text).group(1))
    out = {"entries": args.audit_entries,
           "fsyncPerSecond": number(r"fsync rate.*?: ([0-9.]+) per second"),
           "singleAppendsPerSecond": number(r"one entry per call.*?: ([0-9.]+) entries/s"),
           "batchedAppendsPerSecond": number(r"batches of \d+ entries per call.*?: ([0-9.]+) entries/s")}
    vault = re.search(r"kept vault: (.*)", text).group(1).strip()
    wall, rss, _ = run([f"{args.bin}/shardvault", "audit", "verify", "--vault", vault, "--as", "bench"], stdout=subprocess.DEVNULL)
    out["verifySeconds"], out["verifyPeakMiB"] = wall, rss / 1024
    shutil.rmtree(vault)
    log(f"audit: {out}")
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--scales", default="10000,100000,1000000")
    parser.add_argument("--seal-mib", type=int, default=1024)
    parser.add_argument("--audit-entries", type=int, default=1_000_000)
    parser.add_argument("--key-patients", type=int, default=100_000)
    parser.add_argument("--key-shards", type=int, default=1000)
    parser.add_argument("--only", default="crypto,scales,keys,audit")
    parser.add_argument("--out", default="docs")
    parser.add_argument("--command", default="Benchmarks/run.sh")
    parser.add_argument("--merge", action="store_true")
    args = parser.parse_args()
    sections = args.only.split(",")
    os.makedirs(args.out, exist_ok=True)
    path = f"{args.out}/benchmarks.json"
    # With --merge, sections and scales not run now keep their figures from the last report
    # (each row's two sides always come from one run).
    report = json.load(open(path)) if args.merge and os.path.exists(path) else {}
    report["machine"], report["command"] = machine(), args.command
    report["runs"] = (report.get("runs", []) if args.merge else []) + [{"date": report["machine"]["date"], "command": args.command,
                                                                         "sections": args.only, "scales": args.scales,
                                                                         "cpu": report["machine"]["cpu"]}]

    def save():
        with open(path, "w") as out:
            json.dump(report, out, indent=1, sort_keys=True)
        subprocess.run(["python3", f"{HERE}/report.py", path, args.out], check=True, stdout=subprocess.DEVNULL)

    if "crypto" in sections:
        report["crypto"] = crypto(args, args.work)
        save()
    if "scales" in sections:
        for patients in (int(p) for p in args.scales.split(",")):
            def progress(measured, patients=patients):
                report["scales"] = sorted([s for s in report.get("scales", []) if s["patients"] != patients] + [measured],
                                          key=lambda s: s["patients"])
                save()
            progress(scale(args, args.work, patients, progress))
    if "keys" in sections:
        report["keys"] = keys(args, args.work)
        save()
    if "audit" in sections:
        report["audit"] = audit(args, args.work)
        save()
    log(f"wrote {path} and {args.out}/benchmarks.md")


if __name__ == "__main__":
    main()
