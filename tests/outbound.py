"""For the tests of outbound requests: an HTTP receiver on loopback, and an execution whose
webhook event is waiting to be delivered."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from comfy_serverless.auth.keys import issue_key
from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.store.options import ExecutionOptions
from comfy_serverless.store.records import NewExecution
from comfy_serverless.store.store import Store
from comfy_serverless.testing import free_port
from workloads.workflows import inverted_image

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Answer = Callable[[str], str]


def stub_resolver(monkeypatch: pytest.MonkeyPatch, suffix: str, answer: Answer) -> None:
    """Names ending in `suffix` resolve to `answer(name)` (which may block, as a stalling name
    server does), in whatever thread asks; any other name to nothing, so that no test ever
    looks up a real name."""
    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in ("127.0.0.1", "::1"):
            family = socket.AF_INET6 if ":" in name else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (name, int(port or 0)))]
        if not name.removesuffix(".").endswith(suffix):
            raise socket.gaierror(socket.EAI_NONAME, "not a test name")
        address = answer(name)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@contextlib.asynccontextmanager
async def receiver_at(handler: Handler, host: str = "127.0.0.1", port: int | None = None
                      ) -> AsyncIterator[str]:
    """Serve POST /hook with `handler` on a loopback address; yields its URL."""
    port = port or free_port()
    app = web.Application()
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        yield f"http://{host}:{port}/hook"
    finally:
        await runner.cleanup()


async def started_execution(store: Store, webhook_url: str, api_key_id: str | None = None
                            ) -> str:
    """An execution of its own key (or of `api_key_id`), claimed, so that its
    execution.started event is due; its id."""
    if api_key_id is None:
        key = issue_key("secret", "basic").record
        await store.access.create_api_key(key)
        api_key_id = key.id
    execution_id = new_execution_id()
    await store.executions.create_execution(NewExecution(
        id=execution_id, api_key_id=api_key_id, priority=5, workflow=inverted_image(1),
        options=ExecutionOptions(), signature="s", webhook_url=webhook_url, client_id=None,
        submitted_at=time.time(), max_attempts=1, total_nodes=3, webhook_secret=None,
        webhook_max_retries=3))
    assert await store.claims.claim_next("w1", 30) is not None
    return execution_id
