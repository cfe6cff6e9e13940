from pathlib import Path

import pytest

from comfy_serverless.settings import Settings

DOC = (Path(__file__).resolve().parents[2] / "docs" / "reference" / "configuration.md").read_text()


def test_every_setting_is_documented_with_its_variable() -> None:
    for name in Settings.model_fields:
        assert f"| `{name}` | `COMFY_SERVERLESS_{name.upper()}`" in DOC, name


def test_bare_names_prefixed_names_and_arguments_all_work(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://127.0.0.1/test")
    monkeypatch.setenv("COMFY_SERVERLESS_COMFYUI_URL", "http://127.0.0.1:8188")
    monkeypatch.setenv("COMFY_SERVERLESS_COMFYUI_EXTRA_ARGS", '["--preview-method", "auto"]')
    from_env = Settings()
    assert from_env.resolved_database_url() == "postgresql://127.0.0.1/test"
    assert from_env.comfyui_url == "http://127.0.0.1:8188"
    assert from_env.comfyui_extra_args == ["--preview-method", "auto"]
    explicit = Settings(database_url=None, data_dir=tmp_path)
    assert explicit.resolved_database_url() == f"sqlite:///{tmp_path / 'comfy-serverless.db'}"


def test_signing_secret_is_made_once_and_kept(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).resolved_signing_secret()
    assert len(first) >= 32
    assert Settings(data_dir=tmp_path).resolved_signing_secret() == first


def test_the_maintenance_cli_announces_to_registered_endpoints(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "COMFY_SERVERLESS_DATA_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "comfy_serverless.cli", "maintenance", "announce",
         "--message", "Upgrading GPUs", "--starts-at", "2026-12-01T02:00:00Z"],
        env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "system.maintenance queued for 0 endpoint(s)" in result.stderr
