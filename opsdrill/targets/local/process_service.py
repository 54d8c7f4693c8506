"""A Service backed by a local process we spawned and track by pid and start time."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from opsdrill.errors import ServiceError, StartTimeout
from opsdrill.polling import poll
from opsdrill.processes import ProcessRef, spawn
from opsdrill.state import ServiceRecord
from opsdrill.targets.base import Service

__all__ = ["ProcessService", "ProcessSpec", "RecordStore"]


@dataclass
class ProcessSpec:
    """How to run one service; built fresh at each start so ports and files are current."""

    argv: Sequence[str]
    ready: Callable[[], bool]
    env: Mapping[str, str] | None = None
    user: str | None = None
    cwd: Path | None = None
    url: str | None = None
    port: int = 0
    stop_signal: int = signal.SIGTERM
    before_start: Callable[[], None] | None = None
    #: log fragments meaning "a leftover of the previous instance is still going away; retry"
    retry_on: tuple[str, ...] = field(default_factory=tuple)


class RecordStore(Protocol):
    """Where service records persist (the state directory), shared between processes."""

    def get_record(self, name: str) -> ServiceRecord | None: ...

    def put_record(self, name: str, record: ServiceRecord | None) -> None: ...


class ProcessService(Service):
    def __init__(
        self, name: str, store: RecordStore, spec: Callable[[], ProcessSpec], log: Path
    ) -> None:
        self.name = name
        self._store = store
        self._spec = spec
        self.log = log

    def __repr__(self) -> str:
        return f"<ProcessService {self.name} pid={self.pid()}>"

    def _ref(self) -> ProcessRef | None:
        rec = self._store.get_record(self.name)
        if rec is None or rec.pid <= 0:
            return None
        return ProcessRef(rec.pid, rec.ticks)

    def is_running(self) -> bool:
        ref = self._ref()
        return ref is not None and ref.alive()

    def pid(self) -> int | None:
        ref = self._ref()
        return ref.pid if ref is not None and ref.alive() else None

    @property
    def url(self) -> str | None:
        return self._spec().url

    def healthy(self) -> bool:
        return self.is_running() and self._spec().ready()

    def start(self, timeout: float = 60.0) -> None:
        spec = self._spec()
        deadline = time.monotonic() + timeout
        if self.is_running():
            self._wait_ready(spec, self._ref(), deadline, log_from=0)  # type: ignore[arg-type]
            return
        while True:
            if spec.before_start is not None:
                spec.before_start()
            offset = self.log.stat().st_size if self.log.exists() else 0
            ref = spawn(spec.argv, log=self.log, env=spec.env, cwd=spec.cwd, user=spec.user)
            self._store.put_record(
                self.name,
                ServiceRecord(pid=ref.pid, ticks=ref.ticks, port=spec.port, started_at=time.time()),
            )
            try:
                self._wait_ready(spec, ref, deadline, log_from=offset)
                return
            except ServiceError as exc:
                # never leave a half-started process (or a record of a dead one) behind
                ref.terminate(grace=5.0)
                self._store.put_record(self.name, None)
                retryable = any(s in str(exc) for s in spec.retry_on)
                if not retryable or time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)

    def _wait_ready(
        self, spec: ProcessSpec, ref: ProcessRef, deadline: float, log_from: int
    ) -> None:
        def ready() -> bool | None:
            if spec.ready():
                return True
            if not ref.alive():
                raise ServiceError(
                    f"{self.name} exited during start-up; its log ({self.log}) ends with: "
                    f"{self.log_tail(log_from)}"
                )
            return None

        if poll(ready, deadline - time.monotonic(), interval=0.05) is None:
            raise StartTimeout(
                f"{self.name} (pid {ref.pid}) did not become ready in time; see {self.log}: "
                f"{self.log_tail(log_from)}"
            )

    def stop(self, timeout: float = 30.0) -> None:
        ref = self._ref()
        stopping = ref is not None and ref.signal(self._spec().stop_signal)
        if stopping and ref is not None and not ref.wait_gone(timeout):
            ref.signal(signal.SIGKILL)
            if not ref.wait_gone(10.0):
                raise ServiceError(f"{self.name} (pid {ref.pid}) survived SIGKILL")
        self._store.put_record(self.name, None)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        ref = self._ref()
        if ref is None or not ref.signal(sig):
            raise ServiceError(f"cannot signal {self.name}: it is not running")

    def log_tail(self, offset: int = 0, limit: int = 600) -> str:
        """The end of the service's log since `offset`, on one line, for error messages."""
        try:
            with open(self.log, "rb") as fh:
                fh.seek(offset)
                text = fh.read().decode(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        text = " | ".join(line.strip() for line in text.strip().splitlines()[-6:])
        return text[-limit:] or "(empty)"
