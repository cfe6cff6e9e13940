"""`engine install --manifest FILE`: an environment put into an engine, all or nothing.

Everything is prepared in `<environment_dir>/.staging/` first: each node pack fetched (at
its exact commit) and scanned, every node's requirements checked against the engine's
pins and with each other in one pip dry-run (a manifest that would change torch or
ComfyUI's own packages, or whose packs conflict, is refused before anything is installed),
the models fetched and verified. Then one pip run installs all the requirements into the
engine's venv, the staged `custom_nodes/` and `models/` replace the
previous environment's, and the record (environments/record.py) is written last. A
failure names the node and the step, and leaves the previous environment's nodes in place.

Installing the manifest that is already installed does nothing (same hash, nodes present).
One install at a time per environment folder (a lock file, which a supervised ComfyUI also
holds, shared, while it starts: engine/comfyui/environment_hold.py); a running worker picks
the new environment up when its ComfyUI next starts, so restart it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.environments.manifest import Manifest, environment_hash
from comfy_serverless.environments.models import ModelFetch, install_models
from comfy_serverless.environments.nodes import fetch_node, tree_digest
from comfy_serverless.environments.record import (
    InstalledEnvironment,
    InstalledNode,
    read_installed,
    record_path,
    write_installed,
)
from comfy_serverless.environments.requirements import EnginePins, pack_requirements
from comfy_serverless.environments.scan import scan_pack

__all__ = ["InstallResult", "custom_nodes_dir", "install_environment", "lock_path",
           "models_dir"]

_STAGING = ".staging"


@dataclass(frozen=True)
class InstallResult:
    environment: InstalledEnvironment
    unchanged: bool  # it was installed already: nothing was done
    requirements: dict[str, tuple[str, ...]]  # what pip was given, per node


def custom_nodes_dir(environment_dir: Path) -> Path:
    return environment_dir / "custom_nodes"


def models_dir(environment_dir: Path) -> Path:
    return environment_dir / "models"


def lock_path(environment_dir: Path) -> Path:
    """Held exclusively by an install, shared by a supervised ComfyUI while it starts."""
    return environment_dir / ".install.lock"


async def install_environment(manifest: Manifest, environment_dir: Path,
                              layout: EngineLayout, fetch_model: ModelFetch | None = None
                              ) -> InstallResult:
    with _locked(environment_dir):
        digest = environment_hash(manifest, {node.name: tree_digest(node.path)
                                             for node in manifest.nodes if node.path})
        installed = read_installed(environment_dir)
        if installed is not None and installed.hash == digest and _all_present(
                manifest, environment_dir):
            return InstallResult(installed, unchanged=True, requirements={})
        staging = environment_dir / _STAGING
        shutil.rmtree(staging, ignore_errors=True)
        try:
            return await _install(manifest, digest, environment_dir, staging, layout,
                                  fetch_model)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


async def _install(manifest: Manifest, digest: str, environment_dir: Path, staging: Path,
                   layout: EngineLayout, fetch_model: ModelFetch | None) -> InstallResult:
    nodes, requirements = [], {}
    for node in manifest.nodes:
        pack = custom_nodes_dir(staging) / node.name
        fetch_node(node, pack)
        findings = tuple(str(finding) for finding in scan_pack(pack))
        nodes.append(InstalledNode(name=node.name, source=node.source, commit=node.commit,
                                   findings=findings))
        requirements[node.name] = pack_requirements(node.name, node.requirements, pack)
    pins = EnginePins(layout, staging / "pip")
    pins.refuse_changes(requirements)
    await install_models(manifest.models, fetch_model, models_dir(staging))
    pins.install(requirements)
    _replace(environment_dir, staging)
    environment = InstalledEnvironment(name=manifest.name, hash=digest, nodes=tuple(nodes))
    write_installed(environment_dir, environment)
    return InstallResult(environment, unchanged=False, requirements=requirements)


def _replace(environment_dir: Path, staging: Path) -> None:
    """The previous record goes first, so that no reader takes the new folders for it."""
    record_path(environment_dir).unlink(missing_ok=True)
    staging.mkdir(parents=True, exist_ok=True)
    for folder in (custom_nodes_dir, models_dir):
        old, new = folder(environment_dir), folder(staging)
        retired = staging / f"retired-{old.name}"
        if old.exists():
            os.replace(old, retired)
        if new.exists():
            os.replace(new, old)
        else:
            old.mkdir(parents=True)


def _all_present(manifest: Manifest, environment_dir: Path) -> bool:
    """The folders and files the manifest puts in place are there (not removed by hand)."""
    return all((custom_nodes_dir(environment_dir) / node.name).is_dir()
               for node in manifest.nodes) and all(
        (models_dir(environment_dir) / model.folder / model.name).is_file()
        for model in manifest.models)


@contextlib.contextmanager
def _locked(environment_dir: Path) -> Iterator[None]:
    environment_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(lock_path(environment_dir), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)
