"""Which inputs of a workflow are input images, and what each value is: an https URL, inline
base64 data (a `data:` URI), or the name of a file in ComfyUI's input folder."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from comfy_serverless.validation.catalog import NodeCatalog
from comfy_serverless.validation.files import is_image_loader, spelling_of_reference_problem
from comfy_serverless.validation.workflow import Graph

__all__ = ["ImageInput", "image_inputs", "name_problem"]

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
    node = catalog.get(class_type) if catalog is not None else None
    return is_image_loader(class_type, name, node.inputs.get(name) if node else None)


def image_inputs(graph: Graph, catalog: NodeCatalog | None) -> Iterator[ImageInput]:
    """Every literal text value of an image input (LoadImage's `image`, and any input the
    catalog marks `image_upload`)."""
    for node_id, node in graph.items():
        for name, value in node["inputs"].items():
            if isinstance(value, str) and _is_image_input(node["class_type"], name, catalog):
                yield ImageInput(node_id, name, value)


def name_problem(value: str) -> str | None:
    """Why a file name can never be read for an execution (an annotation, a staged or
    traversing path; see validation/files.py), or None. Whether it is published is the
    validator's check."""
    return spelling_of_reference_problem(value)
