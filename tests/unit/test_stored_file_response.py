"""The signed download's response: a small file in one message, with FileResponse's headers;
ranges, and files past SMALL_FILE_BYTES, as FileResponse serves them."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from comfy_serverless.api.routes.files import SMALL_FILE_BYTES, StoredFileResponse


def _client(path: Path, response_class: type[FileResponse]) -> httpx.AsyncClient:
    async def serve(request: Request) -> Response:
        if response_class is StoredFileResponse:
            return StoredFileResponse(path, os.stat(path))
        return FileResponse(path, filename=path.name)

    app = Starlette(routes=[Route("/f", serve)])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def _get(path: Path, response_class: type[FileResponse],
               headers: dict[str, str] | None = None) -> httpx.Response:
    async with _client(path, response_class) as client:
        return await client.get("/f", headers=headers)


async def test_a_small_file_answers_as_a_file_response_does(tmp_path: Path) -> None:
    path = tmp_path / "out.png"
    path.write_bytes(b"\x89PNG small")
    ours, theirs = await _get(path, StoredFileResponse), await _get(path, FileResponse)
    assert (ours.status_code, ours.content) == (200, b"\x89PNG small")
    assert dict(ours.headers) == dict(theirs.headers)


async def test_a_range_of_a_small_file_is_a_partial_answer(tmp_path: Path) -> None:
    path = tmp_path / "out.png"
    path.write_bytes(b"0123456789")
    partial = await _get(path, StoredFileResponse, {"Range": "bytes=2-4"})
    assert (partial.status_code, partial.content) == (206, b"234")


async def test_a_large_file_streams_whole(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = os.urandom(SMALL_FILE_BYTES + 12_345)
    path.write_bytes(data)
    response = await _get(path, StoredFileResponse)
    assert (response.status_code, response.content) == (200, data)
    assert response.headers["content-length"] == str(len(data))
