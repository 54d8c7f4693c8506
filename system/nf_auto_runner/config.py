"""Settings for every process of the stack: env var > config file > default.

One frozen `Settings`, built by `load()`, so the app, its workers and the ops CLI agree on
paths and limits. Anything wrong raises `ConfigError` whose message says what and how to fix,
because `--check-config` and a refused start-up print exactly that one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ConfigError", "Settings", "load", "redact_url"]

DEFAULT_DATABASE_URL = "postgresql://nf_app@127.0.0.1:5432/ts_forecast_system"

#: config-file key -> (env var, type, default, (min, max) or None)
FIELDS: dict[str, tuple[str, type, Any, tuple[float, float] | None]] = {
    "database_url": ("DATABASE_URL", str, DEFAULT_DATABASE_URL, None),
    "api_key": ("NF_API_KEY", str, "", None),
    "max_parallel_runs": ("MAX_PARALLEL_RUNS", int, 2, (1, 64)),
    "gpu_memory_limit": ("GPU_MEMORY_LIMIT", float, 0.7, (0.05, 1.0)),
    "train_max_steps": ("NF_TRAIN_MAX_STEPS", int, 30, (1, 100_000)),
    "poll_interval": ("NF_POLL_INTERVAL", float, 0.5, (0.05, 60.0)),
    "worker_cgroup_procs": ("NF_WORKER_CGROUP_PROCS", str, "", None),
    "log_level": ("NF_LOG_LEVEL", str, "INFO", None),
    "log_retention_days": ("NF_LOG_RETENTION_DAYS", int, 90, (1, 3650)),
    "stale_heartbeat_seconds": ("NF_STALE_HEARTBEAT_SECONDS", float, 30.0, (5.0, 86_400.0)),
    "startup_db_wait_seconds": ("NF_STARTUP_DB_WAIT", float, 20.0, (0.0, 600.0)),
    # server-side cap on a pooled statement: a lock held by a forgotten transaction (runbook
    # §5.2.2 case 3) stalls requests this long, then they answer 503, instead of forever
    "statement_timeout": ("NF_STATEMENT_TIMEOUT", float, 30.0, (0.1, 3600.0)),
    # at start-up, fail runs a dead app left `running` on this host and kill the workers that
    # outlived it (runbook §5.3.1). Off only for a diagnostic instance sharing the database
    # with a live app; the periodic sweep still fails runs whose heartbeat stops.
    "orphan_recovery_at_start": ("NF_ORPHAN_RECOVERY_AT_START", bool, True, None),
}
#: the pool section (runbook §6.1.2). Defaults are smaller than the runbook's 20/40/30 s:
#: a 30 s checkout timeout would hold requests for 30 s during a database outage.
POOL_FIELDS: dict[str, tuple[type, Any, tuple[float, float]]] = {
    "size": (int, 4, (1, 200)),
    "overflow": (int, 16, (0, 400)),
    "timeout": (float, 5.0, (0.1, 300.0)),
    "recycle": (float, 3600.0, (60.0, 86_400.0)),
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(Exception):
    """The configuration is unusable; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Settings:
    home: Path
    config_path: Path
    database_url: str
    api_key: str
    max_parallel_runs: int
    gpu_memory_limit: float
    train_max_steps: int
    poll_interval: float
    worker_cgroup_procs: str
    log_level: str
    log_retention_days: int
    stale_heartbeat_seconds: float
    startup_db_wait_seconds: float
    statement_timeout: float
    orphan_recovery_at_start: bool
    pool_size: int
    pool_overflow: int
    pool_timeout: float
    pool_recycle: float

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs" / "app"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def backups_dir(self) -> Path:
        return self.home / "backups"

    @property
    def maintenance_flag(self) -> Path:
        return self.home / ".maintenance"

    @property
    def pid_file(self) -> Path:
        return self.home / "run" / "app.pid"

    @property
    def safe_database_url(self) -> str:
        return redact_url(self.database_url)

    def child_env(self) -> dict[str, str]:
        """Environment for worker processes: they must resolve the same home and config."""
        env = dict(os.environ)
        env["NF_HOME"] = str(self.home)
        env["NF_CONFIG"] = str(self.config_path)
        return env


def redact_url(url: str) -> str:
    """The URL with its password replaced, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        raise ConfigError(
            f"config file {path} does not parse{where}: {str(exc).splitlines()[0]}; "
            f"fix the YAML or remove the file to use defaults"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of keys, got "
            f"{type(data).__name__}; see conf/config.example.yaml"
        )
    unknown = sorted(set(data) - set(FIELDS) - {"pool"})
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown key(s) {', '.join(unknown)}; known keys "
            f"are {', '.join([*FIELDS, 'pool'])}"
        )
    return data


def _convert(
    name: str, raw: Any, kind: type, bounds: tuple[float, float] | None, source: str
) -> Any:
    try:
        if kind is bool:
            value: Any = _boolean(raw)
        elif kind is str:
            value = "" if raw is None else str(raw)
        elif kind is int and isinstance(raw, float) and not raw.is_integer():
            raise ValueError(raw)
        else:
            value = kind(raw)
    except (TypeError, ValueError) as exc:
        fix = "set 1 or 0 (true/false)" if kind is bool else "set a valid number"
        raise ConfigError(
            f"{name} from {source} is {raw!r}, expected {kind.__name__}; {fix}"
        ) from exc
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise ConfigError(
            f"{name} from {source} is {value}, expected between {bounds[0]} and "
            f"{bounds[1]}; set a value in range"
        )
    return value


def _boolean(raw: Any) -> bool:
    """YAML booleans, and 1/0, true/false, yes/no, on/off from the environment."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise ConfigError(
            f"DATABASE_URL {redact_url(url)!r} is not a PostgreSQL URL; expected "
            f"postgresql://user:password@host:port/ts_forecast_system"
        )
    try:
        _ = parts.port
    except ValueError as exc:
        raise ConfigError(
            f"DATABASE_URL {redact_url(url)!r} has an invalid port; use host:5432"
        ) from exc
    if not parts.path.strip("/"):
        raise ConfigError(
            f"DATABASE_URL {redact_url(url)!r} names no database; append /ts_forecast_system"
        )


def load(env: dict[str, str] | None = None) -> Settings:
    """Build the settings from the environment and the config file, validating every value."""
    env = dict(os.environ) if env is None else env
    home = Path(env.get("NF_HOME") or os.getcwd()).absolute()
    config_path = Path(env.get("NF_CONFIG") or home / "conf" / "config.yaml").absolute()
    data = _read_file(config_path)
    values: dict[str, Any] = {}
    for key, (var, kind, default, bounds) in FIELDS.items():
        if env.get(var, "") != "":
            values[key] = _convert(var, env[var], kind, bounds, "the environment")
        elif key in data:
            values[key] = _convert(key, data[key], kind, bounds, str(config_path))
        else:
            values[key] = default
    pool = data.get("pool") or {}
    if not isinstance(pool, dict):
        raise ConfigError(
            f"config file {config_path}: pool must be a mapping with keys {', '.join(POOL_FIELDS)}"
        )
    unknown = sorted(set(pool) - set(POOL_FIELDS))
    if unknown:
        raise ConfigError(
            f"config file {config_path}: unknown pool key(s) {', '.join(unknown)}; "
            f"known pool keys are {', '.join(POOL_FIELDS)}"
        )
    for key, (kind, default, bounds) in POOL_FIELDS.items():
        raw = pool.get(key, default)
        values[f"pool_{key}"] = _convert(f"pool.{key}", raw, kind, bounds, str(config_path))
    values["log_level"] = values["log_level"].upper()
    if values["log_level"] not in LOG_LEVELS:
        raise ConfigError(
            f"log_level is {values['log_level']!r}; use one of {', '.join(LOG_LEVELS)}"
        )
    _check_url(values["database_url"])
    return Settings(home=home, config_path=config_path, **values)


def ensure_dirs(settings: Settings) -> None:
    """Create the home's directories; a failure is a ConfigError naming the directory."""
    for path in (
        settings.logs_dir,
        settings.models_dir,
        settings.backups_dir,
        settings.pid_file.parent,
    ):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create directory {path}: {exc.strerror}; fix NF_HOME "
                f"({settings.home}) or its permissions"
            ) from exc
        if not os.access(path, os.W_OK):
            raise ConfigError(f"directory {path} is not writable; fix its permissions")
