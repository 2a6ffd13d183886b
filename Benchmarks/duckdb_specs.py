#!/usr/bin/env python3
"""The reference side of the benchmarks: DuckDB over the same Synthea CSV that ShardVault
ingests.

  duckdb_specs.py load CSV_PATTERN DB_FILE
      Loads every Synthea table (patients, conditions, observations, medications,
      encounters, procedures, immunizations) into a new DuckDB database file, as a user
      would: `CREATE TABLE t AS SELECT * FROM read_csv(...)`, types detected by DuckDB.
  duckdb_specs.py query SPEC.json (--csv CSV_PATTERN | --db DB_FILE) [--runs N] [--result FILE]
      Runs a ShardVault job spec as one SQL query, over the CSV files or over the tables
      of a database made by `load`. With --result, writes the rows as JSON in the shape
      of a revealed ShardVault result, for Benchmarks/same_numbers.py.

CSV_PATTERN names a table's file with `{table}` in it: `data/csv/{table}.csv`, or
`data/part-*/{table}.csv.zst` for several folders (DuckDB reads zstd CSV itself).
Prints one JSON object: the seconds of each run, and rows or groups.

The spec's meaning (docs/job-spec.md) is written out in SQL here, independently of the
vault's engine: a patient is in the cohort if born on or before asOf, alive or dead at
asOf as asked, of the sexes and ages asked, with any condition or medication of the
listed codes, and with a numeric value of each listed observation code inside its
range. Observation measures take every numeric value of the code of the group's cohort
patients; quantiles are `quantile_cont` (linear interpolation).
"""
import json
import sys
import time

import duckdb

TABLES = ["patients", "conditions", "observations", "medications", "encounters", "procedures", "immunizations"]


def source(table, csv_pattern):
    if csv_pattern is None:
        return table
    return f"read_csv('{csv_pattern.replace('{table}', table)}', header = true)"


def literal(text):
    return "'" + str(text).replace("'", "''") + "'"


def sql_for(spec, csv_pattern):
    as_of = f"DATE {literal(spec.get('asOf'))}"
    cohort = spec.get("cohort", {})
    group_by = spec.get("groupBy", [])
    for dimension in group_by:
        if dimension not in ("sex", "ageBand10"):
            raise SystemExit(f"groupBy {dimension}: this reference handles sex and ageBand10")
    where = [f"BIRTHDATE <= {as_of}"]
    if "alive" in cohort:
        dead = f"(DEATHDATE IS NOT NULL AND DEATHDATE <= {as_of})"
        where.append(f"NOT {dead}" if cohort["alive"] else dead)
    if "sex" in cohort:
        where.append("sex IN (" + ", ".join(literal(s) for s in cohort["sex"]) + ")")
    age = cohort.get("age", {})
    if "min" in age:
        where.append(f"age >= {int(age['min'])}")
    if "max" in age:
        where.append(f"age <= {int(age['max'])}")
    for kind in ("conditions", "medications"):
        if kind in cohort:
            codes = ", ".join(literal(c) for c in cohort[kind]["anyOf"])
            where.append(f"Id IN (SELECT PATIENT FROM {source(kind, csv_pattern)} WHERE CAST(CODE AS VARCHAR) IN ({codes}))")
    numeric = "(TYPE = 'numeric' OR TYPE IS NULL OR TYPE = '') AND isfinite(TRY_CAST(VALUE AS DOUBLE))"
    for item in cohort.get("observations", []):
        bounds = [f"TRY_CAST(VALUE AS DOUBLE) >= {float(item['min'])!r}"] if "min" in item else []
        bounds += [f"TRY_CAST(VALUE AS DOUBLE) <= {float(item['max'])!r}"] if "max" in item else []
        where.append(f"Id IN (SELECT PATIENT FROM {source('observations', csv_pattern)} WHERE CAST(CODE AS VARCHAR) = {literal(item['code'])} "
                     f"AND {numeric}{''.join(' AND ' + b for b in bounds)})")
    keys = {"sex": "sex", "ageBand10": "CAST(age // 10 * 10 AS VARCHAR) || '-' || CAST(age // 10 * 10 + 9 AS VARCHAR)"}
    key_columns = [f"{keys[d]} AS k{i}" for i, d in enumerate(group_by)]
    group_list = ", ".join(f"k{i}" for i in range(len(group_by)))
    observation_measures = [m for m in spec["measures"] if "observation" in m]
    codes = sorted({m["observation"] for m in observation_measures})
    parts = [f"""
WITH p AS (
  SELECT Id, BIRTHDATE, DEATHDATE,
         CASE GENDER WHEN 'M' THEN 'male' WHEN 'F' THEN 'female' END AS sex,
         year({as_of}) - year(BIRTHDATE) - CASE WHEN strftime(BIRTHDATE, '%m-%d') > strftime({as_of}, '%m-%d') THEN 1 ELSE 0 END AS age
  FROM {source('patients', csv_pattern)}
), c AS (
  SELECT Id{''.join(', ' + k for k in key_columns)} FROM p WHERE {' AND '.join(where)}
), g AS (
  SELECT {group_list + ', ' if group_list else ''}count(*) AS patients FROM c {'GROUP BY ' + group_list if group_list else ''}
)"""]
    selects = ["g.*"]
    if codes:
        stats = []
        for index, measure in enumerate(observation_measures):
            only = f"FILTER (WHERE CODE = {literal(measure['observation'])})"
            for stat in measure["stats"]:
                expression = {"count": "count(v)", "mean": "avg(v)", "stddev": "stddev_samp(v)", "min": "min(v)", "max": "max(v)"}.get(stat)
                if expression is None:
                    expression = f"quantile_cont(v, {int(stat[1:]) / 100!r})"
                stats.append(f"{expression} {only} AS m{index}_{stat}")
        parts.append(f""", o AS (
  SELECT PATIENT, CAST(CODE AS VARCHAR) AS CODE, TRY_CAST(VALUE AS DOUBLE) AS v
  FROM {source('observations', csv_pattern)}
  WHERE CAST(CODE AS VARCHAR) IN ({', '.join(literal(c) for c in codes)}) AND {numeric}
), m AS (
  SELECT {group_list + ', ' if group_list else ''}{', '.join(stats)}
  FROM c JOIN o ON o.PATIENT = c.Id {'GROUP BY ' + group_list if group_list else ''}
)""")
        selects.append("m.* EXCLUDE (" + group_list + ")" if group_list else "m.*")
        join = f"LEFT JOIN m USING ({group_list})" if group_list else ", m"
    else:
        join = ""
    order = f"ORDER BY {group_list}" if group_list else ""
    parts.append(f"\nSELECT {', '.join(selects)} FROM g {join} {order}")
    return "".join(parts), observation_measures


def as_result(spec, rows, columns, observation_measures):
    group_by = spec.get("groupBy", [])
    min_cell = spec.get("disclosure", {}).get("minCell", 11)
    groups = []
    for row in rows:
        values = dict(zip(columns, row))
        patients = values["patients"]
        group = {"key": {d: values[f"k{i}"] for i, d in enumerate(group_by)}, "suppressed": patients < min_cell}
        if not group["suppressed"]:
            measures = {}
            for measure in spec["measures"]:
                if measure.get("count") == "patients":
                    measures[measure["name"]] = patients
            for index, measure in enumerate(observation_measures):
                measures[measure["name"]] = {s: (values.get(f"m{index}_{s}") or 0) if s == "count" else values.get(f"m{index}_{s}")
                                             for s in measure["stats"]}
            group["measures"] = measures
        groups.append(group)
    return {"groups": groups}


def main(argv):
    if len(argv) == 4 and argv[1] == "load":
        connection = duckdb.connect(argv[3])
        started = time.time()
        rows = {}
        for table in TABLES:
            connection.execute(f"CREATE TABLE {table} AS SELECT * FROM {source(table, argv[2])}")
            rows[table] = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        connection.execute("CHECKPOINT")
        connection.close()
        print(json.dumps({"seconds": [time.time() - started], "rows": rows}))
        return
    if len(argv) >= 5 and argv[1] == "query" and argv[3] in ("--csv", "--db"):
        spec = json.load(open(argv[2]))
        options = dict(zip(argv[3::2], argv[4::2]))
        csv_pattern = options.get("--csv")
        query, observation_measures = sql_for(spec, csv_pattern)
        connection = duckdb.connect(options["--db"], read_only=True) if "--db" in options else duckdb.connect()
        seconds = []
        for _ in range(int(options.get("--runs", "1"))):
            started = time.time()
            cursor = connection.execute(query)
            rows = cursor.fetchall()
            seconds.append(time.time() - started)
        columns = [d[0] for d in cursor.description]
        result = as_result(spec, rows, columns, observation_measures)
        if "--result" in options:
            with open(options["--result"], "w") as out:
                json.dump(result, out)
        print(json.dumps({"seconds": seconds, "groups": len(result["groups"])}))
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
