"""The runbook's SQL, corrected: real catalog column names, real schema columns.

Each constant is the query one procedure runs; `checks/` and the reports use these, so the
correction is made once. The runbook's defect (§3.2.1): `pg_stat_user_indexes` has `relname`
and `indexrelname`, not `tablename`/`indexname`; `pg_stat_user_tables` has `relname`.
"""

from __future__ import annotations

__all__ = [
    "CAPACITY_BY_MONTH",
    "COMPLETED_RUN_DURATIONS",
    "DATABASE_SIZE",
    "DEAD_TUPLES",
    "ERRORS_BY_EXCEPTION_TYPE_24H",
    "ERRORS_LAST_HOUR",
    "ERROR_ROWS_24H",
    "FAILED_LOGINS_BY_DAY",
    "LEVEL_COUNTS_7D",
    "LOGS_OLDER_THAN",
    "MODEL_STORAGE",
    "MODEL_TRAINING_30D",
    "MV_UNIQUE_INDEXES",
    "QUEUE",
    "RUNNING_RUNS",
    "RUNS_BY_STATUS_7D",
    "SECURITY_PROBE_AGENT",
    "SLOWEST_COMPLETED_RUNS_7D",
    "SLOWEST_STATEMENTS",
    "TRAINING_BY_MODEL_7D",
    "UNUSED_LARGE_INDEXES",
]

# §3.1.1 #6
ERROR_ROWS_24H = """
SELECT count(*) AS n FROM system_logs
WHERE log_level = 'ERROR' AND created_at > now() - interval '24 hours'"""

# §3.1.2
ERRORS_LAST_HOUR = """
SELECT created_at, log_level, log_message, run_id FROM system_logs
WHERE log_level IN ('ERROR', 'CRITICAL') AND created_at > now() - interval '1 hour'
ORDER BY created_at DESC"""

# §3.1.3
RUNNING_RUNS = """
SELECT r.run_id, r.run_name, r.status, r.start_time, r.experiment_id, e.experiment_name,
       EXTRACT(EPOCH FROM now() - r.start_time)::float AS duration_seconds
FROM runs r JOIN experiments e ON e.experiment_id = r.experiment_id
WHERE r.status = 'running' ORDER BY r.start_time"""

QUEUE = """
SELECT count(*) AS queued, min(created_at) AS oldest,
       COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float AS oldest_age_seconds
FROM runs WHERE status = 'scheduled'"""

# §4.3
ERRORS_BY_EXCEPTION_TYPE_24H = """
SELECT COALESCE(exception_type, '(none)') AS exception_type, count(*) AS n,
       (array_agg(log_message ORDER BY created_at DESC))[1:3] AS samples
FROM system_logs WHERE log_level = 'ERROR' AND created_at > now() - interval '24 hours'
GROUP BY 1 ORDER BY n DESC"""

SLOWEST_COMPLETED_RUNS_7D = """
SELECT run_id, run_name, model_name, start_time, end_time, execution_duration_seconds
FROM runs WHERE status = 'completed' AND start_time > now() - interval '7 days'
ORDER BY execution_duration_seconds DESC NULLS FIRST LIMIT 10"""

COMPLETED_RUN_DURATIONS = """
SELECT run_id, start_time, end_time, execution_duration_seconds,
       EXTRACT(EPOCH FROM end_time - start_time)::float AS wall_seconds
FROM runs WHERE status = 'completed' AND created_at > now() - interval '30 days'"""

MODEL_TRAINING_30D = """
SELECT m.model_id, m.run_id, m.model_name, m.training_duration_seconds,
       r.execution_duration_seconds
FROM models m JOIN runs r ON r.run_id = m.run_id
WHERE m.created_at > now() - interval '30 days' ORDER BY m.model_id"""

# §3.2.1
#: unique indexes are left out: they enforce a constraint whether or not a query reads them
UNUSED_LARGE_INDEXES = """
SELECT s.relname AS table_name, s.indexrelname AS index_name,
       pg_relation_size(s.indexrelid) AS size_bytes
FROM pg_stat_user_indexes s JOIN pg_index x ON x.indexrelid = s.indexrelid
WHERE s.idx_scan = 0 AND NOT x.indisunique
  AND pg_relation_size(s.indexrelid) > 10 * 1024 * 1024 ORDER BY 3 DESC"""

DEAD_TUPLES = """
SELECT relname AS table_name, n_dead_tup AS dead, n_live_tup AS live,
       (n_dead_tup::float / NULLIF(n_live_tup + n_dead_tup, 0)) AS dead_ratio
FROM pg_stat_user_tables WHERE n_dead_tup > 1000 ORDER BY n_dead_tup DESC"""

LOGS_OLDER_THAN = """
SELECT count(*) AS n, min(created_at) AS oldest FROM system_logs
WHERE created_at < now() - make_interval(days => %s)"""

MV_UNIQUE_INDEXES = """
SELECT c.relname AS view_name,
       array_agg(i.relname ORDER BY i.relname) FILTER (
           WHERE x.indisunique AND x.indisvalid AND x.indpred IS NULL AND x.indexprs IS NULL
       ) AS unique_indexes
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
LEFT JOIN pg_index x ON x.indrelid = c.oid
LEFT JOIN pg_class i ON i.oid = x.indexrelid
WHERE c.relkind = 'm' GROUP BY c.relname ORDER BY 1"""

# §3.2.2
DATABASE_SIZE = "SELECT pg_database_size(current_database()) AS bytes"

SLOWEST_STATEMENTS = """
SELECT query, calls, mean_exec_time, max_exec_time FROM pg_stat_statements
ORDER BY mean_exec_time DESC LIMIT 10"""

RUNS_BY_STATUS_7D = """
SELECT status, count(*) AS runs, avg(execution_duration_seconds)::float AS mean_seconds
FROM runs WHERE created_at > now() - interval '7 days' GROUP BY status ORDER BY status"""

TRAINING_BY_MODEL_7D = """
SELECT m.model_name, count(*) AS models,
       avg(m.training_duration_seconds)::float AS mean_training_seconds,
       avg(m.model_size_bytes)::float AS mean_size_bytes
FROM models m JOIN runs r ON r.run_id = m.run_id
WHERE r.created_at > now() - interval '7 days' GROUP BY m.model_name ORDER BY 1"""

LEVEL_COUNTS_7D = """
SELECT log_level, count(*) AS n FROM system_logs
WHERE log_level IN ('ERROR', 'CRITICAL') AND created_at > now() - interval '7 days'
GROUP BY log_level ORDER BY log_level"""

# §3.3.1
CAPACITY_BY_MONTH = """
SELECT to_char(date_trunc('month', created_at), 'YYYY-MM') AS month,
       count(*) AS created,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       avg(execution_duration_seconds)::float AS mean_seconds
FROM runs WHERE created_at >= date_trunc('month', now()) - interval '5 months'
GROUP BY 1 ORDER BY 1"""

MODEL_STORAGE = """
SELECT count(*) AS models, COALESCE(sum(model_size_bytes), 0)::bigint AS bytes FROM models"""

# §3.3.2
#: the user agent of opsdrill's own refused probes (checks/test_security.py), which the app's
#: audit message quotes: counted apart so the security check does not trip the threshold
SECURITY_PROBE_AGENT = "opsdrill-security-probe"
FAILED_LOGINS_BY_DAY = f"""
SELECT created_at::date AS day, count(*) AS n,
       count(*) FILTER (WHERE log_message LIKE '%%(user agent ''{SECURITY_PROBE_AGENT}'')')
       AS probes
FROM system_logs
WHERE log_message ILIKE '%%authentication failed%%' AND created_at > now() - interval '30 days'
GROUP BY 1 ORDER BY 1"""
