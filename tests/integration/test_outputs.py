"""Outputs and input images end to end, on real ComfyUI: S3 (moto's server on loopback),
format conversions decoded from the stored files, every output kind, retention, and input
images from an https URL (a local server with a test CA) and from base64 data."""

from __future__ import annotations

import base64
import io
import random
import sqlite3
from typing import Any

import httpx
import pytest
from PIL import Image
from PIL.WebPImagePlugin import WebPImageFile

from comfy_serverless.testing import LocalService
from comfy_serverless.testing_s3 import S3Server
from tests.conftest import SERVICE_BUCKET
from tests.helpers import submit, wait_for, wait_until_finished
from tests.tls_server import ImageServer
from workloads.workflows import inverted_image

pytestmark = pytest.mark.comfyui


def _color() -> int:
    """A fresh colour, so that ComfyUI's cache never answers for the workflow."""
    return random.randrange(1 << 24)


async def _results(api: httpx.AsyncClient, workflow: dict[str, Any], **extra: Any
                   ) -> list[dict[str, Any]]:
    execution_id = await submit(api, workflow, **extra)
    final = await wait_until_finished(api, execution_id)
    assert final["status"] == "completed", final
    response = await api.get(f"/v1/workflows/{execution_id}/results")
    assert response.status_code == 200, response.text
    outputs: list[dict[str, Any]] = response.json()["results"]["outputs"]
    return outputs


async def _download(url: str) -> bytes:
    async with httpx.AsyncClient() as browser:
        response = await browser.get(url)
    assert response.status_code == 200, response.text
    return response.content


def _decoded(data: bytes) -> tuple[str | None, tuple[int, int]]:
    with Image.open(io.BytesIO(data)) as image:
        return image.format, image.size


def _png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (250, 0, 0)).save(buffer, "PNG")
    return buffer.getvalue()


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "error"
    assert isinstance(body["message"], str)
    assert isinstance(body["details"], dict)
    return body


# --------------------------------------------------------------------------- storage


async def test_s3_outputs_follow_the_path_template_and_download_presigned(
    api: httpx.AsyncClient, s3_server: S3Server
) -> None:
    storage = {"provider": "s3", "path": "renders/{execution_id}/final/"}
    execution_id = await submit(api, inverted_image(_color(), size=40),
                                output_config={"storage": storage})
    await wait_until_finished(api, execution_id)
    body = (await api.get(f"/v1/workflows/{execution_id}/results")).json()
    [output] = body["results"]["outputs"]

    assert output["storage"]["provider"] == "s3"
    assert output["storage"]["bucket"] == SERVICE_BUCKET
    filename = output["file_info"]["filename"]
    assert output["storage"]["key"] == f"renders/{execution_id}/final/{filename}"
    assert output["storage"]["url"].startswith(s3_server.endpoint_url)
    assert "X-Amz-Signature=" in output["storage"]["url"]
    assert _decoded(await _download(output["storage"]["url"])) == ("PNG", (40, 40))


async def test_public_s3_outputs_get_a_plain_object_url(
    api: httpx.AsyncClient, s3_server: S3Server
) -> None:
    [output] = await _results(api, inverted_image(_color()), output_config={
        "storage": {"provider": "s3", "public_access": True}})
    key = output["storage"]["key"]
    assert output["storage"]["url"] == f"{s3_server.endpoint_url}/{SERVICE_BUCKET}/{key}"
    assert output["storage"]["expires_at"] is None


@pytest.mark.parametrize(("output_config", "expected_format"), [
    ({"format": "jpeg", "quality": 80}, "JPEG"),
    ({"format": "webp", "quality": 60}, "WEBP"),
    ({"format": "webp", "compression": "lossless"}, "WEBP"),
    ({"format": "jpeg", "compression": "lossless"}, "PNG"),
])
async def test_conversions_are_checked_by_decoding_the_stored_file(
    api: httpx.AsyncClient, output_config: dict[str, Any], expected_format: str
) -> None:
    [output] = await _results(api, inverted_image(_color(), size=48),
                              output_config=output_config)
    data = await _download(output["storage"]["url"])
    assert _decoded(data) == (expected_format, (48, 48))
    assert output["file_info"]["format"] == expected_format
    assert output["file_info"]["dimensions"] == "48x48"
    assert output["file_info"]["size_bytes"] == len(data)
    if output_config.get("compression") == "lossless":
        with Image.open(io.BytesIO(data)) as image:
            colours = image.convert("RGB").getcolors()
        assert colours is not None
        assert len(colours) == 1, "an inverted solid colour stays one exact colour"


async def test_every_output_kind_is_stored_with_its_type(api: httpx.AsyncClient) -> None:
    color = _color()
    workflow = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": color}},
        "7": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "8": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["7", 0]}},
        "2": {"class_type": "SaveAnimatedWEBP", "inputs": {
            "images": ["8", 0], "filename_prefix": "anim", "fps": 6.0, "lossless": True,
            "quality": 80, "method": "default"}},
        "3": {"class_type": "EmptyAudio",
              "inputs": {"duration": 0.5, "sample_rate": 8000, "channels": 1}},
        "4": {"class_type": "SaveAudio", "inputs": {"audio": ["3", 0],
                                                   "filename_prefix": f"sound{color}"}},
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["6", 0]}},
        "6": {"class_type": "PrimitiveString", "inputs": {"value": f"colour {color}"}},
    }
    outputs = {o["node_id"]: o for o in await _results(api, workflow)}

    assert outputs["2"]["output_type"] == "VIDEO"
    assert outputs["2"]["file_info"]["content_type"] == "image/webp"
    with Image.open(io.BytesIO(await _download(outputs["2"]["storage"]["url"]))) as animation:
        assert isinstance(animation, WebPImageFile)
        assert animation.n_frames == 2
    assert outputs["4"]["output_type"] == "AUDIO"
    assert outputs["4"]["file_info"]["content_type"] == "audio/flac"
    assert (await _download(outputs["4"]["storage"]["url"])).startswith(b"fLaC")
    assert outputs["5"]["output_type"] == "TEXT"
    assert outputs["5"]["file_info"]["content_type"].startswith("text/plain")
    assert await _download(outputs["5"]["storage"]["url"]) == f"colour {color}".encode()


async def test_base64_results_are_capped_and_carry_the_data(api: httpx.AsyncClient) -> None:
    execution_id = await submit(api, inverted_image(_color(), size=24))
    await wait_until_finished(api, execution_id)
    response = await api.get(f"/v1/workflows/{execution_id}/results",
                             params={"download_format": "base64", "include_metadata": "true"})
    [output] = response.json()["results"]["outputs"]
    assert _decoded(base64.b64decode(output["data"])) == ("PNG", (24, 24))
    assert response.json()["results"]["metadata"]["total_outputs"] == 1


async def test_expired_outputs_are_deleted_and_their_results_say_so(
    api: httpx.AsyncClient, service: LocalService
) -> None:
    execution_id = await submit(api, inverted_image(_color()), output_config={
        "storage": {"retention_days": 1}})
    await wait_until_finished(api, execution_id)
    [output] = (await api.get(f"/v1/workflows/{execution_id}/results")).json()[
        "results"]["outputs"]
    stored = service.data_dir / "storage" / output["storage"]["key"]
    assert stored.is_file()

    # Two days pass: the output's expiry is moved into the past.
    with sqlite3.connect(service.data_dir / "comfy-serverless.db") as database:
        database.execute("UPDATE outputs SET expires_at = expires_at - 2 * 86400 "
                         "WHERE execution_id = ?", (execution_id,))

    async def gone() -> httpx.Response | None:
        response = await api.get(f"/v1/workflows/{execution_id}/results")
        return response if response.status_code == 410 else None

    response = await wait_for(gone, timeout=30, interval=0.2, what="the cleaner")
    body = _error(response, 410)
    assert body["error_code"] == "OUTPUTS_EXPIRED"
    assert body["details"]["retention_days"] == 1
    assert not stored.exists()


# --------------------------------------------------------------------------- input images


def _load_and_invert(image: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "loaded",
                                                   "images": ["2", 0]}},
    }


async def test_load_image_from_an_https_url(
    api: httpx.AsyncClient, https_images: ImageServer, service: LocalService
) -> None:
    width = random.randrange(8, 64)
    url = https_images.serve(f"/input-{width}.png", _png((width, 12)))
    execution_id = await submit(api, _load_and_invert(url))
    status = await wait_until_finished(api, execution_id)
    assert status["status"] == "completed", status
    [output] = (await api.get(f"/v1/workflows/{execution_id}/results")).json()[
        "results"]["outputs"]
    staged = service.data_dir / "storage" / "outputs" / execution_id / "inputs"
    assert not any(staged.glob("*")), "the staged copy is dropped once the execution ends"
    with Image.open(io.BytesIO(await _download(output["storage"]["url"]))) as image:
        assert image.size == (width, 12)
        red, green, blue = image.convert("RGB").getpixel((0, 0))  # type: ignore[misc]
        assert (red <= 6, green, blue) == (True, 255, 255), "red (250, 0, 0) inverted"


async def test_load_image_from_base64_data_through_an_override(api: httpx.AsyncClient) -> None:
    width = random.randrange(8, 64)
    data = "data:image/png;base64," + base64.b64encode(_png((width, 20))).decode()
    [output] = await _results(api, _load_and_invert("example.png"),
                              input_overrides={"1.image": data})
    assert output["file_info"]["dimensions"] == f"{width}x20"


async def test_bad_input_images_get_400_in_the_spec_shape(
    api: httpx.AsyncClient, https_images: ImageServer
) -> None:
    oversized = https_images.serve("/huge.png", _png((4, 4)) + b"\0" * (51 << 20))
    fake = https_images.serve("/fake.png", b"GIF89a" + b"\0" * 64)
    fake_inline = "data:image/png;base64," + base64.b64encode(b"GIF89a" + b"\0" * 64).decode()
    for image in (oversized, fake, fake_inline, "http://127.0.0.1:9/x.png",
                  "../../etc/passwd"):
        response = await api.post("/v1/workflows/execute",
                                  json={"workflow": _load_and_invert(image)})
        body = _error(response, 400)
        assert body["error_code"] == "WORKFLOW_VALIDATION_FAILED", image
        [problem] = body["details"]["validation_errors"]
        assert problem["node_id"] == "1"
