"""What the sync and async clients share, without I/O: the requests they build, how they
read answers and errors, when they retry, and the Server-Sent Events parser."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from comfy_serverless_client.errors import TransportError, error_for
from comfy_serverless_client.models import ErrorBody, Output, Progress, Results, StreamEvent

__all__ = [
    "ClientConfig", "ProgressCallback", "RetryPolicy", "SseParser", "client_config", "decode",
    "fail", "output_path", "outputs_of", "progress_of", "results_or_none", "stream_headers",
    "stream_timeout", "submit_body",
]

M = TypeVar("M", bound=BaseModel)
ProgressCallback = Callable[[Progress], object]
_RETRIED_STATUSES = frozenset({429, 502, 503, 504})
_IDEMPOTENT_METHODS = frozenset({"GET", "DELETE", "HEAD"})


@dataclass(frozen=True)
class ClientConfig:
    base_url: str
    api_key: str | None
    timeout: float = 30.0

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": "comfy-serverless-client/1.0"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


@dataclass(frozen=True)
class RetryPolicy:
    """A 429 or 503 is retried after its Retry-After; a broken connection or a 502/504 after
    a backoff, but only for requests that cannot run twice (GETs, DELETEs, and submits,
    which always carry an idempotency key)."""

    max_retries: int = 3
    max_wait: float = 60.0
    backoff: float = 0.5

    def delay(self, attempt: int, request: httpx.Request, response: httpx.Response | None
              ) -> float | None:
        """Seconds to wait before retry `attempt` (1, 2 …) of `request`, which got
        `response` (None: the connection failed), or None to stop there."""
        if attempt > self.max_retries:
            return None
        if response is not None and response.status_code not in _RETRIED_STATUSES:
            return None
        refused_before_running = response is not None and response.status_code in (429, 503)
        if not refused_before_running and not _runs_once(request):
            return None
        retry_after = _retry_after(response) if response is not None else None
        wait = retry_after if retry_after is not None else self.backoff * 2 ** (attempt - 1)
        return None if wait > self.max_wait else wait


def _runs_once(request: httpx.Request) -> bool:
    return request.method in _IDEMPOTENT_METHODS or "Idempotency-Key" in request.headers


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def decode(response: httpx.Response, model: type[M]) -> M:
    """The body as `model`, or the most specific ApiError for an error answer."""
    if response.status_code >= 400:
        fail(response)
    try:
        return model.model_validate(response.json())
    except (ValueError, ValidationError) as exc:
        raise TransportError(f"unexpected answer from {response.url}: {exc}") from exc


def fail(response: httpx.Response) -> NoReturn:
    """Raise the error of an answer that is not the one expected."""
    if response.status_code >= 400:
        raise error_for(response.status_code, _error_body(response), _retry_after(response))
    raise TransportError(f"unexpected {response.status_code} from {response.url}")


def _error_body(response: httpx.Response) -> ErrorBody:
    try:
        return ErrorBody.model_validate(response.json())
    except (ValueError, ValidationError):
        return ErrorBody(error_code=f"HTTP_{response.status_code}",
                         message=response.text[:500] or response.reason_phrase)


def submit_body(workflow: Mapping[str, Any], overrides: Mapping[str, Any] | None,
                options: Mapping[str, Any], idempotency_key: str | None
                ) -> tuple[dict[str, Any], dict[str, str]]:
    """The execute request: `workflow` is a graph, or a whole request body (as in
    examples/*.json, with `workflow` and `input_overrides`); `overrides` are added to its
    input_overrides. Every submit carries an idempotency key, so a retry never runs twice."""
    body = dict(workflow) if "workflow" in workflow else {"workflow": dict(workflow)}
    if overrides:
        body["input_overrides"] = {**body.get("input_overrides", {}), **overrides}
    body.update({name: value for name, value in options.items() if value is not None})
    return body, {"Idempotency-Key": idempotency_key or f"sdk-{uuid.uuid4().hex}"}


def output_path(folder: Path, output: Output) -> Path:
    """Where an output is saved: its file name (never a path that leaves the folder)."""
    name = Path(output.file_info.filename).name or f"{output.node_id}.bin"
    return folder / name


class SseParser:
    """Server-Sent Events, fed line by line; comments (heartbeats) are skipped."""

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}

    def feed(self, line: str) -> StreamEvent | None:
        if line:
            if not line.startswith(":"):
                name, _, value = line.partition(":")
                self._fields[name] = value.removeprefix(" ")
            return None
        fields, self._fields = self._fields, {}
        if "id" not in fields or "data" not in fields:
            return None
        return StreamEvent(id=int(fields["id"]), event=fields.get("event", "message"),
                           data=json.loads(fields["data"]))


def progress_of(event: StreamEvent, on_progress: ProgressCallback | None) -> None:
    if on_progress is not None and event.event == "progress":
        on_progress(Progress.model_validate(event.data))


def results_or_none(response: httpx.Response) -> Results | None:
    """GET …/results: None while the execution has not finished (202)."""
    return None if response.status_code == 202 else decode(response, Results)


def stream_headers(last_event_id: int) -> dict[str, str]:
    return {"Last-Event-ID": str(last_event_id)} if last_event_id else {}


def stream_timeout(timeout: float) -> httpx.Timeout:
    """Heartbeats come every 15 s: a minute of silence means a dead connection."""
    return httpx.Timeout(timeout, read=max(60.0, timeout))


def client_config(base_url: str | None, api_key: str | None, timeout: float) -> ClientConfig:
    """Arguments first, then COMFY_SERVERLESS_URL and COMFY_SERVERLESS_API_KEY."""
    return ClientConfig(
        base_url or os.environ.get("COMFY_SERVERLESS_URL", "http://127.0.0.1:8000"),
        api_key or os.environ.get("COMFY_SERVERLESS_API_KEY"), timeout)


def outputs_of(results: Results, intermediate: bool) -> list[Output]:
    return results.results.outputs + (
        results.results.intermediate_outputs if intermediate else [])
