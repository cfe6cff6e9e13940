"""The output collector on local folders: what a finished prompt's history names is stored,
each file under its own key."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.errors import StorageError
from comfy_serverless.storage.base import StoredLocation
from comfy_serverless.storage.local import LocalStorage
from comfy_serverless.storage.signing import UrlSigner
from comfy_serverless.store.options import ExecutionOptions, OutputOptions
from comfy_serverless.worker.outputs import OutputCollector
from tests.helpers import processing_execution


async def test_files_with_one_name_in_two_subfolders_both_survive(tmp_path: Path) -> None:
    engine_output = tmp_path / "engine-output"
    for subfolder, colour in (("a", "red"), ("b", "blue")):
        (engine_output / subfolder).mkdir(parents=True)
        Image.new("RGB", (4, 4), colour).save(engine_output / subfolder / "x_00001_.png")
    storage = LocalStorage(tmp_path / "storage", UrlSigner("s"))
    collector = OutputCollector(ComfyUIClient("http://127.0.0.1:9"), storage,
                                tmp_path / "spool", {"output": engine_output})
    history: dict[str, object] = {"9": {"images": [
        {"filename": "x_00001_.png", "subfolder": "a", "type": "output"},
        {"filename": "x_00001_.png", "subfolder": "b", "type": "output"}]}}

    records = await collector.collect(processing_execution("exec_1"), history)

    keys = [record.storage_key for record in records]
    assert keys == ["outputs/exec_1/a/x_00001_.png", "outputs/exec_1/b/x_00001_.png"]
    colours = []
    for key in keys:
        with Image.open(storage.path_for(key)) as image:
            colours.append(image.convert("RGB").getpixel((0, 0)))
    assert colours == [(255, 0, 0), (0, 0, 255)]


async def test_an_image_past_the_decompression_bomb_limit_is_stored_raw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine_output = tmp_path / "engine-output"
    engine_output.mkdir()
    Image.new("RGB", (64, 64), "red").save(engine_output / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64x64 is now "past twice the limit"
    storage = LocalStorage(tmp_path / "storage", UrlSigner("s"))
    collector = OutputCollector(ComfyUIClient("http://127.0.0.1:9"), storage,
                                tmp_path / "spool", {"output": engine_output})
    execution = processing_execution("exec_2",
                                     ExecutionOptions(output=OutputOptions(format="webp")))
    history: dict[str, object] = {
        "9": {"images": [{"filename": "huge.png", "subfolder": "", "type": "output"}]}}

    [record] = await collector.collect(execution, history)

    assert (record.filename, record.width, record.height) == ("huge.png", None, None)
    assert storage.path_for(record.storage_key).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class _FailsSecondPut(LocalStorage):
    puts = 0

    async def put_file(self, location: StoredLocation, source: Path, content_type: str
                       ) -> StoredLocation:
        self.puts += 1
        if self.puts == 2:
            raise StorageError("injected: disk full")
        return await super().put_file(location, source, content_type)


async def test_a_failed_collection_removes_what_it_had_stored(tmp_path: Path) -> None:
    engine_output = tmp_path / "engine-output"
    engine_output.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (4, 4), "red").save(engine_output / name)
    storage = _FailsSecondPut(tmp_path / "storage", UrlSigner("s"))
    collector = OutputCollector(ComfyUIClient("http://127.0.0.1:9"), storage,
                                tmp_path / "spool", {"output": engine_output})
    history: dict[str, object] = {"9": {"images": [
        {"filename": name, "subfolder": "", "type": "output"} for name in ("a.png", "b.png")]}}

    with pytest.raises(StorageError, match="disk full"):
        await collector.collect(processing_execution("exec_3"), history)
    assert not storage.path_for("outputs/exec_3/a.png").exists()
