"""The shared input files that the test service's operator publishes: files at the top level
of its ComfyUI's input folder, written before the service starts so that the first catalog
its worker publishes lists them (docs/reference/security.md)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from PIL import Image

# A real image any tenant may load by name.
PUBLISHED_IMAGE = "shared-cat.png"
# A PNG signature and header with no pixels: listed, but ComfyUI fails when it opens it, with
# a message that names its full path (a run-time failure for the scrubbing tests).
PUBLISHED_BROKEN_IMAGE = "shared-broken.png"
# Deleted by the one test that needs ComfyUI to refuse a prompt the catalog allowed.
PUBLISHED_VANISHING_IMAGE = "shared-vanishing.png"


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 60)).save(buffer, "PNG")
    return buffer.getvalue()


def _header_only_png() -> bytes:
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(header)) + b"IHDR" + header + struct.pack(
        ">I", zlib.crc32(b"IHDR" + header))
    return b"\x89PNG\r\n\x1a\n" + chunk


def publish_shared_inputs(data_dir: Path) -> None:
    """Write the published files into the ComfyUI input folder of a service's data dir."""
    input_dir = data_dir / "comfyui" / "input"
    input_dir.mkdir(parents=True, exist_ok=True)
    (input_dir / PUBLISHED_IMAGE).write_bytes(png_bytes())
    (input_dir / PUBLISHED_VANISHING_IMAGE).write_bytes(png_bytes())
    (input_dir / PUBLISHED_BROKEN_IMAGE).write_bytes(_header_only_png())
