"""`execution_config.gpu_memory_fraction` and `enable_optimization`, applied per prompt.

Both travel in the prompt's `extra_data` (`cs_tuning`) and are applied, for that prompt
only, by comfy-serverless's hooks inside ComfyUI (engine/comfyui/extension):

- `gpu_memory_fraction` f: ComfyUI keeps (1 - f) of the GPU's memory free while the prompt
  runs (its reserved-VRAM setting), so it places models within f of the memory, offloading
  or partially loading them as in its low-VRAM mode; cached models beyond that share are
  unloaded when the prompt starts.
- `enable_optimization` (default true): TF32 matrix products and cuDNN autotuning on; false
  turns them off and asks cuDNN for deterministic algorithms: exact fp32, reproducible.

What cannot apply is refused, never ignored: a GPU memory share needs a GPU, and either
field needs the hooks (a supervised ComfyUI always has them). On a CPU worker, ComfyUI
computes in exact fp32 with no TF32 or cuDNN, which is what `enable_optimization: false`
asks for, and `true` has nothing more to switch on: both are accepted there.

ComfyUI caches node results across prompts: a prompt with `enable_optimization: false`
marks every node (`cache_mark`), so none of its results comes from, or goes to, a run with
the optimizations on. The memory share changes where weights sit, not the results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["EngineTuning"]

_EXTRA_DATA_KEY = "cs_tuning"


@dataclass(frozen=True)
class EngineTuning:
    gpu_memory_fraction: float | None = None
    optimize: bool = True

    @property
    def is_default(self) -> bool:
        return self.gpu_memory_fraction is None and self.optimize

    @property
    def cache_mark(self) -> str | None:
        """What every node of the prompt carries so that ComfyUI's cache keeps exact results
        apart from optimized ones (fresh_outputs.py); None for the defaults."""
        return None if self.optimize else "exact"

    def extra_data(self) -> dict[str, Any]:
        """What the prompt's `extra_data` carries for the hooks ({} for the defaults)."""
        if self.is_default:
            return {}
        return {_EXTRA_DATA_KEY: {"gpu_memory_fraction": self.gpu_memory_fraction,
                                  "optimize": self.optimize}}

    def unavailable(self, *, gpu: bool, hooks: bool) -> tuple[str, str] | None:
        """(field, reason) when an engine with (or without) a GPU and the hooks cannot
        apply this tuning; None when it can."""
        if self.gpu_memory_fraction is not None and not gpu:
            return ("execution_config.gpu_memory_fraction",
                    "a GPU memory share needs a GPU worker")
        if gpu and not self.is_default and not hooks:
            field = ("execution_config.gpu_memory_fraction"
                     if self.gpu_memory_fraction is not None
                     else "execution_config.enable_optimization")
            return field, "this worker's ComfyUI does not run comfy-serverless's hooks"
        return None
