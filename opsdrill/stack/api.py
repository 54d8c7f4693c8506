"""The app's HTTP API as opsdrill speaks it: one client, with the key, the timeouts and the
translation of transport errors in one place.

Two kinds of caller want two kinds of answer. Probes ask "does it answer, and how": they get
the status code, or `None` when nothing answered (`status`, `answers`, `metric`, `elapsed`).
Procedures and set-up act ("schedule a run", "read the models"): a transport error is a
`TargetUnreachable` that says which request failed, and an unexpected status is one too.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from opsdrill.errors import TargetUnreachable
from opsdrill.polling import poll

__all__ = ["FINISHED", "ApiClient"]

#: a run in one of these states will not change again
FINISHED = ("completed", "failed", "cancelled")


class ApiClient:
    """One stack's API at `url`; `api_key` goes with the requests that change state."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    # -- transport -----------------------------------------------------------------------
    def request(
        self, method: str, path: str, *, timeout: float | None = None, key: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:  # fmt: skip
        """The response, whatever its status; `TargetUnreachable` when none came."""
        headers = {"X-API-Key": self.api_key or ""} if key else None
        try:
            return httpx.request(
                method, f"{self.url}{path}", timeout=timeout or self.timeout, headers=headers,
                **kwargs,
            )  # fmt: skip
        except httpx.HTTPError as exc:
            raise TargetUnreachable(
                f"{method} {self.url}{path} failed: {exc!r}; is the API running?"
            ) from exc

    def json(self, path: str, *, timeout: float | None = None, **params: Any) -> Any:
        """`GET path`'s JSON body; any status but 200 is `TargetUnreachable`."""
        resp = self.request("GET", path, timeout=timeout, params=params or None)
        if resp.status_code != 200:
            raise TargetUnreachable(f"GET {path} answered {resp.status_code}: {resp.text[:200]}")
        return resp.json()

    # -- probes: an answer, or None when there was none ------------------------------------
    def status(self, path: str, *, timeout: float = 1.0, body: Mapping[str, Any] | None = None
               ) -> int | None:  # fmt: skip
        """The status `GET path` (or `POST path` with a JSON `body`) answers; None: none."""
        try:
            method = "GET" if body is None else "POST"
            return self.request(method, path, timeout=timeout, json=body).status_code
        except TargetUnreachable:
            return None

    def answers(self, path: str, *, timeout: float) -> bool:
        """False only when `GET path` got no answer within `timeout` (a hang, not an error)."""
        try:
            httpx.get(f"{self.url}{path}", timeout=timeout)
        except httpx.TimeoutException:
            return False
        except httpx.HTTPError:
            return True  # refused or reset: an answer of a kind, not a hang
        return True

    def elapsed(self, path: str, body: Mapping[str, Any], *, timeout: float = 10.0) -> float:
        """Seconds `POST path` took to answer; `timeout` when it did not."""
        t0 = time.perf_counter()
        try:
            httpx.post(f"{self.url}{path}", json=dict(body), timeout=timeout)
        except httpx.HTTPError:
            return timeout
        return time.perf_counter() - t0

    def metric(self, name: str, *, timeout: float = 1.0) -> float | None:
        """One unlabelled sample of the app's own /metrics; None when it does not answer."""
        try:
            text = self.request("GET", "/metrics", timeout=timeout).text
        except TargetUnreachable:
            return None
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def health(self, *, timeout: float = 5.0) -> dict[str, Any] | None:
        """/health's JSON body, whatever its status; None when it does not answer with JSON."""
        try:
            body = self.request("GET", "/health", timeout=timeout).json()
        except (TargetUnreachable, ValueError):
            return None
        return body if isinstance(body, dict) else None

    # -- runs --------------------------------------------------------------------------
    def submit_run(self, body: Mapping[str, Any]) -> int:
        """Schedule a training run (`POST /runs` with the key); its id."""
        resp = self.request("POST", "/runs", json=dict(body), key=True)
        if resp.status_code != 201:
            raise TargetUnreachable(f"POST /runs answered {resp.status_code}: {resp.text[:200]}")
        return int(resp.json()["run_id"])

    def run(self, run_id: int, *, timeout: float | None = None) -> dict[str, Any]:
        return dict(self.json(f"/runs/{run_id}", timeout=timeout))

    def runs(self, status: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Runs with `status`, newest id first."""
        return list(self.json("/runs", status=status, limit=limit))

    def cancel_run(self, run_id: int, reason: str) -> dict[str, Any] | None:
        """Cancel the run; None when it had already finished (409)."""
        resp = self.request("POST", f"/runs/{run_id}/cancel", params={"reason": reason}, key=True)
        if resp.status_code == 409:
            return None
        if resp.status_code != 200:
            raise TargetUnreachable(
                f"POST /runs/{run_id}/cancel answered {resp.status_code}: {resp.text[:200]}"
            )
        return dict(resp.json())

    def wait_run(self, run_id: int, timeout: float, *, interval: float = 0.25) -> dict[str, Any]:
        """The run once finished, or as last seen when `timeout` has passed. A poll that a
        loaded API answers late is not the end of the wait."""
        last: dict[str, Any] = {"run_id": run_id, "status": "unanswered"}

        def finished() -> dict[str, Any] | None:
            try:
                last.update(self.run(run_id, timeout=5))
            except TargetUnreachable as exc:
                if not isinstance(exc.__cause__, httpx.TimeoutException):
                    raise
                return None
            return last if last["status"] in FINISHED else None

        return poll(finished, timeout, interval=interval) or last

    def models(self, limit: int = 1000) -> list[dict[str, Any]]:
        return list(self.json("/models", limit=limit))
