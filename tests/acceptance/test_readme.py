"""The README, run as a new user would: its two commands, and its curl walk-through."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.testing import LocalService
from tests.helpers import status_of, wait_for, wait_until_finished

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()

pytestmark = pytest.mark.comfyui


def _code_blocks(markdown: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", markdown, flags=re.DOTALL)


def _quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1]
    return [line for line in _code_blocks(section)[0].splitlines() if line.strip()]


def test_quick_start_is_two_commands_and_ci_runs_the_second() -> None:
    serve, test = _quick_start_commands()
    assert (ROOT / serve).is_file()
    assert (ROOT / test).is_file()
    assert test in (ROOT / ".ci" / "run").read_text()


@pytest.fixture(scope="module")
def readme_service(engine_layout: EngineLayout, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[LocalService]:
    """The service started by the README's own run command."""
    serve_command = _quick_start_commands()[0]
    data_dir = tmp_path_factory.mktemp("readme-data")
    with LocalService.start(data_dir, engine_layout.root,
                            command=[str(ROOT / serve_command)]) as service:
        yield service


def test_walkthrough_runs_twice_in_a_row_against_the_service(readme_service: LocalService,
                                                             tmp_path: Path) -> None:
    """A new user runs the walk-through, then runs it again: the same workflow completes
    the second time too (ComfyUI's cache must not answer with the first run's files)."""
    walkthrough = README.split("<!-- walkthrough:start -->", 1)[1].split(
        "<!-- walkthrough:end -->", 1)[0]
    [script] = _code_blocks(walkthrough)
    for shared in (".venv", "examples"):
        (tmp_path / shared).symlink_to(ROOT / shared)
    for run in ("first", "second"):
        (tmp_path / "output.png").unlink(missing_ok=True)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True,
            text=True, env={**readme_service.env, "API": readme_service.base_url},
            timeout=120, check=False,
        )
        assert result.returncode == 0, f"{run} run: {result.stdout}{result.stderr}"
        assert "submitted exec_" in result.stdout
        assert '"completed"' in result.stdout, f"{run} run: {result.stdout}"
        png = (tmp_path / "output.png").read_bytes()
        assert png.startswith(b"\x89PNG")
        assert f"downloaded {len(png)} bytes" in result.stdout


async def test_tiny_sd15_example_runs_through_the_readme_service(
    readme_service: LocalService,
) -> None:
    key = readme_service.new_unthrottled_key()
    body = (ROOT / "examples" / "tiny-sd15.json").read_text()
    async with httpx.AsyncClient(base_url=readme_service.base_url, timeout=30,
                                 headers={"Authorization": f"Bearer {key}",
                                          "Content-Type": "application/json"}) as api:
        accepted = await api.post("/v1/workflows/execute", content=body)
        assert accepted.status_code == 202
        execution_id = accepted.json()["execution_id"]

        async def in_ksampler() -> bool:
            status = await status_of(api, execution_id)
            return status["current_node"] == "KSampler" and bool(status["current_step"])

        await wait_for(in_ksampler, timeout=120, interval=0.05, what="KSampler progress")
        final = await wait_until_finished(api, execution_id)
        assert final["status"] == "completed"
        results = (await api.get(f"/v1/workflows/{execution_id}/results")).json()
        [output] = results["results"]["outputs"]
        assert output["file_info"]["dimensions"] == "64x64"
