"""Builds a virtualenv on a Python that already holds torch, and installs into it offline.

A GPU machine's image usually comes with a CUDA torch that matches its driver, and often no
network. There the engine's venv is made with `--system-site-packages` over that Python, so
torch, torchvision and torchaudio come from it and are never downloaded, reinstalled or
modified; everything else comes from a folder of wheels (`pip --no-index --find-links`).

When that Python is itself a venv (a GPU image's /opt/torch/.venv, say), `--system-site-
packages` alone shows only its *base* interpreter's packages, not the venv's, so torch would
be missing: a .pth file in the new venv adds the given Python's own package folders too.

Standard library only: scripts/gpu-check also runs this file directly, to make the service's
venv before the project (and its dependencies) is installed:

    python3 src/comfy_serverless/engine/comfyui/base_python.py VENV_DIR
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "OFFLINE_OPTIONAL_REQUIREMENTS",
    "INHERITED_PTH",
    "BasePython",
    "create_inheriting_venv",
    "inherit_package_dirs",
    "torch_constraints",
]

INHERITED_PTH = "inherited-packages.pth"
# ComfyUI starts without these (app/database/db.py catches their ImportError; the extra nodes
# that need kornia or spandrel are skipped with a warning), so an offline install leaves them
# out: the wheels carried to the GPU machine have to fit in its transfer limit.
OFFLINE_OPTIONAL_REQUIREMENTS = ("kornia", "spandrel", "alembic", "SQLAlchemy")
_TORCH_PACKAGES = ("torch", "torchvision", "torchaudio")
# Prints the folders on the Python's path that hold packages: all but its standard library.
_PACKAGE_DIRS_PROBE = (
    "import os, sys, sysconfig\n"
    "stdlib = sysconfig.get_paths()['stdlib']\n"
    "print('\\n'.join(p for p in sys.path if p and os.path.isdir(p)"
    " and not p.startswith(stdlib)))"
)
_PURELIB_PROBE = "import sysconfig; print(sysconfig.get_paths()['purelib'])"


@dataclass(frozen=True)
class BasePython:
    """How the engine's venv is built: on which Python, seeing its packages or not, and
    whether pip may reach an index or only a folder of wheels."""

    executable: Path = Path(sys.executable)
    inherit_packages: bool = False
    wheels: Path | None = None

    def pip_source_args(self) -> list[str]:
        """pip's arguments that choose where packages come from: only the wheels, if given."""
        if self.wheels is None:
            return []
        return ["--no-index", "--find-links", str(self.wheels.resolve())]


def _output(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def create_inheriting_venv(python: Path, venv_dir: Path) -> Path:
    """Make `venv_dir` over `python`, seeing every package that `python` sees; return the
    venv's interpreter."""
    venv_python = venv_dir / "bin" / "python"
    if not venv_python.exists():
        command = [str(python), "-m", "venv", "--system-site-packages", str(venv_dir)]
        if subprocess.run(command, capture_output=True, check=False).returncode != 0:
            # A Debian Python without python3-venv has no ensurepip: the venv then uses the
            # pip among `python`'s own packages, which the .pth below makes visible.
            subprocess.run([*command[:-1], "--without-pip", str(venv_dir)], check=True)
    inherit_package_dirs(python, venv_python)
    return venv_python


def inherit_package_dirs(python: Path, venv_python: Path) -> None:
    """Write the .pth that adds `python`'s package folders after the venv's own."""
    folders = _output([str(python), "-c", _PACKAGE_DIRS_PROBE]).split()
    site_packages = Path(_output([str(venv_python), "-c", _PURELIB_PROBE]).strip())
    (site_packages / INHERITED_PTH).write_text("\n".join(folders) + "\n")


def torch_constraints(venv_python: Path) -> str:
    """pip constraints that pin torch and its companions to the versions the venv already
    sees, so that no requirement can make pip replace them."""
    probe = (
        "import importlib.metadata as m\n"
        f"for name in {_TORCH_PACKAGES!r}:\n"
        "    try: print(f'{name}=={m.version(name)}')\n"
        "    except m.PackageNotFoundError: pass"
    )
    return _output([str(venv_python), "-c", probe])


if __name__ == "__main__":
    create_inheriting_venv(Path(sys.executable), Path(sys.argv[1]))
