"""The asynchronous client (`AsyncClient`), the twin of `Client` in client.py."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from comfy_serverless_client._core import (
    ProgressCallback,
    RetryPolicy,
    SseParser,
    client_config,
    decode,
    fail,
    output_path,
    outputs_of,
    progress_of,
    results_or_none,
    stream_headers,
    stream_timeout,
    submit_body,
)
from comfy_serverless_client.errors import TransportError
from comfy_serverless_client.models import (
    Accepted,
    Cancelled,
    ExecutionStatus,
    Results,
    StreamEvent,
)

__all__ = ["AsyncClient"]

_WORKFLOWS = "/v1/workflows"


class AsyncClient:
    """`AsyncClient(url, api_key)`; both default to COMFY_SERVERLESS_URL and
    COMFY_SERVERLESS_API_KEY. Use it in an `async with` block, or await aclose()."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 timeout: float = 30.0, retry: RetryPolicy | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = client_config(base_url, api_key, timeout)
        self._retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(base_url=self.config.base_url, headers=self.config.headers(),
                                  timeout=timeout, transport=transport)
        # Output URLs are signed: they are fetched without the API key.
        self._downloads = httpx.AsyncClient(timeout=timeout, transport=transport,
                                       follow_redirects=True)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._downloads.aclose()

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        request = self._http.build_request(method, path, **kwargs)
        for attempt in itertools.count(1):
            response: httpx.Response | None = None
            try:
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                if (delay := self._retry.delay(attempt, request, None)) is None:
                    raise TransportError(f"{method} {path}: {exc}") from exc
            else:
                if (delay := self._retry.delay(attempt, request, response)) is None:
                    return response
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def submit(self, workflow: Mapping[str, Any], overrides: Mapping[str, Any] | None = None,
               *, idempotency_key: str | None = None, **options: Any) -> Accepted:
        """Queue a workflow (a graph, or a whole request body); `options` are the request's
        other fields (execution_config, output_config, notification_config …)."""
        body, headers = submit_body(workflow, overrides, options, idempotency_key)
        return decode(await self._send("POST", f"{_WORKFLOWS}/execute", json=body, headers=headers),
                      Accepted)

    async def submit_and_wait(self, workflow: Mapping[str, Any],
                        overrides: Mapping[str, Any] | None = None, *, wait: int = 60,
                        **options: Any) -> Results | Accepted:
        """The sync mode (`Prefer: wait=N`): the results if it ends within `wait` s."""
        body, headers = submit_body(workflow, overrides, options, None)
        response = await self._send("POST", f"{_WORKFLOWS}/execute", json=body,
                              headers={**headers, "Prefer": f"wait={wait}"},
                              timeout=self.config.timeout + wait)
        return decode(response, Accepted) if response.status_code == 202 else decode(
            response, Results)

    async def status(self, execution_id: str) -> ExecutionStatus:
        response = await self._send("GET", f"{_WORKFLOWS}/{execution_id}/status")
        return decode(response, ExecutionStatus)

    async def cancel(self, execution_id: str) -> Cancelled:
        return decode(await self._send("DELETE", f"{_WORKFLOWS}/{execution_id}/cancel"), Cancelled)

    async def results(self, execution_id: str, *, wait: float = 0) -> Results | None:
        """The results (None while it runs; `wait` holds the request up to 60 s). A failed
        or cancelled execution raises ExecutionFailed."""
        return results_or_none(await self._send(
            "GET", f"{_WORKFLOWS}/{execution_id}/results", params={"wait": wait},
            timeout=self.config.timeout + wait))

    async def events(self, execution_id: str, *, last_event_id: int = 0
                     ) -> AsyncIterator[StreamEvent]:
        """The execution's events until its `end`, reconnecting with Last-Event-ID when the
        connection drops: every event once, in order."""
        failures = 0  # in a row: an event received starts the count again
        while True:
            try:
                async for event in self._event_connection(execution_id, last_event_id):
                    yield event
                    last_event_id, failures = event.id, 0
                    if event.event == "end":
                        return
                return  # 204: the stream had already ended
            except httpx.TransportError as exc:
                failures += 1
                request = self._http.build_request("GET", f"{_WORKFLOWS}/{execution_id}/events")
                if (delay := self._retry.delay(failures, request, None)) is None:
                    raise TransportError(f"event stream of {execution_id}: {exc}") from exc
                await asyncio.sleep(delay)

    async def _event_connection(self, execution_id: str, last_event_id: int
                                ) -> AsyncIterator[StreamEvent]:
        async with self._http.stream("GET", f"{_WORKFLOWS}/{execution_id}/events",
                               headers=stream_headers(last_event_id),
                               timeout=stream_timeout(self.config.timeout)) as response:
            if response.status_code == 204:
                return
            if response.status_code != 200:
                await response.aread()
                fail(response)
            parser = SseParser()
            async for line in response.aiter_lines():
                if (event := parser.feed(line)) is not None:
                    yield event
        raise httpx.ReadError("the stream closed before its end event")

    async def run(self, workflow: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, *,
            on_progress: ProgressCallback | None = None, **options: Any) -> Results:
        """Submit, follow the events (calling `on_progress` with each Progress), and return
        the results; a failed or cancelled execution raises ExecutionFailed."""
        accepted = await self.submit(workflow, overrides, **options)
        async for event in self.events(accepted.execution_id):
            progress_of(event, on_progress)
        results = await self.results(accepted.execution_id)
        assert results is not None, "the stream ended before the execution"
        return results

    async def download(self, results: Results, folder: str | Path, *,
                 intermediate: bool = False) -> list[Path]:
        """Save the outputs (and previews, when asked) in `folder`, streamed to disk."""
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        saved = []
        for output in outputs_of(results, intermediate):
            path = output_path(target, output)
            async with self._downloads.stream("GET", output.storage.url) as response:
                if response.status_code != 200:
                    await response.aread()
                    fail(response)
                with path.open("wb") as file:
                    async for chunk in response.aiter_bytes():
                        file.write(chunk)
            saved.append(path)
        return saved
