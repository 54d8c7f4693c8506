-- Core tables: experiments, runs and what runs produce; series data; logs.
CREATE TABLE IF NOT EXISTS experiments (
    experiment_id   BIGSERIAL PRIMARY KEY,
    experiment_name TEXT NOT NULL UNIQUE,
    description     TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS series_catalog (
    series_id   TEXT PRIMARY KEY,
    freq        TEXT NOT NULL,
    description TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS series (
    series_id TEXT NOT NULL REFERENCES series_catalog (series_id) ON DELETE CASCADE,
    ds        TIMESTAMP NOT NULL,
    y         DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (series_id, ds)
);

CREATE TABLE IF NOT EXISTS runs (
    run_id                     BIGSERIAL PRIMARY KEY,
    run_name                   TEXT,
    experiment_id              BIGINT NOT NULL REFERENCES experiments (experiment_id),
    status                     TEXT NOT NULL DEFAULT 'scheduled'
        CHECK (status IN ('scheduled', 'running', 'completed', 'failed', 'cancelled')),
    model_name                 TEXT NOT NULL,
    series_id                  TEXT NOT NULL,
    horizon                    INTEGER NOT NULL CHECK (horizon > 0),
    params                     JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at                 TIMESTAMPTZ NOT NULL DEFAULT now(),
    start_time                 TIMESTAMPTZ,
    end_time                   TIMESTAMPTZ,
    execution_duration_seconds DOUBLE PRECISION,
    worker_host                TEXT,
    worker_pid                 INTEGER,
    heartbeat_at               TIMESTAMPTZ,
    error_message              TEXT
);
CREATE INDEX IF NOT EXISTS idx_runs_status ON runs (status);
CREATE INDEX IF NOT EXISTS idx_runs_status_start_time ON runs (status, start_time DESC);
CREATE INDEX IF NOT EXISTS idx_runs_status_created_at ON runs (status, created_at);
CREATE INDEX IF NOT EXISTS idx_runs_experiment_id ON runs (experiment_id);

CREATE TABLE IF NOT EXISTS models (
    model_id                   BIGSERIAL PRIMARY KEY,
    run_id                     BIGINT NOT NULL REFERENCES runs (run_id),
    model_name                 TEXT NOT NULL,
    series_id                  TEXT NOT NULL,
    horizon                    INTEGER NOT NULL,
    path                       TEXT NOT NULL,
    training_duration_seconds  DOUBLE PRECISION,
    model_size_bytes           BIGINT,
    created_at                 TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_models_run_id ON models (run_id);
CREATE INDEX IF NOT EXISTS idx_models_series_model ON models (series_id, model_name, created_at DESC);

CREATE TABLE IF NOT EXISTS metrics (
    metric_id  BIGSERIAL PRIMARY KEY,
    run_id     BIGINT NOT NULL REFERENCES runs (run_id),
    name       TEXT NOT NULL,
    value      DOUBLE PRECISION NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_metrics_run_id ON metrics (run_id);

-- run_id is deliberately not a foreign key: logs outlive archived runs.
CREATE TABLE IF NOT EXISTS system_logs (
    log_id         BIGSERIAL PRIMARY KEY,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    log_level      TEXT NOT NULL,
    log_message    TEXT NOT NULL,
    run_id         BIGINT,
    exception_type TEXT,
    logger         TEXT
);
CREATE INDEX IF NOT EXISTS idx_system_logs_created_at ON system_logs (created_at);
CREATE INDEX IF NOT EXISTS idx_system_logs_level_created ON system_logs (log_level, created_at);

INSERT INTO experiments (experiment_name, description)
VALUES ('default', 'runs scheduled without an experiment')
ON CONFLICT (experiment_name) DO NOTHING;
