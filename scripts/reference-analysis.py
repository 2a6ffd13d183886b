#!/usr/bin/env python3
"""Independent reference for ShardVault analyses: computes a job spec's groups directly
from a Synthea CSV folder with the Python standard library only (csv, statistics).
The tests compare `shardvault results reveal` with this, number for number.

Usage: reference-analysis.py SYNTHEA_CSV_DIR SPEC.json MIN_CELL  -> JSON on stdout
"""
import csv
import json
import math
import sys
from datetime import date


def numeric(row):
    kind, raw = row.get("TYPE", ""), row.get("VALUE", "")
    if kind == "numeric" or kind == "":
        try:
            v = float(raw)
        except ValueError:
            return None
        return v if math.isfinite(v) else None
    return None


def quantile(values, p):
    s = sorted(values)
    h = (len(s) - 1) * p / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def statistic(name, values):
    if not values:
        return 0 if name == "count" else None
    if name == "count":
        return len(values)
    if name == "mean":
        return math.fsum(values) / len(values)
    if name == "min":
        return min(values)
    if name == "max":
        return max(values)
    if name == "stddev":
        if len(values) < 2:
            return None
        m = math.fsum(values) / len(values)
        return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))
    return quantile(values, int(name[1:]))


def main():
    folder, spec_path, min_cell = sys.argv[1], sys.argv[2], int(sys.argv[3])
    spec = json.load(open(spec_path))
    as_of = date.fromisoformat(spec["asOf"])
    cohort = spec.get("cohort", {})
    rows = lambda name: csv.DictReader(open(f"{folder}/{name}", newline="", encoding="utf-8"))

    patients = {}
    for r in rows("patients.csv"):
        born = date.fromisoformat(r["BIRTHDATE"][:10])
        if born > as_of:
            continue
        age = as_of.year - born.year - ((as_of.month, as_of.day) < (born.month, born.day))
        died = r["DEATHDATE"][:10]
        dead = bool(died) and date.fromisoformat(died) <= as_of
        sex = {"M": "male", "F": "female"}[r["GENDER"]]
        patients[r["Id"]] = dict(age=age, dead=dead, sex=sex, race=r["RACE"], ethnicity=r["ETHNICITY"], state=r["STATE"])

    def keep(pid, p):
        if "sex" in cohort and p["sex"] not in cohort["sex"]:
            return False
        age = cohort.get("age", {})
        if "min" in age and p["age"] < age["min"]:
            return False
        if "max" in age and p["age"] > age["max"]:
            return False
        if "alive" in cohort and cohort["alive"] == p["dead"]:
            return False
        return True

    chosen = {pid for pid, p in patients.items() if keep(pid, p)}
    for table, field in (("conditions.csv", "conditions"), ("medications.csv", "medications")):
        if field in cohort:
            codes = set(cohort[field]["anyOf"])
            chosen &= {r["PATIENT"] for r in rows(table) if r["CODE"] in codes}
    observations = list(rows("observations.csv")) if (cohort.get("observations") or any("observation" in m for m in spec["measures"])) else []
    for f in cohort.get("observations", []):
        ok = set()
        for r in observations:
            v = numeric(r)
            if r["CODE"] == f["code"] and v is not None and ("min" not in f or v >= f["min"]) and ("max" not in f or v <= f["max"]):
                ok.add(r["PATIENT"])
        chosen &= ok

    def key(p):
        out = {}
        for d in spec.get("groupBy", []):
            if d == "ageBand10":
                low = p["age"] // 10 * 10
                out[d] = f"{low}-{low + 9}"
            else:
                out[d] = p[d]
        return out

    groups = {}
    for pid in chosen:
        k = json.dumps(key(patients[pid]), sort_keys=True)
        groups.setdefault(k, {"patients": 0, "values": {}})["patients"] += 1
    wanted = {m["observation"] for m in spec["measures"] if "observation" in m}
    for r in observations:
        if r["CODE"] in wanted and r["PATIENT"] in chosen:
            v = numeric(r)
            if v is not None:
                k = json.dumps(key(patients[r["PATIENT"]]), sort_keys=True)
                groups[k]["values"].setdefault(r["CODE"], []).append(v)
    if not spec.get("groupBy") and not groups:
        groups[json.dumps({})] = {"patients": 0, "values": {}}

    out = []
    for k in sorted(groups):
        g = groups[k]
        if g["patients"] < min_cell:
            out.append({"key": json.loads(k), "suppressed": True})
            continue
        measures = {}
        for m in spec["measures"]:
            if m.get("count") == "patients":
                measures[m["name"]] = g["patients"]
            else:
                values = g["values"].get(m["observation"], [])
                measures[m["name"]] = {s: statistic(s, values) for s in m["stats"]}
        out.append({"key": json.loads(k), "suppressed": False, "measures": measures})
    print(json.dumps({"groups": out}, sort_keys=True))


main()
