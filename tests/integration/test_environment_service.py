"""End to end on the real ComfyUI: `comfy-serverless engine install --manifest FILE` puts a
node pack (from a local bare git repository) and a model (from a loopback https server)
into an environment folder; a service started on it publishes the node in its catalog,
lists the model, and runs a workflow that uses the node."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.settings import Settings
from comfy_serverless.store.store import Store
from comfy_serverless.testing import LocalService
from tests.helpers import submit, wait_for, wait_until_finished, write_safetensors
from tests.model_files import sha
from tests.node_packs import bare_repository, git_node, manifest_text, path_node, write_pack
from tests.range_server import range_server
from tests.tls_server import LocalCertificates

pytestmark = pytest.mark.comfyui

LORA = "cs-env-lora.safetensors"


@dataclass
class Installed:
    environment: Path
    commit: str
    output: str
    env: dict[str, str]


def install_command(env: dict[str, str], manifest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "comfy_serverless.cli", "engine", "install",
                           "--manifest", str(manifest)], env=env, capture_output=True,
                          text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def installed(engine_layout: EngineLayout, test_certificates: LocalCertificates,
              tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("environment-service")
    url, commit = bare_repository(root / "repo", requirements="numpy>=1.25\n")
    lora = write_safetensors(root / LORA, {"lora_unet_down.alpha": [1, 1]})
    with range_server(test_certificates) as models:
        source = models.serve(f"/env/{LORA}", lora.read_bytes())
        manifest = root / "environment.toml"
        manifest.write_text(manifest_text(
            "echo-env", git_node("cs-echo", url, commit),
            models=f'\n[[models]]\nsource = "{source}"\nsha256 = "{sha(lora.read_bytes())}"'
                   '\nfolder = "loras"\n'))
        env = {**_environment(root, engine_layout, test_certificates)}
        done = install_command(env, manifest)
    assert done.returncode == 0, done.stderr
    return Installed(root / "environment", commit, done.stdout, env)


def _environment(root: Path, layout: EngineLayout, certificates: LocalCertificates
                 ) -> dict[str, str]:
    import os

    return {**os.environ, "COMFY_SERVERLESS_ENGINE_DIR": str(layout.root),
            "COMFY_SERVERLESS_ENVIRONMENT_DIR": str(root / "environment"),
            "COMFY_SERVERLESS_MODEL_CACHE_DIR": str(root / "cache"),
            "COMFY_SERVERLESS_INPUT_CA_BUNDLE": str(certificates.ca_bundle),
            "COMFY_SERVERLESS_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.1/32"]',
            "PIP_NO_INDEX": "1"}  # the requirement is satisfied: nothing is downloaded


@pytest.fixture(scope="module")
def environment_service(installed: Installed, engine_layout: EngineLayout,
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    data_dir = tmp_path_factory.mktemp("environment-service-data")
    # No operator list of verified packs: the worker publishes the packs its scan found
    # nothing in as verified, and require_verification (on by default) takes them.
    env = {"COMFY_SERVERLESS_ENVIRONMENT_DIR": str(installed.environment),
           "COMFY_SERVERLESS_HEARTBEAT_INTERVAL": "1"}
    with LocalService.start(data_dir, engine_layout.root, extra_env=env) as running:
        yield running


@pytest.fixture
async def environment_api(environment_service: LocalService
                          ) -> AsyncIterator[httpx.AsyncClient]:
    key = environment_service.new_unthrottled_key()
    async with httpx.AsyncClient(base_url=environment_service.base_url, timeout=30,
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def test_the_command_says_what_it_installed(installed: Installed) -> None:
    lines = installed.output.splitlines()
    assert lines[1].startswith("environment 'echo-env' (")
    assert lines[1].endswith(f") installed in {installed.environment}")
    assert lines[2].startswith(f"  node 'cs-echo' at {installed.commit} from ")
    assert lines[2].endswith(": verified (scan found nothing)")
    assert lines[3] == "    requirements: numpy>=1.25"
    assert (installed.environment / "models" / "loras" / LORA).is_file()


def test_the_same_manifest_again_does_nothing(installed: Installed) -> None:
    manifests = list(installed.environment.parent.glob("*.toml"))
    again = install_command(installed.env, manifests[0])
    assert again.returncode == 0, again.stderr
    assert ") already installed in " in again.stdout


def test_a_failure_exits_1_naming_the_node_and_the_step(installed: Installed,
                                                        tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack")
    manifest = tmp_path / "bad.toml"
    manifest.write_text(manifest_text("bad", path_node("old-torch", pack, ["torch==1.13.1"])))
    env = {**installed.env, "COMFY_SERVERLESS_ENVIRONMENT_DIR": str(tmp_path / "environment")}
    failed = install_command(env, manifest)
    assert failed.returncode == 1
    assert failed.stderr.startswith("comfy-serverless: node 'old-torch': requirements: "
                                    "'torch==1.13.1' would change torch 2.13.0"), failed.stderr
    assert not (tmp_path / "environment" / "custom_nodes").exists()


async def test_the_node_is_in_the_published_catalog(environment_service: LocalService) -> None:
    store = await Store.open(Settings(data_dir=environment_service.data_dir)
                             .resolved_database_url())
    try:
        async def published() -> dict[str, object] | None:
            for digest in await store.workers.catalog_hashes(0):
                catalog = await store.workers.catalog(digest)
                if catalog and "CSTestEcho" in catalog:
                    return catalog
            return None

        catalog = await wait_for(published, timeout=60, interval=0.5, what="the catalog")
    finally:
        await store.close()
    echo = catalog["CSTestEcho"]
    assert isinstance(echo, dict)
    assert echo["input"]["required"]["image"][0] == "IMAGE"


async def test_a_workflow_using_the_node_runs_on_the_environment_it_asks_for(
        environment_api: httpx.AsyncClient) -> None:
    workflow = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0}},
        "2": {"class_type": "CSTestEcho", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "echo",
                                                    "images": ["2", 0]}},
    }
    execution_id = await submit(environment_api, workflow, environment="echo-env")
    final = await wait_until_finished(environment_api, execution_id)
    assert final["status"] == "completed", final
    results = (await environment_api.get(f"/v1/workflows/{execution_id}/results")).json()
    [output] = results["results"]["outputs"]
    async with httpx.AsyncClient() as browser:
        image = (await browser.get(output["storage"]["url"])).content
    with Image.open(io.BytesIO(image)) as picture:
        assert picture.convert("RGB").getpixel((0, 0)) == (255, 255, 255)  # black, inverted


async def test_the_model_of_the_manifest_is_listed(environment_api: httpx.AsyncClient) -> None:
    async def listed() -> list[str] | None:
        body = (await environment_api.get("/v1/models/list",
                                          params={"category": "lora"})).json()
        names = [model["file_info"]["filename"] for model in body["models"]]
        return names if LORA in names else None

    assert LORA in await wait_for(listed, timeout=90, interval=0.5, what="the lora listed")
