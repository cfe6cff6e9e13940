"""ComfyUI's model folders, the model list's categories, and how to load each alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["CATEGORIES", "MODEL_FOLDERS", "Preloader", "category_of", "preloader_for"]

_CATEGORY_BY_FOLDER = {
    "checkpoints": "checkpoint",
    "loras": "lora",
    "controlnet": "controlnet",
    "vae": "vae",
    "text_encoders": "text_encoder",
    "diffusion_models": "diffusion_model",
    "clip_vision": "clip_vision",
    "style_models": "style_model",
    "embeddings": "embedding",
    "diffusers": "diffusers",
    "vae_approx": "vae_approx",
    "gligen": "gligen",
    "upscale_models": "upscale_model",
    "latent_upscale_models": "latent_upscale_model",
    "hypernetworks": "hypernetwork",
    "photomaker": "photomaker",
    "classifiers": "classifier",
    "model_patches": "model_patch",
    "audio_encoders": "audio_encoder",
}

CATEGORIES: frozenset[str] = frozenset(_CATEGORY_BY_FOLDER.values())
# ComfyUI's model folders: where a preload by source may place its file.
MODEL_FOLDERS: frozenset[str] = frozenset(_CATEGORY_BY_FOLDER)


def category_of(folder: str) -> str:
    """The model list's category for a ComfyUI folder (an unknown folder keeps its name)."""
    return _CATEGORY_BY_FOLDER.get(folder, folder)


@dataclass(frozen=True)
class Preloader:
    """The ComfyUI node that loads a model of one folder with nothing but its file name."""

    class_type: str
    input_name: str
    other_inputs: dict[str, Any] = field(default_factory=dict)

    def node(self, filename: str) -> dict[str, Any]:
        return {"class_type": self.class_type,
                "inputs": {self.input_name: filename, **self.other_inputs}}


_PRELOADERS = {
    "checkpoints": Preloader("CheckpointLoaderSimple", "ckpt_name"),
    "vae": Preloader("VAELoader", "vae_name"),
    "controlnet": Preloader("ControlNetLoader", "control_net_name"),
    "upscale_models": Preloader("UpscaleModelLoader", "model_name"),
    "diffusion_models": Preloader("UNETLoader", "unet_name", {"weight_dtype": "default"}),
    "clip_vision": Preloader("CLIPVisionLoader", "clip_name"),
}


def preloader_for(folder: str) -> Preloader | None:
    """None for folders whose models cannot load alone (a LoRA needs a model to patch)."""
    return _PRELOADERS.get(folder)
