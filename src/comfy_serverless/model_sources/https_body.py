"""Reading an http(s) source's body in a worker thread, through the pinned outbound
download (`webhooks/outbound.py`: the checked address, no proxy, no decompression), one
`chunk_bytes` buffer at a time. A redirect is not followed here: its `Location` goes back
to `redirects.py`, which checks the next hop."""

from __future__ import annotations

import http.client
import re
from typing import TYPE_CHECKING

from comfy_serverless.model_sources.errors import DownloadFailed, ModelUnavailable
from comfy_serverless.model_sources.sources import ModelSource
from comfy_serverless.webhooks.outbound import pinned_download
from comfy_serverless.webhooks.ssrf import CheckedUrl

if TYPE_CHECKING:
    from comfy_serverless.model_sources.partial import PartialFile
    from comfy_serverless.model_sources.transfer import Body, Transport

__all__ = ["read_https"]

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED = re.compile(r"^bytes \*/(\d+)$")
_RETRYABLE_STATUS = frozenset({408, 425, 429})
_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})


def read_https(body: Body, checked: CheckedUrl, credentials: dict[str, str],
               transport: Transport, offset: int) -> str | None:
    """Append the source's bytes from `offset` on to the partial file; or, when the URL
    redirects, leave it untouched and return the `Location`."""
    headers = {**credentials, "Accept": "*/*"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if body.partial.validator is not None:  # a changed file answers 200, the whole
            headers["If-Range"] = body.partial.validator
    try:
        with pinned_download(checked, headers, transport.tls, transport.timeout) as response:
            location = response.getheader("Location")
            if response.status in _REDIRECT_STATUS and location:
                return location
            total = _position(body.source, response, body.partial, offset)
            _copy_body(response, body, transport.chunk_bytes, total)
    except (OSError, http.client.HTTPException) as exc:
        raise DownloadFailed(f"the download of {body.source.display} broke off at "
                             f"{body.partial.size} bytes ({type(exc).__name__})") from exc
    body.check_complete(total)
    return None


def _copy_body(response: http.client.HTTPResponse, body: Body, chunk_bytes: int,
               total: int | None) -> None:
    """The body, read into the partial file's ring of buffers and handed on uncopied."""
    while True:
        buffer = body.partial.buffer(chunk_bytes)
        read = response.readinto(buffer)
        if not read:
            return
        body.take(buffer[:read], total)


def _position(source: ModelSource, response: http.client.HTTPResponse, partial: PartialFile,
              offset: int) -> int | None:
    """Where the body starts and the whole size, from the status and Content-Range."""
    status = response.status
    content_range = response.getheader("Content-Range", "")
    if status == 206:
        match = _CONTENT_RANGE.match(content_range)
        if match is None or int(match[1]) != offset:
            partial.restart()
            raise DownloadFailed(f"{source.display} answered a range that does not continue "
                                 "the partial download; the next try starts over")
        return None if match[3] == "*" else int(match[3])
    if status == 200:  # the whole body: a fresh start, or a resume the server refused
        partial.restart()
        partial.remember(_validator(response))
        length = response.getheader("Content-Length", "")
        return int(length) if length.isdigit() else None
    if status == 416:
        unsatisfied = _UNSATISFIED.match(content_range)
        if unsatisfied is not None and int(unsatisfied[1]) == offset:
            return offset  # the partial file already holds every byte (kept by CacheFull)
        partial.restart()
        raise DownloadFailed(f"{source.display} no longer has the requested range; the next "
                             "try starts over")
    raise _refusal(source, status)


def _validator(response: http.client.HTTPResponse) -> str | None:
    """What `If-Range` can send back: a strong ETag, else Last-Modified."""
    etag = response.getheader("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.getheader("Last-Modified") or None


def _refusal(source: ModelSource, status: int) -> ModelUnavailable:
    if status >= 500 or status in _RETRYABLE_STATUS:
        return DownloadFailed(f"{source.display} answered {status}")
    if 300 <= status < 400:
        return ModelUnavailable(f"{source.display} answered {status}, not a redirect this "
                                "service follows (301, 302, 303, 307 or 308 with a Location)")
    return ModelUnavailable(f"{source.display} answered {status}")
