"""Input images staged at submit: base64 data checked, stored, and the input rewritten."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from comfy_serverless.errors import WorkflowInvalid
from comfy_serverless.inputs.fetcher import FetchPolicy
from comfy_serverless.inputs.staging import InputStager, StagedInput
from comfy_serverless.storage.local import LocalStorage
from comfy_serverless.storage.signing import UrlSigner
from comfy_serverless.store.records import NewExecution
from comfy_serverless.webhooks.ssrf import WebhookPolicy
from tests.helpers import load_image_execution


def _data_uri(fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (6, 4), (1, 2, 3)).save(buffer, fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


def _execution(*images: str) -> NewExecution:
    return load_image_execution("exec_t", *images)


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage", UrlSigner("s"))


@pytest.fixture
def stager(storage: LocalStorage, tmp_path: Path) -> InputStager:
    policy = FetchPolicy(WebhookPolicy(), 1 << 20, ("png", "jpg", "webp"))
    return InputStager(policy, storage, tmp_path / "spool")


async def test_base64_images_are_stored_and_the_inputs_rewritten(
    stager: InputStager, storage: LocalStorage
) -> None:
    staged = await stager.stage(_execution(_data_uri("PNG"), "cat.png", _data_uri("WEBP")),
                                None)
    items = [StagedInput.from_stored(item) for item in staged.options.staged_inputs]
    assert [(i.node_id, i.filename) for i in items] == [
        ("1", "exec_t_0.png"), ("3", "exec_t_1.webp")]
    assert staged.workflow["1"]["inputs"]["image"] == "comfy-serverless/exec_t_0.png"
    assert staged.workflow["2"]["inputs"]["image"] == "cat.png"
    assert items[0].location.key == "outputs/exec_t/inputs/exec_t_0.png"
    with Image.open(storage.path_for(items[1].location.key)) as image:
        assert (image.format, image.size) == ("WEBP", (6, 4))


async def test_a_workflow_without_inline_images_is_unchanged(stager: InputStager) -> None:
    execution = _execution("cat.png")
    assert await stager.stage(execution, None) is execution


async def test_one_bad_image_refuses_the_lot_and_keeps_nothing(
    stager: InputStager, storage: LocalStorage
) -> None:
    not_an_image = "data:image/png;base64," + base64.b64encode(b"hello world!").decode()
    with pytest.raises(WorkflowInvalid) as refused:
        await stager.stage(_execution(_data_uri(), not_an_image, "../x.png"), None)
    problems = refused.value.details["validation_errors"]
    assert [p["node_id"] for p in problems] == ["2", "3"]
    assert not any(storage.root.rglob("*.png")), "the good image's staged copy is removed"
