"""`comfy-serverless run` in a pseudo-terminal, as a person uses it: the progress bar
climbs to 100% with the node, the sampler step and an ETA, and the output is downloaded;
Ctrl-C cancels the execution."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from comfy_serverless.testing import LocalService
from tests.terminal import Terminal

ROOT = Path(__file__).resolve().parents[2]
EXECUTABLE = str(ROOT / ".venv" / "bin" / "comfy-serverless")

pytestmark = pytest.mark.comfyui


@pytest.fixture
def terminal_env(service: LocalService, api_key: str) -> dict[str, str]:
    return {**service.env, "COMFY_SERVERLESS_URL": service.base_url,
            "COMFY_SERVERLESS_API_KEY": api_key, "TERM": "xterm"}


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


def _percentages(output: str) -> list[int]:
    return [int(share) for share in re.findall(r"\] +(\d+)%", output)]


def test_the_bar_reaches_100_percent_and_the_output_is_saved(
    terminal_env: dict[str, str], terminals: list[Terminal], tmp_path: Path,
) -> None:
    seed = random.randrange(2**31)
    terminal = Terminal([EXECUTABLE, "run", str(ROOT / "examples" / "tiny-sd15.json"),
                         "--set", f"seed={seed}", "--set", "prompt=a red lighthouse",
                         "--out", "out"], terminal_env, tmp_path)
    terminals.append(terminal)
    assert terminal.wait(180) == 0, terminal.output
    shares = _percentages(terminal.output)
    assert shares == sorted(shares)
    assert shares[-1] == 100
    assert any(0 < share < 100 for share in shares), terminal.output
    assert re.search(r"KSampler \(node 3\) \| step \d+/20", terminal.output)
    assert re.search(r"ETA \d+s", terminal.output)
    [saved] = (tmp_path / "out").iterdir()
    assert saved.read_bytes().startswith(b"\x89PNG")
    assert f"saved out/{saved.name}" in terminal.output


def test_ctrl_c_cancels_the_execution(terminal_env: dict[str, str], terminals: list[Terminal],
                                      tmp_path: Path, service: LocalService, api_key: str
                                      ) -> None:
    terminal = Terminal([EXECUTABLE, "run", str(ROOT / "examples" / "tiny-sd15.json"),
                         "--set", f"seed={random.randrange(2**31)}", "--set", "steps=5000"],
                        terminal_env, tmp_path)
    terminals.append(terminal)
    terminal.read_until(lambda text: bool(re.search(r"step \d+/5000", text)), 180,
                        "the sampler's steps on the bar")
    terminal.type(b"\x03")
    assert terminal.wait(60) == 130, terminal.output
    [execution_id] = re.findall(r"cancelled (exec_\w+)", terminal.output)[-1:]
    status = httpx.get(f"{service.base_url}/v1/workflows/{execution_id}/status",
                       headers={"Authorization": f"Bearer {api_key}"}).json()
    assert status["status"] == "cancelled"
