"""uvicorn, with the server timeouts that keep slow clients from holding connections.

uvicorn closes a keep-alive connection that stays idle after a response
(`http_keep_alive_timeout`), but nothing else: a new connection that never sends a byte, or
one that trickles its request headers a byte at a time, stays open for ever (each byte
cancels the keep-alive timer). Its protocol here adds a header deadline: a request's headers
must be complete within `http_header_timeout` of the connection's opening, or of the end of
the previous response, or the connection is closed. The body has its own deadline at the
ASGI edge (api/edge.py, `http_body_timeout`), which answers 408.
"""

from __future__ import annotations

import asyncio

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from comfy_serverless.settings import Settings

__all__ = ["guarded_protocol", "serve_app", "uvicorn_config"]


class _HeaderDeadlineProtocol(HttpToolsProtocol):
    header_timeout = 10.0

    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(header_timeout: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, with a deadline for each request's headers."""
    return type("GuardedHttpProtocol", (_HeaderDeadlineProtocol,),
                {"header_timeout": header_timeout})


def uvicorn_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info",
                          access_log=False, log_config=None,
                          http=guarded_protocol(settings.http_header_timeout),
                          timeout_keep_alive=settings.http_keep_alive_timeout)


def serve_app(app: FastAPI, settings: Settings) -> None:
    """One API process."""
    uvicorn.Server(uvicorn_config(app, settings)).run()
