"""A submit's `environment`: its shape (`name` or `name@<hex>`), as the body model and the
domain read it; the worker's side of it (EnvironmentWatch); and published verified node
packs joining the validation rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from comfy_serverless.api.schemas import ExecuteRequest
from comfy_serverless.environments.record import (
    InstalledEnvironment,
    InstalledNode,
    write_installed,
)
from comfy_serverless.environments.requests import (
    EnvironmentRequest,
    MalformedEnvironment,
    parse_environment,
)
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.worker.environment_watch import EnvironmentWatch
from comfy_serverless.worker.worker_config import WorkerConfig

GRAPH = {"1": {"class_type": "EmptyImage", "inputs": {}}}
DIGEST = "3F2A9C" + "e" * 58


@pytest.mark.parametrize(("text", "expected"), [
    ("sdxl-tools", EnvironmentRequest("sdxl-tools")),
    ("SDXL_tools.v2", EnvironmentRequest("SDXL_tools.v2")),
    ("9lives", EnvironmentRequest("9lives")),
    ("sdxl-tools@3F2A9C", EnvironmentRequest("sdxl-tools", "3f2a9c")),
    ("a@" + "0" * 64, EnvironmentRequest("a", "0" * 64)),
    ("n" * 64, EnvironmentRequest("n" * 64)),
])
def test_well_formed_environments_parse(text: str, expected: EnvironmentRequest) -> None:
    assert parse_environment(text) == expected


@pytest.mark.parametrize("text", [
    "", "-leading-dash", ".hidden", "has space", "sdxl/tools", "sdxl%", "n" * 65,
    "sdxl@", "sdxl@3f2a9", "sdxl@" + "0" * 65, "sdxl@3f2a9g", "sdxl@3f2a9c@aa", "@3f2a9c",
    "sdxl-tools\n", "naïve",
])
def test_malformed_environments_are_refused(text: str) -> None:
    with pytest.raises(MalformedEnvironment, match="environment's name"):
        parse_environment(text)


def test_the_submit_body_refuses_a_malformed_environment() -> None:
    with pytest.raises(ValidationError) as refused:
        ExecuteRequest.model_validate({"workflow": GRAPH, "environment": "sdxl tools"})
    [error] = refused.value.errors()
    assert error["loc"] == ("environment",)
    assert "environment's name" in error["msg"]
    with pytest.raises(ValidationError):
        ExecuteRequest.model_validate({"workflow": GRAPH, "environment": 7})


def test_the_submit_body_keeps_a_well_formed_environment_or_none() -> None:
    body = ExecuteRequest.model_validate({"workflow": GRAPH, "environment": "sdxl@3f2a9c"})
    assert body.environment == "sdxl@3f2a9c"
    assert ExecuteRequest.model_validate({"workflow": GRAPH}).environment is None


def test_a_request_matches_a_name_and_the_start_of_a_hash() -> None:
    assert EnvironmentRequest("sdxl").matches("sdxl", DIGEST)
    assert EnvironmentRequest("sdxl").matches("sdxl", None)
    assert not EnvironmentRequest("sdxl").matches("SDXL", DIGEST)
    assert EnvironmentRequest("sdxl", "3f2a9c").matches("sdxl", DIGEST)
    assert not EnvironmentRequest("sdxl", "3f2a9d").matches("sdxl", DIGEST)
    assert not EnvironmentRequest("sdxl", "3f2a9c").matches("sdxl", None)
    assert str(EnvironmentRequest("sdxl", "3f2a9c")) == "sdxl@3f2a9c"


def test_the_watch_reads_the_record_when_asked_and_only_then(tmp_path: Path) -> None:
    watch = EnvironmentWatch(tmp_path)
    assert watch.read() is None
    assert watch.claim_fields() == {"environment": None, "environment_hash": None}
    installed = InstalledEnvironment("sdxl-tools", DIGEST, (
        InstalledNode("clean-pack", "https://example.invalid/clean.git", "a" * 40),
        InstalledNode("risky-pack", "/srv/risky", None, ("eval() in nodes.py",))))
    write_installed(tmp_path, installed)
    assert watch.current is None  # a record written while the engine runs waits for a read
    assert watch.read() == installed
    assert watch.claim_fields() == {"environment": "sdxl-tools", "environment_hash": DIGEST}
    published = watch.published()
    assert (published.name, published.hash) == ("sdxl-tools", DIGEST.lower())
    assert (published.verified_packs, published.flagged_packs) == (("clean-pack",),
                                                                   ("risky-pack",))


def test_an_unreadable_record_means_no_environment(tmp_path: Path) -> None:
    (tmp_path / "environment.json").write_text("{not json")
    assert EnvironmentWatch(tmp_path).read() is None
    assert EnvironmentWatch(None).read() is None


def test_the_claim_match_carries_the_environment(tmp_path: Path) -> None:
    write_installed(tmp_path, InstalledEnvironment("sdxl-tools", DIGEST))
    watch = EnvironmentWatch(tmp_path)
    watch.read()
    config = WorkerConfig(worker_id="w1", spool_dir=tmp_path / "spool",
                          environment_dir=tmp_path)
    match = config.claim_match("cpu", frozenset(), frozenset({"checkpoints/a.safetensors"}), watch)
    assert (match.environment, match.environment_hash) == ("sdxl-tools", DIGEST)
    assert match.disk_models == {"checkpoints/a.safetensors"}
    assert match.ready_params()["worker_environment_hash"] == DIGEST.lower()
    assert match.any_gpu_type


def test_published_verified_packs_join_the_configured_ones() -> None:
    rules = ValidationRules(verified_node_packs=("configured",))
    assert rules.with_verified_packs(()) is rules
    joined = rules.with_verified_packs({"published-b", "published-a", "configured"})
    assert joined.verified_node_packs == ("configured", "published-a", "published-b")
    assert rules.verified_node_packs == ("configured",)
