"""The spec's own example requests (api-spec.md §1.1 and its 400 answer)."""

from __future__ import annotations

from typing import Any

# Spec §1.1: the request's workflow and input_overrides, as printed.
SPEC_WORKFLOW: dict[str, Any] = {"nodes": {
    "1": {"inputs": {"text": "beautiful landscape"}, "class_type": "CLIPTextEncode"},
    "2": {"inputs": {"noise": ["3", 0], "steps": 20}, "class_type": "KSampler"},
}, "metadata": {"title": "Text to Image Generation", "description": "Standard SDXL workflow",
                "version": "1.0"}}
SPEC_OVERRIDES = {"prompt": "A serene mountain landscape at sunset", "steps": 25, "cfg": 7.5,
                  "seed": 12345}
# The graph behind the spec's 400 example: a CLIP wired to a sampler's positive, no model.
SPEC_BROKEN_WORKFLOW: dict[str, Any] = {"nodes": {
    "1": {"class_type": "CLIPLoader", "inputs": {"clip_name": "x.safetensors",
                                                 "type": "stable_diffusion"}},
    "2": {"class_type": "KSampler", "inputs": {"positive": ["1", 0], "steps": 20}},
}}
