#!/usr/bin/env python3
"""The demo's example spec as one DuckDB query over the plaintext Synthea CSV, for the
analysis benchmark: living adults at 2024-01-01, by sex and ten-year age band, patient
counts, HbA1c (count, mean, p50, p90) and BMI (count, mean, stddev, min, max), groups
under 11 patients suppressed. Prints the number of groups and the seconds taken.

Usage: duckdb_example.py SYNTHEA_CSV_DIR
"""
import sys
import time

import duckdb

folder = sys.argv[1]
query = f"""
WITH p AS (
  SELECT Id,
         CASE GENDER WHEN 'M' THEN 'male' WHEN 'F' THEN 'female' END AS sex,
         2024 - year(BIRTHDATE) - CASE WHEN strftime(BIRTHDATE, '%m-%d') > '01-01' THEN 1 ELSE 0 END AS age
  FROM read_csv('{folder}/patients.csv', header = true, all_varchar = false)
  WHERE BIRTHDATE <= DATE '2024-01-01' AND (DEATHDATE IS NULL OR DEATHDATE > DATE '2024-01-01')
), c AS (
  SELECT Id, sex, CAST(age // 10 * 10 AS VARCHAR) || '-' || CAST(age // 10 * 10 + 9 AS VARCHAR) AS band
  FROM p WHERE age >= 18
), o AS (
  SELECT PATIENT, CODE, TRY_CAST(VALUE AS DOUBLE) AS v
  FROM read_csv('{folder}/observations.csv', header = true, all_varchar = true)
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
