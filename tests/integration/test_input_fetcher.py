"""Input images from https URLs: fetched from a local https server whose certificate the
fetcher trusts through a configured CA bundle; refused for every rule of spec §5."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from comfy_serverless.inputs import fetcher
from comfy_serverless.inputs.fetcher import FetchPolicy, ImageRefused, fetch_image, spool_image
from comfy_serverless.inputs.images import image_inputs, name_problem
from comfy_serverless.webhooks.ssrf import WebhookPolicy
from tests.tls_server import ImageServer, LocalCertificates


def _png(size: tuple[int, int] = (16, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def _policy(certificates: LocalCertificates, *, allow_loopback: bool = True,
            max_bytes: int = 1 << 20, trusted: bool = True) -> FetchPolicy:
    networks = ("127.0.0.1/32",) if allow_loopback else ()
    return FetchPolicy(WebhookPolicy(True, networks), max_bytes, ("png", "jpg", "webp"),
                       timeout=10, ca_bundle=certificates.ca_bundle if trusted else None)


async def test_an_https_image_is_fetched_into_the_spool(
    https_images: ImageServer, test_certificates: LocalCertificates, tmp_path: Path
) -> None:
    body = _png()
    url = https_images.serve("/cat.png", body)
    fetched = await fetch_image(url, _policy(test_certificates), tmp_path)
    assert (fetched.format, fetched.size) == ("png", len(body))
    assert fetched.path.read_bytes() == body


async def test_one_tls_context_serves_every_fetch_of_a_policy(
    https_images: ImageServer, test_certificates: LocalCertificates, tmp_path: Path
) -> None:
    policy = _policy(test_certificates)
    context = policy.tls()
    assert policy.tls() is context, "built once, not per fetch"
    for name in ("one", "two"):
        url = https_images.serve(f"/{name}.png", _png())
        assert (await fetch_image(url, policy, tmp_path)).format == "png"
    assert policy.tls() is context


async def test_a_certificate_from_an_untrusted_authority_is_refused(
    https_images: ImageServer, test_certificates: LocalCertificates, tmp_path: Path
) -> None:
    url = https_images.serve("/untrusted.png", _png())
    with pytest.raises(ImageRefused, match="could not be fetched"):
        await fetch_image(url, _policy(test_certificates, trusted=False), tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", [
    "https://10.1.2.3/x.png",  # refused by the validator: private; never contacted
    "https://169.254.169.254/latest/meta-data",  # refused by the validator: link-local
    "https://[::1]/x.png",  # refused by the validator: loopback not allowlisted
])
async def test_internal_addresses_are_refused_without_connecting(
    url: str, test_certificates: LocalCertificates, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_connection(*args: object) -> None:
        raise AssertionError("the fetcher tried to connect to a refused address")

    monkeypatch.setattr(fetcher, "_download", no_connection)
    with pytest.raises(ImageRefused, match="internal address"):
        await fetch_image(url, _policy(test_certificates, allow_loopback=False), tmp_path)
    assert list(tmp_path.iterdir()) == [], "refused before anything was opened"


async def test_loopback_is_refused_unless_allowlisted(
    https_images: ImageServer, test_certificates: LocalCertificates, tmp_path: Path
) -> None:
    url = https_images.serve("/private.png", _png())
    before = len(https_images.requests)
    with pytest.raises(ImageRefused, match="internal address"):
        await fetch_image(url, _policy(test_certificates, allow_loopback=False), tmp_path)
    assert len(https_images.requests) == before, "no request reached the server"


async def test_plain_http_is_refused(test_certificates: LocalCertificates, tmp_path: Path
                                     ) -> None:
    with pytest.raises(ImageRefused, match="https"):
        await fetch_image("http://127.0.0.1:9/x.png", _policy(test_certificates), tmp_path)


@pytest.mark.parametrize("with_length", [True, False])
async def test_an_oversized_image_stops_the_download(
    https_images: ImageServer, test_certificates: LocalCertificates, tmp_path: Path,
    with_length: bool
) -> None:
    big = _png() + b"\0" * (2 << 20)
    url = https_images.serve(f"/big-{with_length}.png", big, with_length=with_length)
    with pytest.raises(ImageRefused, match=r"larger than|more than"):
        await fetch_image(url, _policy(test_certificates, max_bytes=1 << 20), tmp_path)
    assert list(tmp_path.iterdir()) == [], "the partial download is removed"


async def test_wrong_magic_bytes_and_missing_files_are_refused(
    https_images: ImageServer, test_certificates: LocalCertificates, tmp_path: Path
) -> None:
    url = https_images.serve("/fake.png", b"GIF89a" + b"\0" * 100)
    with pytest.raises(ImageRefused, match="magic bytes"):
        await fetch_image(url, _policy(test_certificates), tmp_path)
    with pytest.raises(ImageRefused, match="404"):
        await fetch_image(https_images.base_url + "/missing.png", _policy(test_certificates),
                          tmp_path)


async def test_a_stalling_server_is_given_up_on(
    https_images: ImageServer, test_certificates: LocalCertificates, tmp_path: Path
) -> None:
    url = https_images.serve("/slow.png", _png(), stall=3)
    policy = _policy(test_certificates)
    quick = FetchPolicy(policy.destinations, policy.max_bytes, policy.formats, timeout=0.5,
                        ca_bundle=policy.ca_bundle)
    with pytest.raises(ImageRefused, match=r"more than 0\.5s"):
        await fetch_image(url, quick, tmp_path)
    assert list(tmp_path.iterdir()) == []


async def test_inline_bytes_are_checked_the_same_way(test_certificates: LocalCertificates,
                                                     tmp_path: Path) -> None:
    webp = io.BytesIO()
    Image.new("RGB", (4, 4)).save(webp, "WEBP")
    assert (await spool_image(webp.getvalue(), tmp_path, _policy(test_certificates))
            ).format == "webp"
    with pytest.raises(ImageRefused):
        await spool_image(b"RIFF\0\0\0\0WAVEfmt ", tmp_path, _policy(test_certificates))


@pytest.mark.parametrize(("name", "refused"), [
    ("cat.png", False), ("sub/cat.png", False), ("../secret.png", True),
    ("/etc/passwd", True), ("a/../../b.png", True), ("C:\\x.png", True),
    ("..\\x.png", True), ("", True),
])
def test_path_traversal_in_image_names_is_refused(name: str, refused: bool) -> None:
    assert (name_problem(name) is not None) is refused


def test_image_inputs_are_found_without_a_catalog() -> None:
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "https://x/y.png"}},
             "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "https://x/y.png"}}}
    found = list(image_inputs(graph, None))
    assert [(i.node_id, i.name, i.kind) for i in found] == [("1", "image", "url")]
