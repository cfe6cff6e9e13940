"""Workflows that run on the CPU with no downloads, for the tests and the benches.

`tiny_sd15` loads the random-weight checkpoint that
`comfy-serverless engine install --tiny-checkpoint` writes; `inverted_image` needs none.
"""

from __future__ import annotations

from typing import Any

TINY_CHECKPOINT = "tiny-sd15.safetensors"


def tiny_sd15(seed: int, *, steps: int = 20, size: int = 64) -> dict[str, Any]:
    """Real diffusion with random weights: CheckpointLoader → KSampler → VAEDecode → SaveImage."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": TINY_CHECKPOINT}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage",
              "inputs": {"width": size, "height": size, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": "euler",
            "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0],
            "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "tiny", "images": ["8", 0]}},
    }


def inverted_image(color: int, *, size: int = 32) -> dict[str, Any]:
    """Weight-free and fast: EmptyImage → ImageInvert → SaveImage.

    Vary `color` to dodge ComfyUI's cache.
    """
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": size, "height": size, "batch_size": 1, "color": color}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "inv", "images": ["2", 0]}},
    }
