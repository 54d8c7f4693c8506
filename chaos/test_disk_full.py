"""Runbook §5.2.4: the disk holding models and logs is full. Real ENOSPC, detected, cleaned up.

Needs the app's data on a size-limited filesystem: filling the machine's own disk is never an
option. A stack started with `opsdrill up --data-fs-size 64m` has one; on one started without,
the `data_fs` fixture moves the home onto a 64 MB ext4 image for the session and back at its
end; the composed stack's models volume is a size-limited tmpfs. The ballast is a forgotten
temp file; the §5.2.4 clean-up, run where the app runs, finds and deletes it. HighDiskUsage
ignores pseudo filesystems (tmpfs) by design, so on a tmpfs its detectors are recorded as
skipped with that reason, never passed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from opsdrill.drill import Detector
from opsdrill.drill.standard import StandardDrill
from opsdrill.faults.disk_full import ENOSPC, DiskFull, filesystem_type, probe_write
from opsdrill.recovery.host_resources import clean_disk
from opsdrill.targets.base import Target

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.2.4"),
    pytest.mark.fault("disk_full"),
]

#: filesystems HighDiskUsage leaves out (system/prometheus/alerts.yml's fstype filter)
UNWATCHED_FILESYSTEMS = {"tmpfs", "ramfs"}

RUN = {
    "series_id": "airpassengers",
    "model_name": "MLP",
    "horizon": 12,
    "max_steps": 5,
    "run_name": "opsdrill-disk-full",
}


@pytest.fixture
def data_fs_target(target: Target, data_fs: Path) -> Target:
    return target


class TrainingDuringFault:
    """Submits one run on first use, then answers: did it fail with ENOSPC, logged as such?"""

    def __init__(self, target: Target) -> None:
        self.ep = target.endpoints
        self.run_id: int | None = None
        self.run: dict[str, Any] = {}
        self.log_rows: list[tuple[Any, ...]] = []

    def failed_with_enospc(self) -> bool:
        if self.run_id is None:
            resp = httpx.post(
                f"{self.ep.api_url}/runs",
                json=RUN,
                timeout=10,
                headers={"X-API-Key": self.ep.api_key or ""},
            )
            self.run_id = int(resp.json()["run_id"])
        self.run = httpx.get(f"{self.ep.api_url}/runs/{self.run_id}", timeout=5).json()
        if self.run["status"] != "failed":
            return False
        with psycopg.connect(self.ep.dsn, connect_timeout=5) as conn:
            self.log_rows = conn.execute(
                "SELECT exception_type, log_message FROM system_logs WHERE run_id = %s "
                "AND log_level = 'ERROR'",
                (self.run_id,),
            ).fetchall()
        return any("No space left on device" in str(msg) for _, msg in self.log_rows)


def _health_names_storage_enospc(api_url: str) -> bool:
    resp = httpx.get(f"{api_url}/health", timeout=2)
    body = resp.json()
    return (
        resp.status_code == 503
        and "storage" in body.get("failing", [])
        and ("ENOSPC" in body.get("error", ""))
    )


def test_disk_full_is_detected_and_cleaned_up(
    data_fs_target: Target,
    data_fs: Path,
    drill: StandardDrill,
) -> None:
    target = data_fs_target
    data = data_fs
    training = TrainingDuringFault(target)

    def enospc() -> bool:
        error = probe_write(target, data)
        return error is not None and ENOSPC in error

    detectors = [
        Detector(
            "/health 503 naming storage ENOSPC",
            lambda: _health_names_storage_enospc(target.endpoints.api_url),
            10,
        ),
        Detector(
            "a training run fails with ENOSPC in system_logs", training.failed_with_enospc, 180
        ),
    ]
    fstype = filesystem_type(target, data)
    unwatched = (f"{data} is a {fstype}, which HighDiskUsage ignores by design"
                 if fstype in UNWATCHED_FILESYSTEMS else None)  # fmt: skip
    alerts, resolved = drill.probes.alert_cycle("HighDiskUsage", timeout=60, unwatched=unwatched)
    detectors += alerts
    spec = drill.spec(
        name="disk-full",
        title="Data filesystem full (No space left on device)",
        severity="P2",
        fault=DiskFull(target, directory=str(data)),
        effect=Detector(f"a write in {data} fails with ENOSPC", enospc, 10),
        detectors=detectors,
        also_steady=[Detector(f"a write in {data} works", lambda: not enospc())],
        resolved=resolved,
        recover=clean_disk(target, data),
    )
    result = drill.run(spec, check=False)
    for action in result.actions:
        print(f"  {action}")
    print(
        f"  run {training.run_id}: {training.run.get('status')} "
        f"{training.run.get('error_message')}; logged {training.log_rows}"
    )
    drill.verify(result)
    assert any("opsdrill-ballast" in a and "temp file" in a for a in result.actions), (
        "the §5.2.4 clean-up did not find the ballast as an old temp file"
    )
    assert any(kind == "OSError" for kind, _ in training.log_rows), training.log_rows
