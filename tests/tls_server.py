"""An https server on 127.0.0.1 for input-image tests, with a certificate authority made at
test time (the `cryptography` package) that the service under test is told to trust."""

from __future__ import annotations

import contextlib
import datetime
import http.server
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


@dataclass(frozen=True)
class LocalCertificates:
    ca_bundle: Path
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(folder: Path, names: tuple[str, ...] = ()) -> LocalCertificates:
    """A CA and a server certificate for 127.0.0.1 (and the host `names`, which a test
    resolves to 127.0.0.1 itself) signed by it, as PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("comfy-serverless test CA"))
          .issuer_name(_name("comfy-serverless test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder().subject_name(_name("127.0.0.1"))
              .issuer_name(ca.subject).public_key(server_key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName(
                  [x509.IPAddress(_LOOPBACK), *(x509.DNSName(name) for name in names)]),
                  critical=False)
              .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    files = LocalCertificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    files.ca_bundle.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return files


@dataclass
class ImageServer:
    """Serves registered bodies; `chunked=False` bodies carry a Content-Length."""

    base_url: str = ""
    bodies: dict[str, tuple[bytes, bool]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    stalls: dict[str, float] = field(default_factory=dict)
    # Set when the server stops: a stalled answer then ends at once.
    released: threading.Event = field(default_factory=threading.Event)

    def serve(self, path: str, body: bytes, *, with_length: bool = True,
              stall: float = 0.0) -> str:
        """Serve `body` at `path`; with `stall`, send half of it, then hold the rest back
        for at most that long (until the server stops)."""
        self.bodies[path] = (body, with_length)
        self.stalls[path] = stall
        return self.base_url + path


def _handler(server: ImageServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.requests.append(self.path)
            body, with_length = server.bodies.get(self.path, (b"", True))
            self.send_response(200 if self.path in server.bodies else 404)
            self.send_header("Content-Type", "application/octet-stream")
            if with_length:
                self.send_header("Content-Length", str(len(body)))
            else:
                self.close_connection = True
            self.end_headers()
            stall = server.stalls.get(self.path, 0.0)
            with contextlib.suppress(OSError):
                if stall:
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    server.released.wait(stall)
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    return Handler


@contextlib.contextmanager
def image_server(certificates: LocalCertificates) -> Iterator[ImageServer]:
    state = ImageServer()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates.cert, certificates.key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    state.base_url = f"https://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.released.set()
        httpd.shutdown()
        httpd.server_close()
