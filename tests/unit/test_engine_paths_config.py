"""The paths file the supervisor hands ComfyUI: our hooks always, and an installed
environment's custom nodes and model folders when there are any."""

from __future__ import annotations

import json
from pathlib import Path

from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.engine.comfyui.supervisor import (
    HOOKS_DIR,
    EngineProcessConfig,
    _write_paths_config,
)


def written(config: EngineProcessConfig) -> dict[str, dict[str, str]]:
    config.state_dir.mkdir(parents=True, exist_ok=True)
    _write_paths_config(config)
    paths: dict[str, dict[str, str]] = json.loads(
        (config.state_dir / "comfy-serverless-paths.yaml").read_text())
    return paths


def test_an_environment_adds_its_custom_nodes_and_model_folders(tmp_path: Path) -> None:
    environment = tmp_path / "environment"
    for folder in ("custom_nodes", "models/loras", "models/checkpoints"):
        (environment / folder).mkdir(parents=True)
    config = EngineProcessConfig(layout=EngineLayout(tmp_path / "engine"),
                                 state_dir=tmp_path / "state",
                                 extra_custom_nodes=environment / "custom_nodes",
                                 extra_models=environment / "models")
    assert written(config) == {
        "comfy_serverless": {"custom_nodes": str(HOOKS_DIR)},
        "comfy_serverless_environment": {
            "custom_nodes": str(environment / "custom_nodes"),
            "checkpoints": str(environment / "models" / "checkpoints"),
            "loras": str(environment / "models" / "loras")}}


def test_without_an_installed_environment_only_the_hooks_are_loaded(tmp_path: Path) -> None:
    config = EngineProcessConfig(layout=EngineLayout(tmp_path / "engine"),
                                 state_dir=tmp_path / "state",
                                 extra_custom_nodes=tmp_path / "none" / "custom_nodes",
                                 extra_models=tmp_path / "none" / "models")
    assert written(config) == {"comfy_serverless": {"custom_nodes": str(HOOKS_DIR)}}
