"""deploy/kubernetes renders with kustomize, and every object is valid for Kubernetes and KEDA.

Schemas are offline: kubernetes-validate bundles the Kubernetes OpenAPI schemas (strict:
unknown fields are refused); cloudcoil-models-keda holds KEDA's CRD schema as models, and
`_unknown_fields` refuses any field the CRD does not define.
"""

from __future__ import annotations

import subprocess
from typing import Any

import asyncpg
import kubernetes_validate  # type: ignore[import-untyped]  # it ships no type hints
import pytest
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication
from pydantic import BaseModel

from comfy_serverless.store.store import Store
from tests.conftest import fresh_postgres_schema
from tests.deploy.tools import DEPLOY, kubectl, setting_variables

KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
KEDA_MODELS: dict[str, type[BaseModel]] = {
    "ScaledObject": ScaledObject, "TriggerAuthentication": TriggerAuthentication}


def render(overlay: str) -> list[dict[str, Any]]:
    result = subprocess.run([kubectl(), "kustomize", str(DEPLOY / "kubernetes/overlays" / overlay)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def _unknown_fields(model: type[BaseModel], data: Any, path: str = "") -> list[str]:
    """Fields in `data` that `model` (generated from a CRD) does not define, recursively."""
    if not isinstance(data, dict):
        return []
    fields = {(f.alias or n): f for n, f in model.model_fields.items()}
    unknown = []
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            unknown.append(f"{path}.{key}")
            continue
        for nested in _models_in(field.annotation):
            items = value if isinstance(value, list) else [value]
            for item in items:
                unknown += _unknown_fields(nested, item, f"{path}.{key}")
    return unknown


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def validate(obj: dict[str, Any]) -> None:
    model = KEDA_MODELS.get(obj["kind"])
    if model is not None:
        model.model_validate(obj)
        assert _unknown_fields(model, obj) == [], obj["metadata"]["name"]
        return
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
def test_every_rendered_object_validates_offline(overlay: str) -> None:
    objects = render(overlay)
    assert {o["kind"] for o in objects} >= {
        "ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget", "Job",
        "PersistentVolumeClaim", "ScaledObject", "TriggerAuthentication"}
    for obj in objects:
        validate(obj)


def test_the_strict_checks_refuse_a_misspelt_field() -> None:
    scaled = by_kind(render("cpu"), "ScaledObject", "comfy-serverless-worker")
    scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behaviour"] = {}
    with pytest.raises(AssertionError):
        validate(scaled)
    api = by_kind(render("cpu"), "Deployment", "comfy-serverless-api")
    api["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(api)


@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
def test_a_worker_outlives_its_shutdown_grace_and_only_gpu_workers_ask_for_a_gpu(
        overlay: str) -> None:
    objects = render(overlay)
    grace = float(by_kind(objects, "ConfigMap", "comfy-serverless")["data"][
        "COMFY_SERVERLESS_SHUTDOWN_GRACE"])
    pod = by_kind(objects, "Deployment", "comfy-serverless-worker")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > grace + 5  # + the preStop sleep
    limits = pod["containers"][0]["resources"]["limits"]
    assert ("nvidia.com/gpu" in limits) == (overlay == "gpu")


def test_the_api_probes_its_health_routes_and_keeps_a_replica_through_disruptions() -> None:
    objects = render("cpu")
    api = by_kind(objects, "Deployment", "comfy-serverless-api")["spec"]["template"]["spec"]
    container = api["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert by_kind(objects, "PodDisruptionBudget", "comfy-serverless-api")["spec"][
        "minAvailable"] == 1
    assert by_kind(objects, "Job", "comfy-serverless-migrate")["spec"]["template"]["spec"][
        "containers"][0]["args"] == ["migrate"]


def test_config_and_secret_hold_only_real_settings() -> None:
    objects = render("gpu")
    for kind in ("ConfigMap", "Secret"):
        obj = by_kind(objects, kind, "comfy-serverless")
        names = set(obj.get("data", {})) | set(obj.get("stringData", {}))
        assert names <= setting_variables(), names - setting_variables()


def test_keda_scales_from_zero_with_a_cooldown() -> None:
    spec = by_kind(render("cpu"), "ScaledObject", "comfy-serverless-worker")["spec"]
    trigger = spec["triggers"][0]
    assert spec["minReplicaCount"] == 0
    assert spec["cooldownPeriod"] > 0
    assert trigger["type"] == "postgresql"
    assert trigger["metadata"]["activationTargetQueryValue"] == "0"


async def test_the_scaler_query_counts_waiting_and_running_jobs_on_our_schema() -> None:
    scaled = by_kind(render("cpu"), "ScaledObject", "comfy-serverless-worker")
    query = scaled["spec"]["triggers"][0]["metadata"]["query"]
    async with fresh_postgres_schema() as url:
        store = await Store.open(url)
        try:
            await store.migrate()
            assert await _scalar(url, query) == 0
            await _insert_executions(url, ["queued", "processing", "completed", "queued"])
            assert await _scalar(url, query) == 3
        finally:
            await store.close()


async def _scalar(url: str, query: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval(query))
    finally:
        await connection.close()


async def _insert_executions(url: str, statuses: list[str]) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "INSERT INTO api_keys (id, prefix, secret_hash, kind, tier, created_at)"
            " VALUES ('k', 'p', 'h', 'user', 'free', 0)")
        for index, status in enumerate(statuses):
            await connection.execute(
                "INSERT INTO executions (id, api_key_id, status, priority, workflow, options,"
                " signature, submitted_at, total_nodes)"
                " VALUES ($1, 'k', $2, 0, '{}', '{}', 's', 0, 1)", f"e{index}", status)
    finally:
        await connection.close()
