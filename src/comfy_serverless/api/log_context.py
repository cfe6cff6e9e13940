"""Requests about one execution (`/v1/workflows/{execution_id}/…`) log with its id."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from comfy_serverless.logs import execution_context

__all__ = ["ExecutionLogContext"]

_EXECUTION_PATH = re.compile(r"^/v1/workflows/(exec_[0-9a-f]+)/")


class ExecutionLogContext:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _EXECUTION_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None:
            await self._app(scope, receive, send)
            return
        with execution_context(match.group(1)):
            await self._app(scope, receive, send)
