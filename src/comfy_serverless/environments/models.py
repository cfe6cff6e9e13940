"""An environment's models: fetched through the machine's model cache (the operator's
policy: the manifest's hosts are allowed, the SSRF rules still apply, the sha256 must
match), then hard-linked (copied across file systems) into
`<environment_dir>/models/<folder>/<name>`, a folder the supervisor adds to ComfyUI's model
paths. The environment owns that link: the cache may evict its own entry, the file stays."""

from __future__ import annotations

import os
import shutil
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from comfy_serverless.environments.errors import InstallFailed
from comfy_serverless.environments.manifest import ModelSpec
from comfy_serverless.model_sources import CachedModel, ModelSource, ModelSourceError

__all__ = ["ModelFetch", "install_models"]

# The cache's fetch with the operator's policy bound: source → the verified cached file.
ModelFetch = Callable[[ModelSource], Awaitable[CachedModel]]


async def install_models(models: Sequence[ModelSpec], fetch: ModelFetch | None,
                         models_dir: Path) -> None:
    for model in models:
        subject = f"model '{model.folder}/{model.name}'"
        if fetch is None:
            raise InstallFailed(subject, "download", "no model cache was given")
        try:
            cached = await fetch(model.source)
        except ModelSourceError as error:
            raise InstallFailed(subject, f"download of {model.source.display}",
                                str(error)) from error
        try:
            _link_or_copy(cached.path, models_dir / model.folder / model.name)
        except OSError as error:
            raise InstallFailed(subject, "placing the file", str(error)) from error


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
