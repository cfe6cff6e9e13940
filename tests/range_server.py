"""An https server on 127.0.0.1 that serves files with `Range` support, for model-source
tests and `bench.models`: it counts the requests per path, records the headers it got, and
can drop a connection part-way through a body once (a killed download), or redirect. Serving a path
again changes what it serves; with `etag=True` it sends an ETag and honours `If-Range`
(a validator that no longer matches gets the whole body, 200).

Bodies are bytes or a file on disk (streamed in 1 MiB writes, so a large bench file is
never held in memory)."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import re
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.tls_server import LocalCertificates

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_WRITE = 1 << 20


@dataclass
class Served:
    body: bytes | Path
    drop_after: int | None = None  # bytes of the body sent before the first answer ends
    ranges: bool = True  # False: a Range header is ignored (the whole body, 200)
    status: int | None = None  # answer this status with no body instead
    etag: bool = False  # send an ETag and honour If-Range
    location: str = "https://127.0.0.1/elsewhere"  # the Location sent with `status`
    stall_after: int | None = None  # bytes of the body sent before the first answer stalls

    @property
    def tag(self) -> str:
        if isinstance(self.body, Path):
            stat = self.body.stat()
            return f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
        return f'"{hashlib.sha256(self.body).hexdigest()[:16]}"'

    @property
    def size(self) -> int:
        return self.body.stat().st_size if isinstance(self.body, Path) else len(self.body)


@dataclass
class RangeServer:
    base_url: str = ""
    files: dict[str, Served] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    ranges: list[str | None] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    sent: Counter[str] = field(default_factory=Counter)  # body bytes written, per path
    # Set when the server stops: a stalled answer then ends at once.
    released: threading.Event = field(default_factory=threading.Event)

    def serve(self, path: str, body: bytes | Path, *, drop_after: int | None = None,
              ranges: bool = True, status: int | None = None, etag: bool = False,
              stall_after: int | None = None) -> str:
        """Serve `body` at `path`. The first answer may be cut short: closed after
        `drop_after` bytes (a broken connection), or held after `stall_after` bytes until
        `released` is set (by the test, or when the server stops), then sent on."""
        self.files[path] = Served(body, drop_after, ranges, status, etag,
                                  stall_after=stall_after)
        return self.base_url + path

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        """Answer `path` with `status` and `location` (no body)."""
        self.files[path] = Served(b"", status=status, location=location)
        return self.base_url + path


def _slice(served: Served, start: int, end: int) -> Iterator[bytes]:
    if isinstance(served.body, bytes):
        yield served.body[start:end]
        return
    with served.body.open("rb") as handle:
        handle.seek(start)
        left = end - start
        while left > 0 and (chunk := handle.read(min(_WRITE, left))):
            left -= len(chunk)
            yield chunk


def _requested(header: str | None, size: int) -> tuple[int, int] | None:
    """The byte range [start, end) a `Range: bytes=N-[M]` header asks for, or None."""
    match = _RANGE.match(header or "")
    if match is None:
        return None
    start = int(match[1])
    return start, (min(size, int(match[2]) + 1) if match[2] else size)


class _Handler(http.server.BaseHTTPRequestHandler):
    state: RangeServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.state.hits[self.path] += 1
        self.state.ranges.append(self.headers.get("Range"))
        self.state.headers.append(dict(self.headers.items()))
        served = self.state.files.get(self.path)
        if served is None or served.status is not None:
            self.send_response(404 if served is None or served.status is None
                               else served.status)
            self.send_header("Location", "https://127.0.0.1/elsewhere" if served is None
                             else served.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = self._range(served)
        if start is None:
            return
        self._send(served, start, end)

    def _range(self, served: Served) -> tuple[int | None, int]:
        size, wanted = served.size, None
        if served.ranges and self._if_range_holds(served):
            wanted = _requested(self.headers.get("Range"), size)
        if wanted is None:
            self.send_response(200)
            return 0, size
        start, end = wanted
        if start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None, 0
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        return start, end

    def _if_range_holds(self, served: Served) -> bool:
        validator = self.headers.get("If-Range")
        return validator is None or (served.etag and validator == served.tag)

    def _send(self, served: Served, start: int, end: int) -> None:
        if served.etag:
            self.send_header("ETag", served.tag)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        budget, stall = served.drop_after, served.stall_after
        served.drop_after = served.stall_after = None  # only the first answer is cut short
        if budget is not None:
            self.close_connection = True
            end = min(end, start + budget)
        with contextlib.suppress(OSError):
            if stall is not None:
                self._write(served, start, min(end, start + stall))
                self.wfile.flush()
                self.state.released.wait()
                start = min(end, start + stall)
            self._write(served, start, end)
            if budget is not None:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)

    def _write(self, served: Served, start: int, end: int) -> None:
        for chunk in _slice(served, start, end):
            self.wfile.write(chunk)
            self.state.sent[self.path] += len(chunk)

    def log_message(self, format: str, *args: object) -> None:
        return None


@contextlib.contextmanager
def range_server(certificates: LocalCertificates | None) -> Iterator[RangeServer]:
    """Serves https with `certificates`, plain http without."""
    state = RangeServer()
    handler = type("Handler", (_Handler,), {"state": state})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    scheme = "http"
    if certificates is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificates.cert, certificates.key)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    state.base_url = f"{scheme}://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.released.set()
        httpd.shutdown()
        httpd.server_close()


def main() -> None:
    """`python -m tests.range_server CERT_FOLDER URL_PATH FILE`: serve one file (for
    bench.models, in a process of its own), print the base URL, run until terminated."""
    import sys

    from tests.tls_server import make_certificates

    folder, url_path, file = sys.argv[1:4]
    with range_server(make_certificates(Path(folder))) as server:
        server.serve(url_path, Path(file))
        print(server.base_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
