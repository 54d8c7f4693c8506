-- MLflow tracking of training runs: each completed run is logged to MLflow with a tag naming
-- its run_id, and its MLflow run id is kept here, so each can be found from the other.
-- tracking_status: NULL (no MLflow configured), 'pending' (not logged yet; tracking_error says
-- why, e.g. MLflow down; the executor's sweep catches it up when MLflow answers again),
-- 'tracked'.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS mlflow_run_id TEXT;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS tracking_status TEXT
    CHECK (tracking_status IN ('pending', 'tracked'));
ALTER TABLE runs ADD COLUMN IF NOT EXISTS tracking_error TEXT;
CREATE INDEX IF NOT EXISTS idx_runs_tracking_pending ON runs (run_id)
    WHERE tracking_status = 'pending';
