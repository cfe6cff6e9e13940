"""A tenant's input images, played hostile (issue #12 item 23): pixel bombs (a few KB that
declare hundreds of megapixels) given inline or served over https, and image servers that
stall, so that one submit would wait for each of them in turn.

Every image server listens on loopback (the session's `https_images`).
"""

from __future__ import annotations

import base64
import io
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from comfy_serverless.errors import WorkflowInvalid
from comfy_serverless.inputs.dimensions import image_dimensions
from comfy_serverless.inputs.fetcher import FetchPolicy, ImageRefused, spool_image
from comfy_serverless.inputs.staging import InputStager
from comfy_serverless.storage.local import LocalStorage
from comfy_serverless.storage.signing import UrlSigner
from comfy_serverless.store.records import NewExecution
from comfy_serverless.webhooks.ssrf import WebhookPolicy
from tests.helpers import load_image_execution
from tests.tls_server import ImageServer, LocalCertificates


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data)))


def png_bomb(side: int) -> bytes:
    """A complete, valid 1-bit grayscale PNG of side x side black pixels: a few KB."""
    row = b"\x00" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data)
            + _png_chunk(b"IEND", b""))


def jpeg_bomb(side: int) -> bytes:
    """A JPEG header that declares side x side pixels, after an EXIF-sized APP1 segment."""
    app1 = b"Exif\x00\x00" + b"\x00" * 3000
    frame = struct.pack(">BHHB", 8, side, side, 1) + b"\x01\x11\x00"
    return (b"\xff\xd8" + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
            + b"\xff\xc0" + struct.pack(">H", len(frame) + 2) + frame + b"\xff\xd9")


def webp_bomb(side: int) -> bytes:
    """An extended (VP8X) WebP whose canvas is side x side pixels."""
    body = b"\x00\x00\x00\x00" + (side - 1).to_bytes(3, "little") * 2
    chunk = b"VP8X" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def _jpeg(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (9, 9, 9)).save(buffer, "JPEG")
    return buffer.getvalue()


def jpeg_two_headers(real: int, fake: int) -> bytes:
    """A real real x real JPEG, with a second start-of-frame header (fake x fake) after the
    first: the first is what a segment walker sees, the last is what Pillow decodes."""
    data = _jpeg(real)
    start = data.index(b"\xff\xc0")
    end = start + 2 + int.from_bytes(data[start + 2:start + 4], "big")
    frame = bytearray(data[start:end])
    frame[5:9] = struct.pack(">HH", fake, fake)
    return data[:end] + bytes(frame) + data[end:]


def apng_bomb(side: int, frames: int) -> bytes:
    """An animated PNG of `frames` frames of side x side 1-bit pixels, each frame within the
    pixel limit, all of them together far beyond it (LoadImage decodes every frame)."""
    row = b"\x00" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    chunks = [_png_chunk(b"IHDR", header), _png_chunk(b"acTL", struct.pack(">II", frames, 0))]
    sequence = 0
    for frame in range(frames):
        control = struct.pack(">IIIIIHHBB", sequence, side, side, 0, 0, 1, 10, 0, 0)
        chunks.append(_png_chunk(b"fcTL", control))
        sequence += 1
        if frame == 0:
            chunks.append(_png_chunk(b"IDAT", data))
        else:
            chunks.append(_png_chunk(b"fdAT", struct.pack(">I", sequence) + data))
            sequence += 1
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks) + _png_chunk(b"IEND", b"")


BOMBS = {"png-13000": png_bomb(13000), "png-30000": png_bomb(30000),
         "jpg-30000": jpeg_bomb(30000), "webp-30000": webp_bomb(30000),
         "jpg-8-then-30000": jpeg_two_headers(8, 30000), "png-4096x4096x8": apng_bomb(4096, 8)}


def _data_uri(data: bytes, kind: str) -> str:
    return f"data:image/{kind};base64,{base64.b64encode(data).decode()}"


def _loading(image: str) -> dict[str, Any]:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": image}},
            "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": "SaveImage",
                  "inputs": {"filename_prefix": "bomb", "images": ["2", 0]}}}


@pytest.mark.parametrize("name", list(BOMBS))
@pytest.mark.parametrize("delivery", ["inline", "https"])
async def test_a_pixel_bomb_is_refused_at_submit(
    tenant_a: httpx.AsyncClient, https_images: ImageServer, name: str, delivery: str
) -> None:
    data, kind = BOMBS[name], name.split("-")[0]
    assert len(data) < 128 * 1024  # the 30000x30000 PNG is 109 KB, as in the issue
    image = (_data_uri(data, kind) if delivery == "inline"
             else https_images.serve(f"/{name}.{kind}", data))
    response = await tenant_a.post("/v1/workflows/execute", json={"workflow": _loading(image)})
    body = response.json()
    assert response.status_code == 400, body
    assert body["error_code"] == "WORKFLOW_VALIDATION_FAILED"
    assert "max_input_pixels" in body["message"], body


@pytest.mark.parametrize(("kind", "options"), [
    ("PNG", {}), ("JPEG", {}), ("JPEG", {"progressive": True}), ("WEBP", {}),
    ("WEBP", {"lossless": True}),
])
def test_dimensions_come_from_the_header(tmp_path: Path, kind: str,
                                         options: dict[str, Any]) -> None:
    path = tmp_path / "image"
    Image.new("RGBA" if kind != "JPEG" else "RGB", (321, 123), (1, 2, 3)).save(
        path, kind, exif=Image.Exif().tobytes() if kind == "JPEG" else b"", **options)
    formats = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
    assert image_dimensions(path, formats[kind]) == (321, 123)


def _frames(kind: str, sizes: list[int]) -> bytes:
    images = [Image.new("RGB", (side, side), (n * 40, 9, 9)) for n, side in enumerate(sizes)]
    buffer = io.BytesIO()
    images[0].save(buffer, kind, save_all=True, append_images=images[1:])
    return buffer.getvalue()


@pytest.mark.parametrize(("name", "data", "kind"), [
    ("a jpg with a second, larger frame header", jpeg_two_headers(8, 200), "jpg"),
    ("an APNG of 3 frames", _frames("PNG", [40, 40, 40]), "png"),
    ("an animated WebP of 3 frames", _frames("WEBP", [40, 40, 40]), "webp"),
    ("an MPO whose second frame is larger", _frames("MPO", [8, 100]), "jpg"),
])
async def test_every_frame_and_the_last_header_count_against_the_pixel_limit(
        tmp_path: Path, name: str, data: bytes, kind: str) -> None:
    policy = FetchPolicy(WebhookPolicy(), 1 << 20, ("png", "jpg", "webp"), max_pixels=64 * 64)
    one_frame = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}[kind]
    small = io.BytesIO()
    Image.new("RGB", (40, 40)).save(small, one_frame)
    assert (await spool_image(small.getvalue(), tmp_path, policy)).format == kind  # one frame fits
    with pytest.raises(ImageRefused) as refused:
        await spool_image(data, tmp_path, policy)
    message = str(refused.value)
    assert "max_input_pixels" in message or "start-of-frame" in message, (name, message)


# --------------------------------------------------------------------------- stalling servers


def _execution(*images: str) -> NewExecution:
    return load_image_execution("exec_s", *images)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(buffer, "PNG")
    return buffer.getvalue()


def _stager(certificates: LocalCertificates, tmp_path: Path, *, timeout: float,
            deadline: float = 60.0, concurrency: int = 4) -> InputStager:
    policy = FetchPolicy(WebhookPolicy(True, ("127.0.0.1/32",)), 1 << 20,
                         ("png", "jpg", "webp"), ca_bundle=certificates.ca_bundle,
                         timeout=timeout, deadline=deadline, concurrency=concurrency)
    return InputStager(policy, LocalStorage(tmp_path / "storage", UrlSigner("s")),
                       tmp_path / "spool")


def _leftovers(tmp_path: Path) -> list[Path]:
    return [path for path in tmp_path.rglob("*") if path.is_file()]


async def test_stalling_servers_are_waited_for_together_not_in_turn(
    https_images: ImageServer, test_certificates: LocalCertificates, tmp_path: Path
) -> None:
    good = https_images.serve("/fine.png", _png())
    stalls = [https_images.serve(f"/stall-{n}.png", _png(), stall=30) for n in range(3)]
    stager = _stager(test_certificates, tmp_path, timeout=1.5)
    started = time.monotonic()
    with pytest.raises(WorkflowInvalid) as refused:
        await stager.stage(_execution(good, *stalls), None)
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"three 1.5 s stalls took {elapsed:.1f}s: fetched one after another"
    assert "more than 1.5s" in str(refused.value.details)
    assert _leftovers(tmp_path) == [], "the good image's copy was kept"


async def test_one_refused_image_stops_the_others_and_leaves_nothing(
    https_images: ImageServer, test_certificates: LocalCertificates, tmp_path: Path
) -> None:
    stalls = [https_images.serve(f"/held-{n}.png", _png(), stall=30) for n in range(2)]
    stager = _stager(test_certificates, tmp_path, timeout=30, deadline=30)
    started = time.monotonic()
    with pytest.raises(WorkflowInvalid) as refused:
        await stager.stage(_execution(*stalls, _data_uri(BOMBS["png-13000"], "png")), None)
    assert time.monotonic() - started < 2.0, "the submit waited for the stalled fetches"
    assert "max_input_pixels" in str(refused.value.details)
    assert _leftovers(tmp_path) == [], "a stopped fetch left its spool file"


async def test_one_deadline_bounds_all_the_fetches_of_a_submit(
    https_images: ImageServer, test_certificates: LocalCertificates, tmp_path: Path
) -> None:
    stalls = [https_images.serve(f"/deadline-{n}.png", _png(), stall=30) for n in range(6)]
    stager = _stager(test_certificates, tmp_path, timeout=30, deadline=1.0, concurrency=2)
    started = time.monotonic()
    with pytest.raises(WorkflowInvalid) as refused:
        await stager.stage(_execution(*stalls), None)
    assert time.monotonic() - started < 2.5
    assert str(refused.value.details).count("input_fetch_deadline") == 6
    assert _leftovers(tmp_path) == [], "a cancelled fetch left its spool file"
