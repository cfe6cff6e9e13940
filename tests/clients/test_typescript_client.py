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
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from comfy_serverless.testing import LocalService

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "typescript"
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
