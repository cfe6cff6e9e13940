"""The options column, typed: rows that the dict-reading code wrote parse, and what the
submit writes now is byte for byte what it wrote then (tests/written_options.py, for the
requests of _REQUESTS), so that either code reads either row."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.access.tiers import load_access_policy
from comfy_serverless.auth.keys import issue_key
from comfy_serverless.executions.requests import (
    Idempotency,
    NotifyRequest,
    OutputRequest,
    RunRequest,
    SubmitRequest,
)
from comfy_serverless.executions.submission import new_execution
from comfy_serverless.inputs.staging import StagedInput
from comfy_serverless.settings import Settings
from comfy_serverless.storage.base import StoredLocation
from comfy_serverless.storage.destinations import Destination
from comfy_serverless.store.options import (
    ExecutionOptions,
    NotifyOptions,
    OutputOptions,
    RunOptions,
    StagedInputOptions,
    StoredDestination,
)
from comfy_serverless.store.records import NewExecution
from tests.written_options import BEFORE_DESTINATIONS, STAGED_BEFORE, WRITTEN_BEFORE
from workloads.workflows import inverted_image

_REQUESTS = [
    (OutputRequest("png", 95, None, {}), RunRequest(5, None, None, None, True, None),
     NotifyRequest(None, None, include_progress=False, include_intermediate=False)),
    (OutputRequest("webp", 80, "lossless", {"path": "mine/{execution_id}/x",
                                            "public_access": True, "retention_days": 7}),
     RunRequest(9, 120, 0.5, None, False, 3),
     NotifyRequest("https://example.com/h", "s", include_progress=True,
                   include_intermediate=True)),
    (OutputRequest("jpg", 70, "lossy", {"provider": "local"}),
     RunRequest(1, 30, None, None, True, 0),
     NotifyRequest(None, "s", include_progress=True, include_intermediate=False)),
]


def _submitted(index: int, tmp_path: Path) -> NewExecution:
    output, run, notify = _REQUESTS[index]
    request = SubmitRequest(
        workflow=inverted_image(1), input_overrides={}, output=output, run=run, notify=notify,
        webhook_header=None, client_id=None, idempotency=Idempotency(None, None, "body"))
    policy = load_access_policy(None)
    return new_execution(request, issue_key("secret", "enterprise").record,
                         Settings(data_dir=tmp_path), None, tier=policy.tier("enterprise"),
                         policy=policy).execution


def _stored(execution: NewExecution) -> str:
    return str(execution.params()["options"])


@pytest.mark.parametrize("index", range(len(_REQUESTS)))
def test_the_submit_writes_the_options_byte_for_byte_as_before(index: int,
                                                               tmp_path: Path) -> None:
    execution = _submitted(index, tmp_path)
    assert _stored(execution) == WRITTEN_BEFORE[index].replace("{id}", execution.id)


def test_staged_images_are_written_as_before(tmp_path: Path) -> None:
    execution = _submitted(0, tmp_path)
    staged = (StagedInput("1", "image", f"{execution.id}_0.png", StoredLocation(
                  "local", f"outputs/{execution.id}/inputs/{execution.id}_0.png")),
              StagedInput("2", "image", "e_1.webp",
                          StoredLocation("s3", "k/e_1.webp", "bucket")))
    options = dataclasses.replace(execution.options,
                                  staged_inputs=tuple(item.as_stored() for item in staged))
    written = _stored(dataclasses.replace(execution, options=options))
    assert written == STAGED_BEFORE.replace("{id}", execution.id)
    parsed = ExecutionOptions.from_json(json.loads(written))
    assert [StagedInput.from_stored(item) for item in parsed.staged_inputs] == list(staged)


@pytest.mark.parametrize("written", [*WRITTEN_BEFORE, STAGED_BEFORE])
def test_a_row_written_before_parses_and_writes_back_the_same_bytes(written: str) -> None:
    parsed = ExecutionOptions.from_json(json.loads(written))
    assert json.dumps(parsed.as_json()) == written


def test_the_parsed_options_are_what_the_old_reads_found() -> None:
    parsed = ExecutionOptions.from_json(json.loads(WRITTEN_BEFORE[1].replace("{id}", "e")))
    assert parsed.output == OutputOptions("webp", 80, "lossless", StoredDestination(
        "local", None, "mine/e/x/", public_access=True, retention_days=7))
    assert parsed.run == RunOptions(9, 120, 0.5, None, enable_optimization=False,
                                    retry_attempts=3)
    assert parsed.notify == NotifyOptions("https://example.com/h", include_progress=True,
                                          include_intermediate=True)
    assert (parsed.metadata, parsed.staged_inputs) == ({}, ())


def test_workflow_metadata_is_kept_as_given() -> None:
    metadata = {"title": "a UI file", "nodes": [{"id": 3, "title": "KSampler"}]}
    written = json.dumps(ExecutionOptions(metadata=metadata).as_json())
    assert ExecutionOptions.from_json(json.loads(written)).metadata == metadata


# Rows from before a part existed, or written by tests and tools with only the parts they
# needed: each missing value reads as the default its reader always gave it.
_NOTHING_ASKED = ExecutionOptions()
_LEGACY_ROWS: list[tuple[dict[str, Any] | None, ExecutionOptions]] = [
    (None, _NOTHING_ASKED),
    ({}, _NOTHING_ASKED),
    ({"execution_config": {}}, _NOTHING_ASKED),
    ({"metadata": None, "output_config": None, "execution_config": None}, _NOTHING_ASKED),
    ({"execution_config": {"timeout": 1, "enable_optimization": None}},
     ExecutionOptions(run=RunOptions(timeout=1, enable_optimization=True))),
    ({"output_config": {"storage": {"retention_days": 1}}},
     ExecutionOptions(output=OutputOptions(storage=StoredDestination(retention_days=1)))),
    ({"output_config": {"format": None, "quality": None}}, _NOTHING_ASKED),
    (BEFORE_DESTINATIONS, ExecutionOptions(
        {"title": "t"},
        OutputOptions("jpeg", 90, None, StoredDestination(
            "s3", "b", None, public_access=True, retention_days=30)),
        RunOptions(3, None, 0.25, 2), NotifyOptions(None, include_progress=True))),
]


@pytest.mark.parametrize(("row", "expected"), _LEGACY_ROWS)
def test_rows_with_missing_or_legacy_keys_parse_to_the_old_defaults(
        row: dict[str, Any] | None, expected: ExecutionOptions) -> None:
    assert ExecutionOptions.from_json(row) == expected


def test_a_legacy_storage_keeps_the_default_folder_and_its_retention() -> None:
    legacy = ExecutionOptions.from_json(BEFORE_DESTINATIONS)
    assert Destination.from_stored("exec_1", legacy.output.storage) == Destination(
        "local", None, "outputs/exec_1/")
    assert legacy.output.storage.retention_days == 30  # what a 410 OUTPUTS_EXPIRED names


def test_a_staged_image_without_a_bucket_is_stored_locally() -> None:
    item = {"node_id": "1", "input": "image", "filename": "a.png", "provider": "local",
            "key": "k/a.png"}
    assert ExecutionOptions.from_json({"staged_inputs": [item]}).staged_inputs == (
        StagedInputOptions("1", "image", "a.png", "local", None, "k/a.png"),)
