#!/usr/bin/env python3
"""Independent reference for ShardVault analyses: computes a job spec's groups directly
from the input files with the Python standard library only (csv, json, tarfile), for
the tests to compare with `shardvault results reveal`, number for number.

Usage: reference-analysis.py INPUT SPEC.json MIN_CELL [PATIENT_IDS]  -> JSON on stdout

INPUT is a Synthea CSV folder, or FHIR R4 Bundles: a .tgz of them, a folder of .json
files or one .json file. PATIENT_IDS, when given, is a file with one patient id per line:
only those patients are counted (to compare two exports of the same patients).

Demographic values are put in one vocabulary whatever the input (docs/job-spec.md):
race and ethnicity as the OMB category names, state as the two-letter USPS code.
"""
import csv
import io
import json
import math
import os
import sys
import tarfile
from datetime import date

RACE = {"white": "White", "black": "Black or African American", "black or african american": "Black or African American",
        "asian": "Asian", "native": "American Indian or Alaska Native",
        "american indian or alaska native": "American Indian or Alaska Native",
        "hawaiian": "Native Hawaiian or Other Pacific Islander",
        "native hawaiian or other pacific islander": "Native Hawaiian or Other Pacific Islander",
        "other": "Other", "other race": "Other", "": "Unknown", "unknown": "Unknown"}
ETHNICITY = {"hispanic": "Hispanic or Latino", "hispanic or latino": "Hispanic or Latino",
             "nonhispanic": "Not Hispanic or Latino", "not hispanic or latino": "Not Hispanic or Latino",
             "": "Unknown", "unknown": "Unknown"}
STATES = """AL Alabama|AK Alaska|AZ Arizona|AR Arkansas|CA California|CO Colorado|CT Connecticut|DE Delaware
|DC District of Columbia|FL Florida|GA Georgia|HI Hawaii|ID Idaho|IL Illinois|IN Indiana|IA Iowa|KS Kansas
|KY Kentucky|LA Louisiana|ME Maine|MD Maryland|MA Massachusetts|MI Michigan|MN Minnesota|MS Mississippi
|MO Missouri|MT Montana|NE Nebraska|NV Nevada|NH New Hampshire|NJ New Jersey|NM New Mexico|NY New York
|NC North Carolina|ND North Dakota|OH Ohio|OK Oklahoma|OR Oregon|PA Pennsylvania|RI Rhode Island
|SC South Carolina|SD South Dakota|TN Tennessee|TX Texas|UT Utah|VT Vermont|VA Virginia|WA Washington
|WV West Virginia|WI Wisconsin|WY Wyoming|AS American Samoa|GU Guam|MP Northern Mariana Islands
|PR Puerto Rico|VI U.S. Virgin Islands"""
STATE = {}
for entry in STATES.replace("\n", "").split("|"):
    code, name = entry.split(" ", 1)
    STATE[name.lower()] = code
    STATE[code.lower()] = code
STATE[""] = "Unknown"


def canonical(table, raw):
    raw = raw.strip()
    return table.get(raw.lower(), raw)


def number(raw):
    try:
        v = float(raw)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


class Population:
    """Patients (id -> birth, death, sex, race, ethnicity, state), the condition and
    medication codes of each patient, and every numeric observation (patient, code, value)."""

    def __init__(self):
        self.patients, self.conditions, self.medications, self.observations = {}, {}, {}, []


def load_csv(folder):
    pop = Population()
    rows = lambda name: csv.DictReader(open(f"{folder}/{name}", newline="", encoding="utf-8"))
    for r in rows("patients.csv"):
        pop.patients[r["Id"]] = dict(birth=r["BIRTHDATE"][:10], death=r["DEATHDATE"][:10],
                                     sex={"M": "male", "F": "female"}[r["GENDER"]],
                                     race=canonical(RACE, r["RACE"]), ethnicity=canonical(ETHNICITY, r["ETHNICITY"]),
                                     state=canonical(STATE, r["STATE"]))
    for table, into in (("conditions.csv", pop.conditions), ("medications.csv", pop.medications)):
        for r in rows(table):
            into.setdefault(r["PATIENT"], set()).add(r["CODE"])
    for r in rows("observations.csv"):
        v = number(r["VALUE"]) if r.get("TYPE", "") in ("numeric", "") else None
        if v is not None:
            pop.observations.append((r["PATIENT"], r["CODE"], v))
    return pop


def bundles(path):
    if os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            if name.endswith(".json"):
                yield json.load(open(os.path.join(path, name), encoding="utf-8"))
    elif path.endswith((".tgz", ".tar.gz")):
        with tarfile.open(path) as archive:
            for member in archive:
                if member.isfile() and member.name.endswith(".json"):
                    yield json.load(io.TextIOWrapper(archive.extractfile(member), encoding="utf-8"))
    else:
        yield json.load(open(path, encoding="utf-8"))


def code(concept, system):
    codings = (concept or {}).get("coding", [])
    preferred = [c for c in codings if c.get("system") == system]
    chosen = (preferred or codings or [{}])[0]
    return chosen.get("code")


def load_fhir(path):
    pop = Population()
    for bundle in bundles(path):
        entries = bundle.get("entry", [])
        by_url = {e.get("fullUrl"): e["resource"] for e in entries}
        patient_of_url = {url: r["id"] for url, r in by_url.items() if r["resourceType"] == "Patient"}

        def subject(ref):
            ref = ref["reference"]
            if ref in patient_of_url:
                return patient_of_url[ref]
            return ref.split("/")[-1].removeprefix("urn:uuid:")

        for r in by_url.values():
            kind = r["resourceType"]
            if kind == "Patient":
                race = ethnicity = ""
                for ext in r.get("extension", []):
                    parts = {x["url"]: x for x in ext.get("extension", [])}
                    text = parts.get("text", {}).get("valueString") or parts.get("ombCategory", {}).get("valueCoding", {}).get("display", "")
                    if ext["url"].endswith("us-core-race"):
                        race = text
                    elif ext["url"].endswith("us-core-ethnicity"):
                        ethnicity = text
                pop.patients[r["id"]] = dict(birth=r["birthDate"][:10], death=r.get("deceasedDateTime", "")[:10],
                                             sex=r.get("gender", "unknown"), race=canonical(RACE, race),
                                             ethnicity=canonical(ETHNICITY, ethnicity),
                                             state=canonical(STATE, (r.get("address") or [{}])[0].get("state", "")))
            elif kind == "Condition":
                pop.conditions.setdefault(subject(r["subject"]), set()).add(code(r["code"], "http://snomed.info/sct"))
            elif kind == "MedicationRequest":
                concept = r.get("medicationCodeableConcept") or by_url[r["medicationReference"]["reference"]]["code"]
                pop.medications.setdefault(subject(r["subject"]), set()).add(code(concept, "http://www.nlm.nih.gov/research/umls/rxnorm"))
            elif kind == "Observation":
                pid = subject(r["subject"])
                if "valueQuantity" in r:
                    parts = [(r["code"], r["valueQuantity"].get("value"))]
                elif any(k.startswith("value") for k in r):
                    parts = []
                else:
                    parts = [(c["code"], c.get("valueQuantity", {}).get("value")) for c in r.get("component", [])]
                for concept, value in parts:
                    v = number(value)
                    if v is not None:
                        pop.observations.append((pid, code(concept, "http://loinc.org"), v))
    return pop


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


def analyse(pop, spec, min_cell, only):
    as_of = date.fromisoformat(spec["asOf"])
    cohort = spec.get("cohort", {})
    people = {}
    for pid, p in pop.patients.items():
        if only is not None and pid not in only:
            continue
        born = date.fromisoformat(p["birth"])
        if born > as_of:
            continue
        age = as_of.year - born.year - ((as_of.month, as_of.day) < (born.month, born.day))
        dead = bool(p["death"]) and date.fromisoformat(p["death"]) <= as_of
        people[pid] = dict(p, age=age, dead=dead)

    def keep(p):
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

    chosen = {pid for pid, p in people.items() if keep(p)}
    for field, codes_of in (("conditions", pop.conditions), ("medications", pop.medications)):
        if field in cohort:
            wanted_codes = set(cohort[field]["anyOf"])
            chosen = {pid for pid in chosen if codes_of.get(pid, set()) & wanted_codes}
    for f in cohort.get("observations", []):
        ok = {pid for pid, c, v in pop.observations
              if c == f["code"] and ("min" not in f or v >= f["min"]) and ("max" not in f or v <= f["max"])}
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
        k = json.dumps(key(people[pid]), sort_keys=True)
        groups.setdefault(k, {"patients": 0, "values": {}})["patients"] += 1
    wanted = {m["observation"] for m in spec["measures"] if "observation" in m}
    for pid, c, v in pop.observations:
        if c in wanted and pid in chosen:
            k = json.dumps(key(people[pid]), sort_keys=True)
            groups[k]["values"].setdefault(c, []).append(v)
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
    return {"groups": out}


def main():
    source, spec_path, min_cell = sys.argv[1], sys.argv[2], int(sys.argv[3])
    only = None
    if len(sys.argv) > 4:
        only = {line.strip() for line in open(sys.argv[4]) if line.strip()}
    csv_folder = os.path.isdir(source) and os.path.exists(os.path.join(source, "patients.csv"))
    pop = load_csv(source) if csv_folder else load_fhir(source)
    print(json.dumps(analyse(pop, json.load(open(spec_path)), min_cell, only), sort_keys=True))


main()
