"""Serves outputs on local disk to whoever holds a valid signed URL (no API key needed)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from comfy_serverless.api.bodies.service import FILE
from comfy_serverless.api.deps import ServicesDep
from comfy_serverless.api.schemas import error_responses
from comfy_serverless.errors import ApiError, SignedUrlRefused, StorageError

__all__ = ["router"]

router = APIRouter(tags=["files"])


class OutputFileMissing(ApiError):
    status_code = 404
    error_code = "OUTPUT_NOT_FOUND"


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
    if not path.is_file():
        raise OutputFileMissing("The output file no longer exists", {"key": key})
    return FileResponse(path, filename=path.name)
