"""The Python SDK's models (clients/python) against the service's answer models
(api/bodies): each SDK model parses every example the service documents, and names no
field the service does not send, so that the two cannot drift apart."""

from __future__ import annotations

from typing import Any

import pytest
from comfy_serverless_client import models as sdk
from comfy_serverless_client._core import SseParser
from pydantic import BaseModel

from comfy_serverless.api.bodies import executions, results
from comfy_serverless.api.bodies.service import STREAM_EXAMPLE
from comfy_serverless.api.schemas import ErrorBody

PAIRS: list[tuple[type[BaseModel], type[BaseModel]]] = [
    (sdk.Accepted, executions.Accepted),
    (sdk.ExecutionStatus, executions.ExecutionStatus),
    (sdk.LogEntry, executions.LogEntry),
    (sdk.Cancelled, executions.Cancelled),
    (sdk.Results, results.Results),
    (sdk.ResultsBody, results.ResultsBody),
    (sdk.Output, results.Output),
    (sdk.FileInfo, results.FileInfo),
    (sdk.OutputStorage, results.OutputStorage),
    (sdk.ErrorBody, ErrorBody),
]


def _examples(model: type[BaseModel]) -> list[dict[str, Any]]:
    examples: list[dict[str, Any]] = model.model_json_schema().get("examples", [])
    return examples


@pytest.mark.parametrize(("client_model", "service_model"), PAIRS,
                         ids=[client.__name__ for client, _ in PAIRS])
def test_the_sdk_model_names_only_fields_the_service_sends(
        client_model: type[BaseModel], service_model: type[BaseModel]) -> None:
    sent = service_model.model_fields
    assert set(client_model.model_fields) <= set(sent)
    for name, field in client_model.model_fields.items():
        if field.is_required():
            assert sent[name].is_required(), f"{client_model.__name__}.{name} may be absent"


@pytest.mark.parametrize(("client_model", "service_model"),
                         [pair for pair in PAIRS if _examples(pair[1])],
                         ids=lambda model: model.__name__)
def test_the_sdk_model_parses_every_documented_example(
        client_model: type[BaseModel], service_model: type[BaseModel]) -> None:
    for example in _examples(service_model):
        service_model.model_validate(example)
        parsed = client_model.model_validate(example)
        assert parsed.model_dump(exclude_unset=True).keys() <= example.keys()


def test_the_sdk_reads_the_documented_event_stream() -> None:
    parser = SseParser()
    events = [event for line in STREAM_EXAMPLE.split("\n")
              if (event := parser.feed(line)) is not None]
    assert [(event.id, event.event) for event in events] == [
        (1, "status"), (2, "progress"), (3, "end")]
    progress = sdk.Progress.model_validate(events[1].data)
    assert progress.current_step == 10
    assert progress.total_nodes == 7
