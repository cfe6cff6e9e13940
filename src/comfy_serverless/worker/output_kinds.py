"""What a prompt's history reports: files of every kind (images, videos, audio, anything
else) and text, each with the output_type it is reported with and its content type.

Only files in ComfyUI's `output` and `temp` folders are the prompt's: a node's report is
partly the user's own data (Preview3D copies a literal `camera_info` into it), so a file
reported in `input` (or any other folder) is never collected, and never deleted."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["PROMPT_FOLDERS", "EngineFile", "EngineText", "content_type_of", "files_in_history",
           "texts_in_history"]

# The folders a prompt writes its files in.
PROMPT_FOLDERS = frozenset({"output", "temp"})
# ComfyUI's output keys, and the output_type each one is reported with.
_OUTPUT_TYPES = {"images": "IMAGE", "gifs": "VIDEO", "video": "VIDEO", "videos": "VIDEO",
                 "audio": "AUDIO", "text": "TEXT"}
# Types that mimetypes may not know on every platform.
_CONTENT_TYPES = {".webp": "image/webp", ".webm": "video/webm", ".mp4": "video/mp4",
                  ".gif": "image/gif", ".flac": "audio/flac", ".mp3": "audio/mpeg",
                  ".opus": "audio/ogg", ".ogg": "audio/ogg", ".wav": "audio/wav",
                  ".glb": "model/gltf-binary", ".txt": "text/plain", ".json": "application/json",
                  ".latent": "application/octet-stream",
                  ".safetensors": "application/octet-stream"}


def content_type_of(filename: str) -> str:
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return (_CONTENT_TYPES.get(suffix) or mimetypes.guess_type(filename)[0]
            or "application/octet-stream")


@dataclass(frozen=True)
class EngineFile:
    node_id: str
    output_type: str
    filename: str
    subfolder: str
    folder_type: str
    animated: bool = False

    @property
    def intermediate(self) -> bool:
        return self.folder_type != "output"

    @property
    def content_type(self) -> str:
        return content_type_of(self.filename)


@dataclass(frozen=True)
class EngineText:
    node_id: str
    output_type: str
    index: int
    text: str


def _output_type(key: str, filename: str, animated: bool) -> str:
    content_type = content_type_of(filename)
    if animated or content_type.startswith("video/"):
        return "VIDEO"
    if content_type.startswith("audio/"):
        return "AUDIO"
    return _OUTPUT_TYPES.get(key, key.upper())


def _animated(node_output: dict[str, Any], index: int) -> bool:
    flags = node_output.get("animated")
    if not isinstance(flags, list | tuple) or not flags:
        return False
    return bool(flags[min(index, len(flags) - 1)])


def _node_items(outputs: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str, list[Any]]]:
    for node_id, node_output in outputs.items():
        if isinstance(node_output, dict):
            for key, items in node_output.items():
                if isinstance(items, list):
                    yield str(node_id), node_output, key, items


def files_in_history(outputs: dict[str, Any]) -> Iterator[EngineFile]:
    """Every file in ComfyUI's output or temp folder that a prompt's history lists, in
    node order."""
    for node_id, node_output, key, items in _node_items(outputs):
        for index, item in enumerate(items):
            if (isinstance(item, dict) and isinstance(item.get("filename"), str)
                    and str(item.get("type") or "output") in PROMPT_FOLDERS):
                animated = _animated(node_output, index)
                yield EngineFile(
                    node_id=node_id,
                    output_type=_output_type(key, item["filename"], animated),
                    filename=item["filename"],
                    subfolder=str(item.get("subfolder") or ""),
                    folder_type=str(item.get("type") or "output"),
                    animated=animated,
                )


def texts_in_history(outputs: dict[str, Any]) -> Iterator[EngineText]:
    """Every text a node reported (e.g. PreviewAny's `text`), in node order."""
    for node_id, _, key, items in _node_items(outputs):
        for index, item in enumerate(items):
            if isinstance(item, str):
                yield EngineText(node_id, _OUTPUT_TYPES.get(key, key.upper()), index, item)
