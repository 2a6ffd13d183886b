#!/usr/bin/env python3
"""The demo's example spec as one DuckDB query over the plaintext Synthea CSV, for the
analysis benchmark: living adults at 2024-01-01, by sex and ten-year age band, patient
counts, HbA1c (count, mean, p50, p90) and BMI (count, mean, stddev, min, max), groups
under 11 patients suppressed. Prints the number of groups and the seconds taken.

Usage: duckdb_example.py SYNTHEA_CSV_DIR
       duckdb_example.py PATIENTS_CSV OBSERVATIONS_CSV
With DUCKDB_RESULT=FILE set, the rows are also written to FILE as JSON in the shape of a
revealed ShardVault result, for comparison. The second form takes paths or globs, compressed or not (`part-*/patients.csv.zst`):
DuckDB reads gzip and zstd CSV itself, one file per thread.
"""
import json
import os
import sys
import time

import duckdb

if len(sys.argv) == 3:
    patients_csv, observations_csv = sys.argv[1], sys.argv[2]
else:
    patients_csv, observations_csv = f"{sys.argv[1]}/patients.csv", f"{sys.argv[1]}/observations.csv"
query = f"""
WITH p AS (
  SELECT Id,
         CASE GENDER WHEN 'M' THEN 'male' WHEN 'F' THEN 'female' END AS sex,
         2024 - year(BIRTHDATE) - CASE WHEN strftime(BIRTHDATE, '%m-%d') > '01-01' THEN 1 ELSE 0 END AS age
  FROM read_csv('{patients_csv}', header = true, all_varchar = false)
  WHERE BIRTHDATE <= DATE '2024-01-01' AND (DEATHDATE IS NULL OR DEATHDATE > DATE '2024-01-01')
), c AS (
  SELECT Id, sex, CAST(age // 10 * 10 AS VARCHAR) || '-' || CAST(age // 10 * 10 + 9 AS VARCHAR) AS band
  FROM p WHERE age >= 18
), o AS (
  SELECT PATIENT, CODE, TRY_CAST(VALUE AS DOUBLE) AS v
  FROM read_csv('{observations_csv}', header = true, all_varchar = true)
  WHERE CODE IN ('4548-4', '39156-5') AND (TYPE = 'numeric' OR TYPE = '')
), g AS (
  SELECT sex, band, count(*) AS patients FROM c GROUP BY sex, band
), m AS (
  SELECT c.sex, c.band,
         count(v) FILTER (WHERE CODE = '4548-4') AS a1c_n, avg(v) FILTER (WHERE CODE = '4548-4') AS a1c_mean,
         quantile_cont(v, 0.5) FILTER (WHERE CODE = '4548-4') AS a1c_p50, quantile_cont(v, 0.9) FILTER (WHERE CODE = '4548-4') AS a1c_p90,
         count(v) FILTER (WHERE CODE = '39156-5') AS bmi_n, avg(v) FILTER (WHERE CODE = '39156-5') AS bmi_mean,
         stddev_samp(v) FILTER (WHERE CODE = '39156-5') AS bmi_sd, min(v) FILTER (WHERE CODE = '39156-5') AS bmi_min,
         max(v) FILTER (WHERE CODE = '39156-5') AS bmi_max
  FROM c JOIN o ON o.PATIENT = c.Id WHERE v IS NOT NULL GROUP BY c.sex, c.band
)
SELECT g.*, m.* EXCLUDE (sex, band), g.patients < 11 AS suppressed
FROM g LEFT JOIN m USING (sex, band) ORDER BY sex, band
"""
started = time.time()
rows = duckdb.connect().execute(query).fetchall()
print(f"duckdb: {len(rows)} groups in {time.time() - started:.2f} s")

if os.environ.get("DUCKDB_RESULT"):
    groups = []
    for sex, band, patients, a1c_n, a1c_mean, a1c_p50, a1c_p90, bmi_n, bmi_mean, bmi_sd, bmi_min, bmi_max, suppressed in rows:
        group = {"key": {"sex": sex, "ageBand10": band}, "suppressed": suppressed}
        if not suppressed:
            group["measures"] = {
                "patients": patients,
                "hba1c": {"count": a1c_n or 0, "mean": a1c_mean, "p50": a1c_p50, "p90": a1c_p90},
                "bmi": {"count": bmi_n or 0, "mean": bmi_mean, "stddev": bmi_sd, "min": bmi_min, "max": bmi_max},
            }
        groups.append(group)
    with open(os.environ["DUCKDB_RESULT"], "w") as out:
        json.dump({"groups": groups}, out)
