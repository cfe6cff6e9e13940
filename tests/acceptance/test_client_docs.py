"""The commands of the client docs (the stream, the SDK and the CLI), run as written
against the session's service."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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


def test_the_sdk_installs_alone_and_its_example_runs(service: LocalService, api_key: str,
                                                     tmp_path: Path) -> None:
    """In a new virtualenv without the service: the install command, then the example."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    (tmp_path / "clients").symlink_to(ROOT / "clients")
    env_path = {"PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    install = _block("docs/how-to/sdk.md", "sdk-install").replace(
        "pip install", "pip install --quiet --disable-pip-version-check")
    subprocess.run(["bash", "-euo", "pipefail", "-c", install], cwd=tmp_path, check=True,
                   env={**os.environ, **env_path}, timeout=300)
    (tmp_path / "example.py").write_text(_block("docs/how-to/sdk.md", "sdk-python", "python"))
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    result = subprocess.run(
        [str(venv / "bin" / "python"), "example.py"], cwd=tmp_path, capture_output=True,
        text=True, timeout=180, check=False,
        env={**env_path, "COMFY_SERVERLESS_URL": service.base_url,
             "COMFY_SERVERLESS_API_KEY": api_key})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "step " in result.stdout
    assert (tmp_path / "outputs").is_dir()
    [saved] = (tmp_path / "outputs").iterdir()
    assert f"saved outputs/{saved.name}" in result.stdout
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import comfy_serverless"],
                           capture_output=True, check=False)
    assert probe.returncode != 0  # the SDK runs without the service's package


def test_the_cli_how_to_runs_as_written(service: LocalService, api_key: str,
                                        tmp_path: Path) -> None:
    result = run_doc_script(service, api_key, tmp_path, _block("docs/how-to/sdk.md", "cli"))
    lines = result.stdout.splitlines()
    assert any(line.startswith("saved outputs/tiny") for line in lines), result.stdout
    assert re.search(r"exec_\w+ completed 100%", result.stdout)
    assert lines[-2].startswith("walkthrough_")  # examples/invert.json's file
    assert " end " in lines[-1]
    assert "100%" in result.stderr  # the bar


def test_the_readme_client_walkthrough_runs(service: LocalService, tmp_path: Path) -> None:
    result = run_doc_script(service, "", tmp_path, _block("README.md", "clients"))
    saved = sorted(path.name for path in (tmp_path / "outputs").iterdir())
    assert [name[:3] for name in saved] == ["py_", "tin"], saved
    assert f"saved outputs/{saved[0]}" in result.stdout
    assert "100%" in result.stderr
