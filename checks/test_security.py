"""Runbook §3.3.2 on the target: every mutating endpoint refuses a caller without the key.

Read-only, safe on production: each probe carries a body no endpoint accepts (malformed JSON,
or JSON of the wrong type) and an id that is not one, so even an endpoint whose guard is gone
creates or cancels nothing; it answers 422 (or worse) and that is the finding. What the probes
leave behind is what the review reads: one "authentication failed" audit row each in
system_logs, with opsdrill's user agent so the failed-login threshold can tell them apart.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

import httpx
import pytest

from opsdrill.runbook import queries

pytestmark = [
    pytest.mark.readonly,
    pytest.mark.runbook("3.3.2"),
]  # probes carry bodies nothing accepts

#: endpoints the runbook names; probed even if the live schema leaves them out
RUNBOOK_ENDPOINTS = (("POST", "/runs"), ("POST", "/runs/{run_id}/cancel"))
#: non-GET endpoints that change nothing, so need no key; anything else unlisted is a finding
READ_ONLY = {"POST /predict": "a forecast: reads the current model, writes nothing"}
PROBE_BODIES = {
    "malformed JSON": b"{opsdrill security probe",
    "JSON of the wrong type": b'"opsdrill security probe: not a request body"',
}
NOT_AN_ID = "opsdrill-not-an-id"
AUDIT_DEADLINE_SECONDS = 10.0


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str
    path: str  # the template with every path parameter replaced by a value that is not an id

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


def _mutating_endpoints(api: httpx.Client) -> tuple[list[Endpoint], str]:
    """Every non-GET operation of /openapi.json plus the runbook's own; a note if no schema."""
    resp = api.get("/openapi.json")
    listed: list[tuple[str, str]] = []
    note = ""
    if resp.status_code == 200:
        for template, operations in resp.json().get("paths", {}).items():
            listed += [(m.upper(), template) for m in operations
                       if m.lower() in ("post", "put", "patch", "delete")]  # fmt: skip
    else:
        note = f" (/openapi.json answered {resp.status_code}: probed the runbook's only)"
    found = dict.fromkeys([*listed, *RUNBOOK_ENDPOINTS])
    endpoints = [
        Endpoint(method, template, _fill(template))
        for method, template in found
        if f"{method} {template}" not in READ_ONLY
    ]
    return endpoints, note


def _fill(template: str) -> str:
    parts = [NOT_AN_ID if p.startswith("{") and p.endswith("}") else p
             for p in template.split("/")]  # fmt: skip
    return "/".join(parts)


def _audit_rows(read, endpoint: Endpoint, kind: str) -> int:
    """Audit rows for failed logins of one kind (missing/invalid) on one concrete path."""
    pattern = (f"authentication failed: {kind} X-API-Key from .* on "
               f"{re.escape(endpoint.method + ' ' + endpoint.path)}( |$)")  # fmt: skip
    return read("SELECT count(*) AS n FROM system_logs WHERE log_message ~ %s",
                (pattern,))[0]["n"]  # fmt: skip


def _send(api: httpx.Client, endpoint: Endpoint, body: bytes, key: str | None) -> int:
    headers = {"content-type": "application/json", "user-agent": queries.SECURITY_PROBE_AGENT}
    if key is not None:
        headers["X-API-Key"] = key
    return api.request(endpoint.method, endpoint.path, content=body, headers=headers).status_code


def _failed_logins_today(read) -> int:
    rows = read(queries.FAILED_LOGINS_BY_DAY)
    today = read("SELECT current_date AS d")[0]["d"]
    return sum(r["n"] for r in rows if r["day"] == today)


def test_mutating_endpoints_refuse_a_missing_or_wrong_key(api: httpx.Client, read) -> None:
    endpoints, note = _mutating_endpoints(api)
    wrong_key = "opsdrill-wrong-" + secrets.token_hex(8)
    cases: list[tuple[Endpoint, str, str, str | None]] = [
        (e, kind, body, key)
        for e in endpoints
        for kind, key in (("missing", None), ("invalid", wrong_key))
        for body in PROBE_BODIES
    ]
    before = {(e.name, kind): _audit_rows(read, e, kind) for e, kind, _, _ in cases}
    reviewed_before = _failed_logins_today(read)
    findings = []
    for endpoint, kind, body, key in cases:
        status = _send(api, endpoint, PROBE_BODIES[body], key)
        if status != 401:
            findings.append(
                f"{endpoint.name} answered {status} to a request with a {kind} key and "
                f"{body} (expected 401: the key must be checked before anything else)"
            )
    assert not findings, (
        f"{len(findings)} probe(s) of {len(endpoints)} mutating endpoint(s){note} not refused: "
        + "; ".join(findings)
        + "; fix: require X-API-Key on every endpoint that changes state, checked first"
    )
    expected = {k: n + len(PROBE_BODIES) for k, n in before.items()}
    by_key = {(e.name, kind): e for e, kind, _, _ in cases}
    deadline = time.monotonic() + AUDIT_DEADLINE_SECONDS
    while True:
        now = {k: _audit_rows(read, by_key[k], k[1]) for k in expected}
        short = {k: (now[k] - before[k]) for k in expected if now[k] < expected[k]}
        if not short or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    assert not short, (
        "failed logins missing from system_logs after "
        f"{AUDIT_DEADLINE_SECONDS:g} s (expected {len(PROBE_BODIES)} audit row(s) each): "
        + ", ".join(f"{name} with a {kind} key: {got}" for (name, kind), got in short.items())
        + "; fix: log refused keys as audit records ('authentication failed: …') into "
        "system_logs, which the monthly security review (runbook 3.3.2) counts"
    )
    reviewed = _failed_logins_today(read) - reviewed_before
    assert reviewed >= len(cases), (
        f"the security review's failed-login query counts {reviewed} new failed login(s) "
        f"today after {len(cases)} refused probes; fix: its pattern and the app's audit "
        "message must agree ('authentication failed')"
    )
    leaked = read("SELECT count(*) AS n FROM system_logs WHERE log_message LIKE %s",
                  (f"%{wrong_key}%",))[0]["n"]  # fmt: skip
    assert leaked == 0, (
        f"the wrong API key sent by the probe appears in {leaked} system_logs row(s) "
        "(expected never: a mistyped real key would leak); fix: log that a key was "
        "invalid, never the key"
    )
