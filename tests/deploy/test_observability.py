"""deploy/observability: every query of the Grafana dashboard and of the alert rules names a
metric that a running service's /metrics really exports, and promtool accepts the rules and
passes their unit tests (alerts.test.yaml)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from comfy_serverless.testing import LocalService
from tests.deploy.tools import DEPLOY, require_tool

OBSERVABILITY = DEPLOY / "observability"
_METRIC = re.compile(r"\bcomfy_serverless_[a-z0-9_]+")


@pytest.fixture(scope="module")
def exported_metrics(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Metric and sample names of a running API (no embedded worker: no ComfyUI needed)."""
    data_dir = tmp_path_factory.mktemp("metrics-api")
    env = {"COMFY_SERVERLESS_EMBEDDED_WORKER": "false"}
    with LocalService.start(data_dir, data_dir / "no-engine", extra_env=env) as api:
        text = httpx.get(api.base_url + "/metrics", timeout=10).text
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def dashboard_queries() -> list[str]:
    dashboard = json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def alert_queries() -> list[str]:
    rules = yaml.safe_load((OBSERVABILITY / "alerts.yaml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def metrics_named(query: str) -> set[str]:
    return set(_METRIC.findall(query))


def promtool() -> str:
    return require_tool("promtool", ["apt-get", "install", "-y", "--no-install-recommends",
                                     "prometheus"], "Debian's prometheus package")


def test_the_dashboard_covers_what_operators_watch() -> None:
    named = set().union(*map(metrics_named, dashboard_queries()))
    assert {"comfy_serverless_queue_depth", "comfy_serverless_queue_oldest_age_seconds",
            "comfy_serverless_executions", "comfy_serverless_failures",
            "comfy_serverless_workers", "comfy_serverless_gpu_memory_bytes",
            "comfy_serverless_webhook_delivery_attempts"} <= named


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_every_query_names_only_metrics_that_metrics_exports(
        source: str, exported_metrics: set[str]) -> None:
    queries = dashboard_queries() if source == "dashboard" else alert_queries()
    assert queries
    for query in queries:
        named = metrics_named(query)
        assert named, f"names no metric of ours: {query}"
        assert named <= exported_metrics, (named - exported_metrics, query)


def test_the_name_check_sees_a_metric_that_does_not_exist(exported_metrics: set[str]) -> None:
    named = metrics_named("max(delta(comfy_serverless_jobs_total[5m])) / 5")
    assert named == {"comfy_serverless_jobs_total"}
    assert not named <= exported_metrics


@pytest.mark.parametrize("command", [["check", "rules", "alerts.yaml"],
                                     ["test", "rules", "alerts.test.yaml"]])
def test_promtool_accepts_the_rules_and_their_unit_tests(command: list[str]) -> None:
    result = subprocess.run([promtool(), *command], cwd=Path(OBSERVABILITY),
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
