"""An input image's width and height, read from its header without decoding a pixel: a
20 KB PNG can declare 13000x13000 pixels, which costs ComfyUI gigabytes once decoded.

PNG: the IHDR chunk. WebP: the VP8, VP8L or VP8X header. JPEG: the first start-of-frame
segment, found by walking the segments (EXIF and the like come before it).

`image_extent` then reads the file as Pillow (and so ComfyUI's LoadImage) will, still
without decoding: Pillow's final size (a JPEG's last start-of-frame before the scan) and
its frame count (APNG, animated WebP, MPO), since LoadImage decodes every frame.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import ImageFile, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

__all__ = ["ImageExtent", "image_dimensions", "image_extent", "jpeg_frame_headers"]

_JPEG_START_OF_FRAME = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                        0xCF}
_JPEG_NO_LENGTH = {0x01, *range(0xD0, 0xDA)}
_JPEG_MAX_SEGMENTS = 1000
_JPEG_START_OF_SCAN = 0xDA


@dataclass(frozen=True)
class ImageExtent:
    """What decoding the whole file would cost: the largest frame and the pixels of all."""

    width: int
    height: int
    frames: int
    pixels: int


def image_dimensions(path: Path, kind: str) -> tuple[int, int] | None:
    """(width, height) from the header of a png, jpg or webp file; None when unreadable."""
    with path.open("rb") as handle:
        if kind == "png":
            return _png(handle.read(24))
        if kind == "webp":
            return _webp(handle.read(30))
        if kind == "jpg":
            return _jpeg(handle)
    return None


def _png(head: bytes) -> tuple[int, int] | None:
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def _webp(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        return (1 + int.from_bytes(head[24:27], "little"),
                1 + int.from_bytes(head[27:30], "little"))
    if chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(head) >= 30:
        width, height = struct.unpack("<HH", head[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    return None


def _jpeg(handle: BinaryIO) -> tuple[int, int] | None:
    handle.seek(2)
    for _ in range(_JPEG_MAX_SEGMENTS):
        marker = _next_marker(handle)
        if marker is None:
            return None
        if marker in _JPEG_NO_LENGTH:
            continue
        header = handle.read(2)
        if len(header) < 2:
            return None
        length = int.from_bytes(header, "big")
        if marker in _JPEG_START_OF_FRAME:
            frame = handle.read(5)
            if len(frame) < 5:
                return None
            height, width = struct.unpack(">HH", frame[1:5])
            return int(width), int(height)
        handle.seek(length - 2, 1)
    return None


def _next_marker(handle: BinaryIO) -> int | None:
    byte = handle.read(1)
    if byte != b"\xff":
        return None
    while byte == b"\xff":  # fill bytes
        byte = handle.read(1)
    return byte[0] if byte else None


def jpeg_frame_headers(path: Path) -> int:
    """How many start-of-frame segments a JPEG has before its first scan (a valid one has
    exactly one; a decoder keeps the last, so a second one can hide the real size)."""
    count = 0
    with path.open("rb") as handle:
        handle.seek(2)
        for _ in range(_JPEG_MAX_SEGMENTS):
            marker = _next_marker(handle)
            if marker is None or marker == _JPEG_START_OF_SCAN:
                break
            if marker in _JPEG_NO_LENGTH:
                continue
            header = handle.read(2)
            if len(header) < 2:
                break
            count += marker in _JPEG_START_OF_FRAME
            handle.seek(int.from_bytes(header, "big") - 2, 1)
    return count


def image_extent(path: Path, kind: str) -> ImageExtent | None:
    """The extent Pillow reads from the headers (no pixel decoded, and no decompression-bomb
    guard of Pillow's own: the caller's limit decides); None when Pillow cannot read it."""
    with path.open("rb") as handle:
        try:
            image = _open_headers(handle, kind)
            if image is None:
                return None
            frames = int(getattr(image, "n_frames", 1))
            if kind != "jpg" or frames == 1:
                # APNG and animated WebP frames lie within the canvas
                width, height = image.size
                return ImageExtent(width, height, frames, width * height * frames)
            return _multi_picture(image, frames)
        except (OSError, ValueError, SyntaxError, EOFError, struct.error):
            return None


def _open_headers(handle: BinaryIO, kind: str) -> ImageFile.ImageFile | None:
    if kind == "png":
        return PngImagePlugin.PngImageFile(handle)
    if kind == "webp":
        return WebPImagePlugin.WebPImageFile(handle)
    if kind == "jpg":
        opened: ImageFile.ImageFile = JpegImagePlugin.jpeg_factory(handle)
        return opened
    return None


def _multi_picture(image: ImageFile.ImageFile, frames: int) -> ImageExtent:
    """An MPO: each frame is a JPEG of its own size, read by seeking (headers only)."""
    width = height = pixels = 0
    for frame in range(frames):
        image.seek(frame)
        width, height = max(width, image.size[0]), max(height, image.size[1])
        pixels += image.size[0] * image.size[1]
    return ImageExtent(width, height, frames, pixels)
