"""The commands of the client docs (the stream, the SDK and the CLI), run as written
against the session's service."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from comfy_serverless.testing import LocalService

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.comfyui


def _block(doc: str, marker: str, language: str = "bash") -> str:
    text = (ROOT / doc).read_text()
    section = text.split(f"<!-- {marker}:start -->", 1)[1].split(f"<!-- {marker}:end -->", 1)[0]
    [block] = re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)
    return str(block)


def run_doc_script(service: LocalService, key: str, workdir: Path, script: str,
                   *, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run a doc's bash block in `workdir` (with the repository's examples and .venv), as a
    reader would with API and KEY set."""
    for shared in (".venv", "examples"):
        if not (workdir / shared).exists():
            (workdir / shared).symlink_to(ROOT / shared)
    env = {**service.env, "API": service.base_url, "KEY": key,
           "PATH": f"{ROOT / '.venv' / 'bin'}:{service.env.get('PATH', '')}"}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=workdir,
                            capture_output=True, text=True, env=env, timeout=timeout,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_the_stream_how_to_runs_as_written(service: LocalService, api_key: str,
                                           tmp_path: Path) -> None:
    result = run_doc_script(service, api_key, tmp_path, _block("docs/how-to/stream.md",
                                                              "stream"))
    lines = result.stdout.splitlines()
    ids = [int(line.split(": ")[1]) for line in lines if line.startswith("id: ")]
    assert ids[:-1] == list(range(1, len(ids)))  # the whole stream, then the resumed one
    assert ids[-1] == 4
    assert "event: end" in lines
    assert "event: output" in lines
    assert '"status":"completed"' in (tmp_path / "events.txt").read_text()


def test_the_sync_mode_example_answers_with_results_in_one_request(
    service: LocalService, api_key: str, tmp_path: Path,
) -> None:
    result = run_doc_script(service, api_key, tmp_path, _block("docs/how-to/stream.md", "sync"))
    status, url, applied = result.stdout.splitlines()
    assert status == "completed"
    assert url.startswith(service.base_url)
    assert applied.lower().startswith("preference-applied: wait=30")
