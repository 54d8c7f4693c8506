"""The API fuzzed from its own OpenAPI schema (schemathesis): no 5xx, every error a JSON body.

Requests carry the API key, so the mutating endpoints are exercised past their guard. A run the
fuzzer manages to create is cancelled at once, so fuzzing never fills the executor's queue;
the examples per operation are bounded to keep the test near half a minute on two cores.
"""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, given, settings

from system.tests.conftest import API_KEY, App

MAX_EXAMPLES = int(os.environ.get("NF_FUZZ_MAX_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


def _check(case: schemathesis.Case, app: App) -> None:
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "x-api-key"}
    case.headers = {**headers, "X-API-Key": API_KEY}
    response = case.call(timeout=30)
    where = f"{case.method} {case.formatted_path} -> {response.status_code}"
    if response.status_code == 201 and case.path == "/runs":  # never let fuzzing train
        run_id = response.json()["run_id"]
        cancelled = app.admin.post(f"/runs/{run_id}/cancel")
        assert cancelled.status_code in (200, 409), f"cancel of fuzzed run: {cancelled.text}"
    assert response.status_code < 500, f"{where}: {response.text[:300]}\n{case.as_curl_command()}"
    if response.status_code >= 400:
        content_type = ", ".join(response.headers.get("content-type", []))
        assert "json" in content_type, (
            f"{where} error without a JSON body ({content_type or 'no content type'}): "
            f"{response.text[:200]}\n{case.as_curl_command()}"
        )
        assert "detail" in response.json(), f"{where}: {response.text[:200]}"


def test_fuzzed_requests_get_no_5xx_and_json_errors(healthy: App) -> None:
    schema = schemathesis.openapi.from_url(f"{healthy.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7, f"the schema lists only {[o.label for o in operations]}"
    failures = []
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy())
        def fuzz(case: schemathesis.Case) -> None:
            _check(case, healthy)

        try:
            fuzz()
        except AssertionError as exc:  # hypothesis re-raises the shrunk example's failure
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n".join(failures)
