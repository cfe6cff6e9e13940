"""output_config format conversions, checked by decoding the files written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from comfy_serverless.store.options import OutputOptions
from comfy_serverless.worker.conversion import ImageFormatting, convert_image


def _comfyui_png(path: Path, size: tuple[int, int] = (48, 32)) -> Path:
    """A PNG as ComfyUI's SaveImage writes it: RGB, with prompt and workflow text chunks."""
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", '{"3": {"class_type": "SaveImage"}}')
    info.add_text("workflow", '{"nodes": []}')
    Image.new("RGB", size, (200, 30, 90)).save(path, "PNG", pnginfo=info)
    return path


def _formatting(**config: Any) -> ImageFormatting:
    return ImageFormatting.from_output(OutputOptions(**config), keep_metadata=True)


@pytest.mark.parametrize(("config", "expected_format", "extension"), [
    ({"format": "jpeg", "quality": 80}, "JPEG", ".jpg"),
    ({"format": "jpg"}, "JPEG", ".jpg"),
    ({"format": "webp", "quality": 70}, "WEBP", ".webp"),
    ({"format": "webp", "compression": "lossless"}, "WEBP", ".webp"),
    ({"format": "jpeg", "compression": "lossless"}, "PNG", ".png"),
])
def test_conversions_write_the_asked_format_at_the_same_size(
    tmp_path: Path, config: dict[str, object], expected_format: str, extension: str
) -> None:
    source = _comfyui_png(tmp_path / "in.png")
    formatting = _formatting(**config)
    target = tmp_path / f"out{formatting.extension}"
    converted = convert_image(source, target, formatting)

    assert converted is (expected_format != "PNG")
    written = target if converted else source
    assert formatting.extension == extension
    with Image.open(written) as image:
        assert image.format == expected_format
        assert image.size == (48, 32)


def test_lossless_webp_keeps_every_pixel(tmp_path: Path) -> None:
    source = tmp_path / "noise.png"
    Image.effect_noise((40, 40), 64).convert("RGB").save(source)
    target = tmp_path / "out.webp"
    assert convert_image(source, target, _formatting(format="webp", compression="lossless"))
    with Image.open(source) as original, Image.open(target) as lossless:
        assert lossless.format == "WEBP"
        assert lossless.convert("RGB").tobytes() == original.tobytes()


def test_lossy_quality_changes_the_size(tmp_path: Path) -> None:
    source = tmp_path / "noise.png"
    Image.effect_noise((64, 64), 64).convert("RGB").save(source)
    low, high = tmp_path / "low.jpg", tmp_path / "high.jpg"
    convert_image(source, low, _formatting(format="jpeg", quality=10))
    convert_image(source, high, _formatting(format="jpeg", quality=95))
    assert low.stat().st_size < high.stat().st_size


def test_png_keeps_workflow_metadata_unless_told_not_to(tmp_path: Path) -> None:
    source = _comfyui_png(tmp_path / "in.png")
    keep = ImageFormatting.from_output(OutputOptions("png"), keep_metadata=True)
    assert not convert_image(source, tmp_path / "kept.png", keep), "nothing to change"

    strip = ImageFormatting.from_output(OutputOptions("png"), keep_metadata=False)
    assert convert_image(source, tmp_path / "stripped.png", strip)
    with Image.open(tmp_path / "stripped.png") as image:
        assert image.format == "PNG"
        assert image.size == (48, 32)
        assert "prompt" not in image.info
        assert "workflow" not in image.info


def test_lossless_png_from_webp_keeps_nothing_it_should_not(tmp_path: Path) -> None:
    source = tmp_path / "in.webp"
    Image.new("RGBA", (20, 10), (1, 2, 3, 128)).save(source, "WEBP", lossless=True)
    target = tmp_path / "out.png"
    assert convert_image(source, target, _formatting(format="png"))
    with Image.open(target) as image:
        assert (image.format, image.size, image.mode) == ("PNG", (20, 10), "RGBA")


def test_animations_are_left_alone(tmp_path: Path) -> None:
    source = tmp_path / "anim.webp"
    frames = [Image.new("RGB", (8, 8), (i * 40, 0, 0)) for i in range(3)]
    frames[0].save(source, "WEBP", save_all=True, append_images=frames[1:])
    assert not convert_image(source, tmp_path / "out.jpg", _formatting(format="jpeg"))


@pytest.mark.parametrize(("config", "keep_metadata", "file_format", "may_convert"), [
    ({"format": "png"}, True, "PNG", False),    # the common case: kept as ComfyUI wrote it
    ({"format": "png"}, False, "PNG", True),    # its text chunks may have to go
    ({"format": "webp"}, True, "WEBP", False),
    ({"format": "jpeg"}, True, "PNG", True),
    ({"format": "png"}, True, None, True),      # unknown: the converter decides
])
def test_only_a_file_that_may_change_is_opened_for_conversion(
        config: dict[str, Any], keep_metadata: bool, file_format: str | None,
        may_convert: bool) -> None:
    formatting = ImageFormatting.from_output(OutputOptions(**config),
                                             keep_metadata=keep_metadata)
    assert formatting.may_convert(file_format) is may_convert


def test_a_file_that_may_not_convert_is_one_convert_image_leaves_alone(tmp_path: Path) -> None:
    source = _comfyui_png(tmp_path / "in.png")
    formatting = _formatting(format="png")
    assert not formatting.may_convert("PNG")
    assert convert_image(source, tmp_path / "out.png", formatting) is False
