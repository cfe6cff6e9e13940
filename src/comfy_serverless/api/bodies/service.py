"""Answers that are not JSON (the event stream, files, metrics), and the probes' bodies."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from comfy_serverless.api.bodies import described

__all__ = [
    "ERROR_PAGE",
    "EVENT_STREAM",
    "FILE",
    "METRICS",
    "STREAM_EVENT_SCHEMA",
    "STREAM_EXAMPLE",
    "Health",
    "Readiness",
]

STREAM_EXAMPLE = (
    "retry: 1000\n: stream of exec_7f9e8d2c4a1b\n\n"
    "id: 1\nevent: status\n"
    'data: {"execution_id":"exec_7f9e8d2c4a1b","timestamp":"2024-08-31T10:15:30Z",'
    '"status":"processing"}\n\n'
    "id: 2\nevent: progress\n"
    'data: {"execution_id":"exec_7f9e8d2c4a1b","timestamp":"2024-08-31T10:15:40Z",'
    '"progress":0.5,"current_node":"KSampler","current_node_id":"3","current_step":10,'
    '"total_steps":20,"completed_nodes":3,"total_nodes":7}\n\n'
    ": heartbeat\n\n"
    "id: 3\nevent: end\n"
    'data: {"execution_id":"exec_7f9e8d2c4a1b","timestamp":"2024-08-31T10:16:45Z",'
    '"status":"completed","results_url":"/v1/workflows/exec_7f9e8d2c4a1b/results"}\n\n'
)

# One event of the stream, as OpenAPI 3.1 lets `schema` describe an event stream's items
# (3.2 names it `itemSchema`): its `data` is one line of JSON.
STREAM_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string",
                  "enum": ["status", "progress", "log", "preview", "output", "end"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "retry": {"type": "integer", "minimum": 0},
    },
}

EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    **described(200, "text/event-stream", STREAM_EVENT_SCHEMA, (
        "Server-Sent Events until the execution ends (docs/how-to/stream.md). Each event "
        "has a numeric `id` (send the last one back as `Last-Event-ID` to resume), an "
        "`event` name (`status`, `progress`, `log`, `preview`, `output`, then `end`, after "
        "which the server closes the stream) and one line of JSON `data` carrying "
        "`execution_id` and `timestamp`. `: heartbeat` comments keep proxies from closing "
        "a quiet stream."), STREAM_EXAMPLE),
    204: {"description": "The stream already ended before `Last-Event-ID`: nothing more "
                         "will come (an EventSource stops reconnecting)"},
}

FILE = described(200, "*/*", {"type": "string", "format": "binary"},
                 "The output file, with its own content type")

ERROR_PAGE = described(200, "text/html", {"type": "string"},
                      "An HTML page: what each error code means and what to do about it "
                      "(the target of every error body's `documentation_url`)")

METRICS = described(200, "text/plain", {"type": "string"},
                    "Prometheus' text exposition format (version 0.0.4)",
                    "# HELP comfy_serverless_executions Executions by status\n"
                    "# TYPE comfy_serverless_executions gauge\n"
                    'comfy_serverless_executions{status="queued"} 3.0\n')


class Health(BaseModel):
    """200 from `GET /healthz`: the process answers."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"]


class Readiness(BaseModel):
    """`GET /readyz`: 200 when ready, 503 with the same fields when the store does not answer,
    the embedded worker's ComfyUI is down, or its warm-up has not finished yet."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ready", "store": "postgresql", "engine": "ready"},
        {"status": "unavailable", "store": "sqlite", "engine": "warming"},
        {"status": "unavailable", "store": "unavailable"},
    ]})

    status: Literal["ready", "unavailable"]
    store: str = Field(description="The store's dialect, or `unavailable`")
    engine: Literal["ready", "warming", "down"] | None = Field(
        default=None, description="Null without an embedded worker; absent if the store is "
                                  "down; `warming` until its warm-up workflow has finished")
