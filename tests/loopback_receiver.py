"""An HTTP receiver on loopback for the tests of outbound requests (webhooks)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from comfy_serverless.testing import free_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
