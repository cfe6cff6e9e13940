"""Serves outputs on local disk to whoever holds a valid signed URL (no API key needed)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from starlette.types import Receive, Scope, Send

from comfy_serverless.api.bodies.service import FILE
from comfy_serverless.api.deps import ServicesDep
from comfy_serverless.api.schemas import error_responses
from comfy_serverless.errors import ApiError, SignedUrlRefused, StorageError

__all__ = ["SMALL_FILE_BYTES", "StoredFileResponse", "router"]

router = APIRouter(tags=["files"])

# A file up to this size is read on the event loop: from the page cache, that takes
# microseconds, less than the four thread hand-offs (stat, open, read, close) of a
# FileResponse. Larger files stream in chunks from a thread, never whole in memory.
SMALL_FILE_BYTES = 256 * 1024


class OutputFileMissing(ApiError):
    status_code = 404
    error_code = "OUTPUT_NOT_FOUND"


class StoredFileResponse(FileResponse):
    """A FileResponse (same headers, ranges, HEAD) for a file already stat'ed, whose whole
    body is sent in one message when it is small and no range is asked for."""

    def __init__(self, path: Path, stat_result: os.stat_result) -> None:
        super().__init__(path, filename=path.name, stat_result=stat_result)
        self._size = stat_result.st_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self._size > SMALL_FILE_BYTES or scope.get("method") != "GET"
                or any(name == b"range" for name, _ in scope.get("headers", ()))):
            await super().__call__(scope, receive, send)
            return
        try:
            body = Path(self.path).read_bytes()
        except OSError:  # gone since its stat: as FileResponse, whose open fails then
            await super().__call__(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


@router.get("/files/{key:path}", response_class=FileResponse,
            responses={**FILE, **error_responses(403)})
async def download(
    key: str,
    services: ServicesDep,
    expires: Annotated[int, Query()] = 0,
    signature: Annotated[str, Query()] = "",
) -> FileResponse:
    services.local_storage.signer.verify(key, expires, signature, time.time())
    try:
        path = services.local_storage.path_for(key)
    except StorageError as exc:
        raise SignedUrlRefused("Invalid file key", {"reason": "invalid_key"}) from exc
    try:
        found = os.stat(path)
    except OSError:
        found = None
    if found is None or not stat.S_ISREG(found.st_mode):
        raise OutputFileMissing("The output file no longer exists", {"key": key})
    return StoredFileResponse(path, found)
