-- The runbook's SQL is the contract: its monthly review (3.3.1) and log analysis (4.3.2)
-- write ROUND(AVG(col), 2) over these durations, and round(double precision, integer) does
-- not exist; as numeric they run unchanged. The summary views read both columns, so they are
-- dropped first and recreated, filled, as 002 made them.
DROP MATERIALIZED VIEW IF EXISTS mv_experiment_summary;
DROP MATERIALIZED VIEW IF EXISTS mv_model_performance;
ALTER TABLE runs ALTER COLUMN execution_duration_seconds TYPE numeric
    USING execution_duration_seconds::numeric;
ALTER TABLE models ALTER COLUMN training_duration_seconds TYPE numeric
    USING training_duration_seconds::numeric;
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_experiment_summary AS
SELECT e.experiment_id,
       e.experiment_name,
       count(r.run_id)                                   AS total_runs,
       count(*) FILTER (WHERE r.status = 'completed')    AS completed_runs,
       count(*) FILTER (WHERE r.status = 'failed')       AS failed_runs,
       count(*) FILTER (WHERE r.status = 'cancelled')    AS cancelled_runs,
       count(*) FILTER (WHERE r.status = 'running')      AS running_runs,
       count(*) FILTER (WHERE r.status = 'scheduled')    AS scheduled_runs,
       avg(r.execution_duration_seconds)                 AS avg_duration_seconds,
       max(r.created_at)                                 AS last_run_at
FROM experiments e
LEFT JOIN runs r ON r.experiment_id = e.experiment_id
GROUP BY e.experiment_id, e.experiment_name;
CREATE UNIQUE INDEX IF NOT EXISTS ux_mv_experiment_summary
    ON mv_experiment_summary (experiment_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_model_performance AS
SELECT m.model_name,
       m.series_id,
       count(DISTINCT m.run_id)                          AS models_trained,
       avg(m.training_duration_seconds)                  AS avg_training_seconds,
       avg(m.model_size_bytes)                           AS avg_model_size_bytes,
       avg(mt.value) FILTER (WHERE mt.name = 'mae')      AS avg_mae,
       min(mt.value) FILTER (WHERE mt.name = 'mae')      AS best_mae,
       avg(mt.value) FILTER (WHERE mt.name = 'rmse')     AS avg_rmse,
       max(m.created_at)                                 AS last_trained_at
FROM models m
LEFT JOIN metrics mt ON mt.run_id = m.run_id
GROUP BY m.model_name, m.series_id;
CREATE UNIQUE INDEX IF NOT EXISTS ux_mv_model_performance
    ON mv_model_performance (model_name, series_id);
