"""Which inputs of a workflow are input images, and what each value is: an https URL, inline
base64 data (a `data:` URI), or the name of a file in ComfyUI's input folder."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import Literal

from comfy_serverless.validation.catalog import NodeCatalog
from comfy_serverless.validation.workflow import Graph

__all__ = ["ImageInput", "image_inputs", "name_problem"]

# Image inputs known without a catalog (before any worker has published one).
_KNOWN_LOADERS = {"LoadImage": "image", "LoadImageMask": "image"}
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")
_DATA_URI = re.compile(r"^data:", re.IGNORECASE)

ValueKind = Literal["url", "data", "name"]


@dataclass(frozen=True)
class ImageInput:
    node_id: str
    name: str
    value: str

    @property
    def kind(self) -> ValueKind:
        if _DATA_URI.match(self.value):
            return "data"
        if _URL.match(self.value):
            return "url"
        return "name"


def _is_image_input(class_type: str, name: str, catalog: NodeCatalog | None) -> bool:
    spec = catalog.get(class_type) if catalog is not None else None
    if spec is not None and name in spec.inputs:
        return bool(spec.inputs[name].config.get("image_upload"))
    return _KNOWN_LOADERS.get(class_type) == name


def image_inputs(graph: Graph, catalog: NodeCatalog | None) -> Iterator[ImageInput]:
    """Every literal text value of an image input (LoadImage's `image`, and any input the
    catalog marks `image_upload`)."""
    for node_id, node in graph.items():
        for name, value in node["inputs"].items():
            if isinstance(value, str) and _is_image_input(node["class_type"], name, catalog):
                yield ImageInput(node_id, name, value)


def name_problem(value: str) -> str | None:
    """Why a file name in ComfyUI's input folder is refused (path traversal), or None."""
    if not value or "\x00" in value:
        return "an empty or NUL-bearing file name"
    posix, windows = PurePosixPath(value), PureWindowsPath(value)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or value.startswith("\\"):
        return "an absolute path"
    if ".." in posix.parts or ".." in windows.parts:
        return "a path that leaves the input folder ('..')"
    return None
