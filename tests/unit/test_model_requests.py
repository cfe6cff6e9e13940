"""Model sources at submit: validation takes a source as the file it will become, and the
submit check refuses what the tier, the SSRF rules or the hash allowlist forbid, without
connecting anywhere. Hosts are IP literals or refused before any lookup: no test resolves
or reaches a name off this machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from comfy_serverless.access.tiers import Tier, load_access_policy
from comfy_serverless.errors import ApiError
from comfy_serverless.executions.model_requests import checked_model_sources
from comfy_serverless.settings import Settings
from comfy_serverless.store.options import (
    ExecutionOptions,
    ModelSourceInput,
    ModelSourceOptions,
)
from comfy_serverless.validation.model_references import (
    model_references,
    model_source_inputs,
    required_models,
)
from tests.unit.test_validator import refused, validate
from workloads.workflows import tiny_sd15

URL = "https://127.0.0.1:8443/models/tiny.safetensors"
SHA = "ab" * 32
LOOPBACK = Settings(webhook_allowed_networks=["127.0.0.1/32"])


def _with_checkpoint(value: str) -> dict[str, Any]:
    workflow = tiny_sd15(1)
    workflow["4"]["inputs"]["ckpt_name"] = value
    return workflow


def _tier(*hosts: str) -> Tier:
    return Tier("t", 10, 0, 1, 1, None, 60, ("all_models",), ("all",), model_sources=hosts)


async def _refusal(workflow: dict[str, Any], tier: Tier, settings: Settings = LOOPBACK,
                   pins: dict[str, str] | None = None) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await checked_model_sources(workflow, pins or {}, tier, settings)
    return caught.value


def test_validation_takes_a_source_in_a_model_loader_as_the_file_it_will_become() -> None:
    workflow = _with_checkpoint(URL)
    assert validate(workflow).graph["4"]["inputs"]["ckpt_name"] == URL
    details = refused(_with_checkpoint("nowhere.safetensors"), status=422)
    assert "not on any worker" in details["validation_errors"][0]["error"]


def test_a_source_in_a_combo_that_is_no_model_loader_is_still_refused() -> None:
    workflow = tiny_sd15(1)
    workflow["3"]["inputs"]["sampler_name"] = URL
    details = refused(workflow)
    assert "sampler_name" in details["validation_errors"][0]["error"]


def test_sources_are_read_from_loader_inputs_and_left_out_of_model_groups() -> None:
    workflow = _with_checkpoint(URL)
    workflow["6"]["inputs"]["text"] = "https://127.0.0.1/a-prompt-not-a-model"
    found = model_source_inputs(workflow)
    assert [(item.path, item.folder) for item in found] == [("4.inputs.ckpt_name",
                                                            "checkpoints")]
    assert model_references(workflow) == []
    assert required_models(workflow) == ()


async def test_an_allowed_source_is_kept_with_its_pin_and_the_tiers_allowlist() -> None:
    checked = await checked_model_sources(_with_checkpoint(URL), {URL: SHA},
                                          _tier("127.0.0.1"), LOOPBACK)
    assert checked == ModelSourceOptions(
        ("127.0.0.1",), (ModelSourceInput("4", "ckpt_name", URL, SHA, "checkpoints"),))


async def test_the_default_tier_allows_no_host_and_names_the_input() -> None:
    tier = load_access_policy(None).tier("enterprise")
    error = await _refusal(_with_checkpoint("https://models.example.com/a.safetensors"), tier)
    assert (error.status_code, error.error_code) == (403, "MODEL_NOT_ALLOWED")
    assert error.details["field"] == "workflow.4.inputs.ckpt_name"
    assert error.details["model_source"] == "https://models.example.com/a.safetensors"


async def test_an_internal_address_is_refused_even_when_the_tier_lists_it() -> None:
    error = await _refusal(_with_checkpoint("https://10.0.0.7/a.safetensors"), _tier("10.*"))
    assert error.status_code == 403
    assert "internal address" in error.message


async def test_a_malformed_source_is_a_workflow_error_on_its_node() -> None:
    error = await _refusal(_with_checkpoint("https://user:pw@127.0.0.1/a.safetensors"),
                           _tier("127.0.0.1"))
    assert (error.status_code, error.error_code) == (400, "WORKFLOW_VALIDATION_FAILED")
    problem = error.details["validation_errors"][0]
    assert problem["node_id"] == "4"
    assert "4.inputs.ckpt_name" in problem["error"]
    assert "pw" not in json.dumps(error.body())


async def test_a_pin_for_a_source_the_workflow_does_not_name_is_refused() -> None:
    error = await _refusal(_with_checkpoint(URL), _tier("127.0.0.1"),
                           pins={URL + "?typo": SHA})
    assert (error.status_code, error.error_code) == (400, "INVALID_REQUEST")
    assert error.details["field"] == f"model_sources.{URL}?typo"


async def test_require_model_hashes_refuses_a_pin_outside_the_allowlist() -> None:
    strict = Settings(webhook_allowed_networks=["127.0.0.1/32"], require_model_hashes=True,
                      model_hash_allowlist=["cd" * 32])
    error = await _refusal(_with_checkpoint(URL), _tier("127.0.0.1"), strict, {URL: SHA})
    assert error.status_code == 403
    assert "require_model_hashes" in error.message
    allowed = await checked_model_sources(_with_checkpoint(URL), {URL: "CD" * 32},
                                          _tier("127.0.0.1"), strict)
    assert allowed.inputs[0].sha256 == "cd" * 32


async def test_an_s3_source_is_matched_by_its_bucket_glob() -> None:
    source = "s3://team-models/sd/tiny.safetensors"
    checked = await checked_model_sources(_with_checkpoint(source), {},
                                          _tier("s3://team-*"), LOOPBACK)
    assert checked.inputs[0].source == source
    error = await _refusal(_with_checkpoint(source), _tier("s3://other-*"))
    assert error.status_code == 403


def test_a_tiers_file_sets_model_sources_which_answers_do_not_show(tmp_path: Path) -> None:
    path = tmp_path / "tiers.json"
    path.write_text(json.dumps({"tiers": {"pro": {"model_sources": ["*.example.com"]}}}))
    policy = load_access_policy(path)
    assert policy.tier("pro").model_sources == ("*.example.com",)
    assert policy.tier("basic").model_sources == ()
    assert "model_sources" not in policy.tier("pro").as_dict()


def test_stored_model_sources_round_trip_and_old_rows_read_as_none() -> None:
    options = ExecutionOptions(model_sources=ModelSourceOptions(
        ("127.0.0.1",), (ModelSourceInput("4", "ckpt_name", URL, None, "checkpoints"),)))
    written = json.loads(json.dumps(options.as_json()))
    assert ExecutionOptions.from_json(written) == options
    assert "model_sources" not in ExecutionOptions().as_json()
    assert ExecutionOptions.from_json({"metadata": {}}).model_sources == ModelSourceOptions()


def test_the_policy_carries_credentials_that_never_show() -> None:
    settings = Settings(model_source_credentials={"*.example.com": SecretStr("Bearer s3cr3t")},
                        hf_endpoint="https://hub.example.com", hf_token=SecretStr("hf_t0ken"))
    policy = settings.model_source_policy(["*.example.com"])
    assert policy.headers_for("models.example.com") == {"Authorization": "Bearer s3cr3t"}
    assert policy.headers_for("hub.example.com") == {"Authorization": "Bearer hf_t0ken"}
    assert policy.headers_for("elsewhere.org") == {}
    for shown in (repr(policy), repr(settings), str(settings.model_dump())):
        assert "s3cr3t" not in shown
        assert "hf_t0ken" not in shown
