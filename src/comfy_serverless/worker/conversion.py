"""`output_config.format`, `quality` and `compression`, applied to still images with Pillow.

    format   compression   stored as
    png      (any)         PNG (lossless; ComfyUI's own file when nothing needs changing)
    jpeg     lossy/unset   JPEG at `quality`
    jpeg     lossless      PNG (JPEG cannot be lossless)
    webp     lossy/unset   WebP at `quality`
    webp     lossless      lossless WebP

ComfyUI embeds the prompt and workflow in PNG text chunks. PNG outputs keep them unless the
deployment says otherwise (`output_keep_workflow_metadata`); JPEG and WebP never carry them.
Conversion is CPU work: callers run it in a thread, off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, PngImagePlugin

from comfy_serverless.store.options import OutputOptions

__all__ = ["ImageFormatting", "convert_image"]

_CONVERTIBLE = frozenset({"PNG", "JPEG", "WEBP"})
_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}


@dataclass(frozen=True)
class ImageFormatting:
    target: str  # a Pillow format name: PNG, JPEG or WEBP
    quality: int = 95
    lossless: bool = False
    keep_metadata: bool = True

    @classmethod
    def from_output(cls, output: OutputOptions, *, keep_metadata: bool) -> ImageFormatting:
        """What the execution's `output_config` asks of its still images."""
        lossless = output.compression == "lossless"
        target = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}[
            output.format.lower()]
        if target == "JPEG" and lossless:
            target = "PNG"
        return cls(target, output.quality, lossless, keep_metadata)

    def may_convert(self, file_format: str | None) -> bool:
        """Whether a file of this format (as Pillow named it) may need converting: not one
        already in the target format whose metadata stays, so that the common case (a PNG
        kept as it is) never opens the image in a thread only to leave it alone."""
        if file_format != self.target:
            return True
        return self.target == "PNG" and not self.keep_metadata

    @property
    def extension(self) -> str:
        return _EXTENSIONS[self.target]

    @property
    def content_type(self) -> str:
        return Image.MIME[self.target]


def convert_image(source: Path, target: Path, formatting: ImageFormatting) -> bool:
    """Write `source` to `target` in the wanted format. False (nothing written) when the
    file is not a still image Pillow can convert, or when it is already what was asked."""
    with Image.open(source) as image:
        if image.format not in _CONVERTIBLE or getattr(image, "n_frames", 1) > 1:
            return False
        if not _needs_conversion(image, formatting):
            return False
        _save(image, target, formatting)
    return True


def _needs_conversion(image: Image.Image, formatting: ImageFormatting) -> bool:
    if image.format != formatting.target:
        return True
    if formatting.target == "PNG":
        return not formatting.keep_metadata and bool(_text_chunks(image))
    return False


def _text_chunks(image: Image.Image) -> dict[str, str]:
    text = getattr(image, "text", None) or {}
    return {str(key): str(value) for key, value in text.items()}


def _save(image: Image.Image, target: Path, formatting: ImageFormatting) -> None:
    match formatting.target:
        case "JPEG":
            image.convert("RGB").save(target, "JPEG", quality=formatting.quality)
        case "WEBP":
            mode = "RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB"
            image.convert(mode).save(target, "WEBP", quality=formatting.quality,
                                     lossless=formatting.lossless)
        case _:
            image.save(target, "PNG", pnginfo=_png_info(image, formatting))


def _png_info(image: Image.Image, formatting: ImageFormatting
              ) -> PngImagePlugin.PngInfo | None:
    if not formatting.keep_metadata:
        return None
    info = PngImagePlugin.PngInfo()
    for key, value in _text_chunks(image).items():
        info.add_text(key, value)
    return info
