"""The TypeScript client (clients/typescript) in the test command: its committed generated
types equal a fresh generation from the OpenAPI document, and its node:test suites pass
against the session's service on the real tiny ComfyUI (a submit streamed to its end, a
resume, a reconnect, a cancel, typed errors, a download).

Fails, never skips, when node or npm is missing: scripts/test installs them
(scripts/ensure-node). npm installs from its cache on the machine, and only when
package-lock.json changed since the last install.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from comfy_serverless.testing import LocalService

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "typescript"
INSTALLED_STAMP = CLIENT / "node_modules" / ".installed-from-lock"

pytestmark = pytest.mark.comfyui


def npm(*args: str, env: Mapping[str, str] | None = None, timeout: float = 300) -> str:
    """Run npm in the client's folder; its output, or a failure that shows it."""
    finished = subprocess.run(["npm", *args], cwd=CLIENT, capture_output=True, text=True,
                              env={**os.environ, **(env or {})}, timeout=timeout, check=False)
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, f"npm {' '.join(args)} failed:\n{output[-8000:]}"
    return output


@pytest.fixture(scope="module")
def built_client() -> Path:
    """`npm ci` (when the lock file changed since the last one) and `npm run build`."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    assert not missing, f"{missing} not found: run scripts/ensure-node"
    lock = (CLIENT / "package-lock.json").read_text()
    if not INSTALLED_STAMP.is_file() or INSTALLED_STAMP.read_text() != lock:
        npm("ci", "--no-audit", "--no-fund", "--prefer-offline")
        INSTALLED_STAMP.write_text(lock)
    npm("run", "build")
    return CLIENT


def test_the_committed_types_equal_a_fresh_generation(built_client: Path,
                                                      service: LocalService) -> None:
    """From docs/reference/openapi.json when it is committed, else the served document."""
    output = npm("run", "generate", "--", "--check",
                 env={"COMFY_SERVERLESS_URL": service.base_url})
    assert "matches" in output


def test_the_client_against_the_service(built_client: Path, service: LocalService) -> None:
    env = {"COMFY_SERVERLESS_URL": service.base_url,
           "COMFY_SERVERLESS_API_KEY": service.new_unthrottled_key()}
    output = npm("test", env=env, timeout=600)
    assert "# fail 0" in output
    assert "# pass 0" not in output


def test_the_readme_example_runs_as_written(built_client: Path, service: LocalService,
                                            tmp_path: Path) -> None:
    """The README's example, as an app's module that depends on the built client, run from a
    folder that has the repository's examples."""
    readme = (CLIENT / "README.md").read_text()
    section = readme.split("<!-- ts-run:start -->", 1)[1].split("<!-- ts-run:end -->", 1)[0]
    [example] = re.findall(r"```ts\n(.*?)```", section, flags=re.DOTALL)
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "comfy-serverless-client").symlink_to(CLIENT)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "example.mjs").write_text(example)
    env = {**os.environ, "COMFY_SERVERLESS_URL": service.base_url,
           "COMFY_SERVERLESS_API_KEY": service.new_unthrottled_key()}
    finished = subprocess.run(["node", "example.mjs"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    saved = re.findall(r"^saved (\S+)$", finished.stdout, flags=re.MULTILINE)
    assert saved
    assert all((tmp_path / name).read_bytes().startswith(b"\x89PNG") for name in saved)
