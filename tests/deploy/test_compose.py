"""deploy/compose.yaml parses with podman-compose, and .env.example holds exactly the
variables it uses: the service's ones are real settings, the rest are compose knobs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.tools import DEPLOY, podman, setting_variables

COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
COMPOSE_ONLY_HEADER = "# --- compose only"
OUR_SERVICES = ("migrate", "api-1", "api-2", "worker")


def resolved_config(compose: Path, env_file: Path) -> dict[str, Any]:
    podman()  # podman-compose asks `podman version` before it parses anything
    result = subprocess.run(
        [sys.executable, "-m", "podman_compose", "-f", str(compose), "--env-file", str(env_file),
         "config"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def env_example_sections(text: str) -> tuple[set[str], set[str]]:
    """(the service's settings, compose-only knobs) named in an .env.example text."""
    settings_part, _, compose_part = text.partition(COMPOSE_ONLY_HEADER)

    def names(part: str) -> set[str]:
        return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", part, flags=re.MULTILINE))
    return names(settings_part), names(compose_part)


def used_variables(compose_text: str) -> set[str]:
    """${NAME} interpolations; $${NAME} is an escaped dollar, left for the container's shell."""
    return set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", compose_text))


def test_podman_compose_accepts_the_file_with_every_service() -> None:
    config = resolved_config(COMPOSE, ENV_EXAMPLE)
    services = config["services"]
    assert set(services) == {"postgres", "redis", "minio", "bucket", *OUR_SERVICES}
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            assert source in config["volumes"], (name, source)
    assert services["worker"]["deploy"]["replicas"] in (2, "2")
    assert {p.split(":")[-1] for s in ("api-1", "api-2") for p in services[s]["ports"]} == {
        "8000"}


def test_every_variable_it_uses_is_in_the_example_and_every_example_line_is_used() -> None:
    settings, knobs = env_example_sections(ENV_EXAMPLE.read_text())
    assert used_variables(COMPOSE.read_text()) == settings | knobs


def test_the_example_names_real_settings_and_keeps_compose_knobs_apart() -> None:
    settings, knobs = env_example_sections(ENV_EXAMPLE.read_text())
    assert settings <= setting_variables(), settings - setting_variables()
    assert not knobs & setting_variables()


def test_our_containers_get_only_real_settings() -> None:
    services = resolved_config(COMPOSE, ENV_EXAMPLE)["services"]
    for name in OUR_SERVICES:
        names = set(services[name]["environment"])
        assert names <= setting_variables(), (name, names - setting_variables())


def test_a_stopped_worker_is_given_longer_than_its_shutdown_grace() -> None:
    services = resolved_config(COMPOSE, ENV_EXAMPLE)["services"]
    worker = services["worker"]
    grace = float(worker["environment"]["COMFY_SERVERLESS_SHUTDOWN_GRACE"])
    assert float(worker["stop_grace_period"].removesuffix("s")) > grace


def test_the_variable_check_sees_an_undeclared_variable_and_ignores_escaped_ones() -> None:
    text = 'a: ${DECLARED}\nb: "$${SHELL_ONLY}"\nc: ${UNDECLARED:-x}\n'
    assert used_variables(text) == {"DECLARED", "UNDECLARED"}
    settings, knobs = env_example_sections(
        f"COMFY_SERVERLESS_PORT=1\n{COMPOSE_ONLY_HEADER} ---\nWORKERS=2\n")
    assert (settings, knobs) == ({"COMFY_SERVERLESS_PORT"}, {"WORKERS"})
