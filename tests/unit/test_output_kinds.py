"""Every kind of output ComfyUI's history reports, with its output_type and content type."""

from __future__ import annotations

from comfy_serverless.worker.output_kinds import (
    content_type_of,
    files_in_history,
    texts_in_history,
)

HISTORY = {
    "9": {"images": [{"filename": "img_00001_.png", "subfolder": "", "type": "output"}]},
    "10": {"images": [{"filename": "anim_00001_.webp", "subfolder": "", "type": "output"}],
           "animated": [True]},
    "11": {"gifs": [{"filename": "clip_00001.mp4", "subfolder": "v", "type": "output"}]},
    "12": {"audio": [{"filename": "sound_00001_.flac", "subfolder": "audio", "type": "output"}]},
    "13": {"text": ["hello", "world"]},
    "14": {"3d": [{"filename": "mesh.glb", "subfolder": "", "type": "output"}]},
    "15": {"images": [{"filename": "preview.png", "subfolder": "", "type": "temp"}]},
}


def test_every_file_kind_is_reported_with_its_output_type_and_content_type() -> None:
    files = {f.filename: f for f in files_in_history(HISTORY)}
    expected = {
        "img_00001_.png": ("IMAGE", "image/png"),
        "anim_00001_.webp": ("VIDEO", "image/webp"),
        "clip_00001.mp4": ("VIDEO", "video/mp4"),
        "sound_00001_.flac": ("AUDIO", "audio/flac"),
        "mesh.glb": ("3D", "model/gltf-binary"),
        "preview.png": ("IMAGE", "image/png"),
    }
    assert {name: (f.output_type, f.content_type) for name, f in files.items()} == expected
    assert files["preview.png"].intermediate
    assert files["clip_00001.mp4"].subfolder == "v"


def test_texts_are_reported_one_by_one() -> None:
    texts = list(texts_in_history(HISTORY))
    assert [(t.node_id, t.output_type, t.index, t.text) for t in texts] == [
        ("13", "TEXT", 0, "hello"), ("13", "TEXT", 1, "world")]


def test_unknown_extensions_are_octet_streams() -> None:
    assert content_type_of("weights.qqzz") == "application/octet-stream"
    assert content_type_of("noextension") == "application/octet-stream"
    assert content_type_of("x.WEBM") == "video/webm"
