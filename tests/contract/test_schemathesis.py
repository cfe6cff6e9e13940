"""Schemathesis against the running service: every operation of the served OpenAPI document,
with a user key, then the admin operations with an admin key.

The service is the session's real one (tests/conftest.py `service`): the embedded worker on
the tiny ComfyUI, so the catalog that execute and convert validate against is real, and the
operations that take an id reach real records (an execution that completed and stored an
output, a key, a webhook endpoint), named in schemathesis.toml. With no worker, executions
would stay queued and the events and results routes would never answer their full bodies.

The checks: no 5xx, no status the document does not declare, every body, content type and
declared header as documented, and a method a path does not serve answers 405 with an
`Allow` that lists what it does serve. Fails (never skips) when schemathesis is missing.
Re-run alone with `.venv/bin/python -m pytest tests/contract -q`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis

from comfy_serverless.testing import UNTHROTTLED, LocalService
from workloads.workflows import inverted_image

pytestmark = pytest.mark.comfyui

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance",
          "unsupported_method", "allow_header_conformance")
# Test cases per operation and phase: with the coverage phase's own cases, about 1,800 for
# the user run (27 operations, ~16 s) and 600 for the admin run (7 operations, ~4 s) on two
# shared cores. One worker: with two, hypothesis's lambda descriptions race in its AST
# cache ("AST constructor recursion depth mismatch", a runtime error, not a finding).
MAX_EXAMPLES = 50
SEED = 14
CONFIG = Path(__file__).with_name("schemathesis.toml")


@dataclass(frozen=True)
class ContractRun:
    """One schemathesis run: which key, over which operations."""

    name: str
    key: str
    selection: tuple[str, ...] = ()


@pytest.fixture(scope="module")
def contract_env(service: LocalService, api_key: str) -> dict[str, str]:
    """The ids schemathesis.toml names: real records, made before the runs."""
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=service.base_url, headers=headers, timeout=60) as api:
        accepted = api.post("/v1/workflows/execute", json={"workflow": inverted_image(91)})
        assert accepted.status_code == 202, accepted.text
        execution_id = accepted.json()["execution_id"]
        finished = api.get(f"/v1/workflows/{execution_id}/results", params={"wait": 60})
        assert finished.status_code == 200, finished.text
        endpoint = api.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/contract",
                                                  "events": ["*"]})
        assert endpoint.status_code == 201, endpoint.text
    return {"CONTRACT_EXECUTION_ID": execution_id,
            "CONTRACT_KEY_ID": _key_id(service, service.new_key()),
            "CONTRACT_ENDPOINT_ID": endpoint.json()["id"],
            "CONTRACT_ERROR_CODE": "EXECUTION_NOT_FOUND"}


def _key_id(service: LocalService, plaintext: str) -> str:
    keys: list[dict[str, Any]] = json.loads(service.cli("keys", "list"))
    return next(str(key["key_id"]) for key in keys if plaintext.startswith(key["prefix"]))


def _admin_key(service: LocalService) -> str:
    limits = [f"--limit={name}={UNTHROTTLED}" for name in (
        "requests_per_minute", "concurrent_executions", "max_queue_size", "monthly_quota")]
    return service.new_key("--admin", "--tier", "enterprise", *limits)


def run_schemathesis(service: LocalService, run: ContractRun, env: dict[str, str],
                     reports: Path) -> dict[str, Any]:
    """The CLI over the served document; its JSON report. `--url` sends the requests to this
    service whatever the document's `servers` say (a public URL from settings)."""
    report = reports / f"{run.name}.json"
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
        f"{service.base_url}/openapi.json", "--url", service.base_url,
        "--header", f"Authorization: Bearer {run.key}",
        "--checks", ",".join(CHECKS), "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED), "--workers", "1", "--generation-database", "none",
        "--report", "json", "--report-json-path", str(report), *run.selection,
    ]
    finished = subprocess.run(command, env={**os.environ, **env}, capture_output=True,
                              text=True, timeout=600, check=False)
    assert report.is_file(), f"schemathesis wrote no report:\n{finished.stderr[-4000:]}"
    summary: dict[str, Any] = json.loads(report.read_text())
    summary["output"] = finished.stdout[-12000:]
    return summary


def assert_conforms(summary: dict[str, Any]) -> None:
    operations = summary["operations"]
    problems = {"failures": summary["failures"], "errors": summary["errors"],
                "untested": operations["selected"] - operations["tested"]}
    assert problems == {"failures": [], "errors": [], "untested": 0}, (
        f"{problems}\n{summary['output']}")
    assert summary["exit_code"] == 0, summary["output"]
    assert operations["tested"] > 0
    assert summary["test_cases"]["generated"] >= operations["tested"]


def test_schemathesis_is_the_pinned_version() -> None:
    assert schemathesis.__version__ == "4.32.5"


def test_every_operation_conforms_with_a_user_key(
        service: LocalService, api_key: str, contract_env: dict[str, str],
        tmp_path: Path) -> None:
    summary = run_schemathesis(service, ContractRun("user", api_key), contract_env,
                               tmp_path)
    assert_conforms(summary)
    served = httpx.get(f"{service.base_url}/openapi.json").json()["paths"]
    assert summary["operations"]["tested"] == sum(
        len([method for method in item if method != "parameters"]) for item in served.values())


def test_admin_operations_conform_with_an_admin_key(
        service: LocalService, contract_env: dict[str, str], tmp_path: Path) -> None:
    run = ContractRun("admin", _admin_key(service), ("--include-path-regex", "^/v1/admin/"))
    summary = run_schemathesis(service, run, contract_env, tmp_path)
    assert_conforms(summary)
    assert summary["warnings"].get("missing_auth", []) == []
