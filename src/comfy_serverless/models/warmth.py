"""Which model files a worker's ComfyUI holds now, and the preloaded ones it keeps warm.

ComfyUI's (classic) cache keeps the outputs of every node of the latest prompt, the
unconnected ones included, and drops the rest when the next prompt starts. So:
- after a prompt runs, the models its loader nodes named are warm;
- a preloaded model is *pinned* until its preload expires: its loader node is added,
  unconnected (never executed, so nothing is loaded again), to every prompt this worker
  submits, which keeps the loaded model in ComfyUI's cache across other workflows.

A pinned node must never reach a user's files: ComfyUI writes the prompt into each
output's metadata, and comfy-serverless's hooks inside ComfyUI (engine/comfyui/extension)
leave the pins out of it. So preloads apply only on a ComfyUI that runs the hooks
(`pinning`); elsewhere they are not applied (a supervised ComfyUI always has them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from comfy_serverless.models.categories import preloader_for
from comfy_serverless.store.models import ModelPreload
from comfy_serverless.validation.model_references import required_models

__all__ = ["PRELOAD_NODE", "WarmModels"]

PRELOAD_NODE = "cs_preload"
_PIN_NODE = "cs_warm_"


@dataclass(frozen=True)
class _Pin:
    folder: str
    filename: str
    expires_at: float


class WarmModels:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._last_prompt: frozenset[str] = frozenset()
        self._pins: dict[tuple[str, str], _Pin] = {}
        # Set by the worker: whether its ComfyUI keeps pins out of the users' metadata.
        self.pinning = True

    def current(self) -> frozenset[str]:
        """The model files warm in ComfyUI now: the latest prompt's and the pinned ones."""
        return self._last_prompt | {pin.filename for pin in self._active_pins()}

    def needing_load(self, preloads: Iterable[ModelPreload]) -> list[ModelPreload]:
        """Pin the preloads whose model is warm already; return those that must be loaded."""
        warm, to_load = self.current(), []
        if not self.pinning:
            return []
        for preload in preloads:
            if preload.filename in warm:
                self.pin(preload)
            elif preloader_for(preload.folder) is not None:
                to_load.append(preload)
        return to_load

    def pin(self, preload: ModelPreload) -> None:
        key = (preload.folder, preload.filename)
        known = self._pins.get(key)
        if known is None or known.expires_at < preload.expires_at:
            self._pins[key] = _Pin(preload.folder, preload.filename, preload.expires_at)

    def unpin(self, preload: ModelPreload) -> None:
        self._pins.pop((preload.folder, preload.filename), None)

    def loader_prompt(self, preload: ModelPreload) -> dict[str, Any]:
        """A prompt that loads the model and nothing else (PreviewAny is the output node
        ComfyUI insists on; it only prints the loaded object). The model is pinned from
        now on, so every prompt submitted after this one keeps it."""
        preloader = preloader_for(preload.folder)
        if preloader is None:
            raise ValueError(f"models of {preload.folder} cannot be loaded alone")
        self.pin(preload)
        return self.prompt_for({
            PRELOAD_NODE: preloader.node(preload.filename),
            f"{PRELOAD_NODE}_out": {"class_type": "PreviewAny",
                                    "inputs": {"source": [PRELOAD_NODE, 0]}},
        })

    def prompt_for(self, workflow: dict[str, Any]) -> dict[str, Any]:
        """The prompt to submit for `workflow`: with the pinned loaders added, unconnected.
        What it loads is what ComfyUI will hold next."""
        extra: dict[str, Any] = {}
        for index, pin in enumerate(self._active_pins()):
            preloader = preloader_for(pin.folder)
            if preloader is not None:
                extra[f"{_PIN_NODE}{index}"] = preloader.node(pin.filename)
        prompt = {**workflow, **{k: v for k, v in extra.items() if k not in workflow}}
        self._last_prompt = frozenset(required_models(prompt))
        return prompt

    def forget(self) -> None:
        """ComfyUI restarted: its cache is empty, pins included (active preloads load again)."""
        self._last_prompt = frozenset()
        self._pins.clear()

    def _active_pins(self) -> list[_Pin]:
        if not self.pinning:
            return []
        now = self._clock()
        self._pins = {key: pin for key, pin in self._pins.items() if pin.expires_at > now}
        return list(self._pins.values())
