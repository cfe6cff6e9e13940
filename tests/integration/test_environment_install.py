"""`install_environment` against the real engine's venv: a node pack from a local bare git
repository at its exact commit, the scan's findings recorded, requirements checked against
the engine's pins before anything is installed, failures that name the node and the step.

pip runs with PIP_NO_INDEX: the requirements used here are satisfied already, so nothing
is downloaded and the shared engine's venv is left as it was."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import zipfile
from pathlib import Path

import pytest

from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.environments.errors import InstallFailed
from comfy_serverless.environments.install import InstallResult, install_environment
from comfy_serverless.environments.manifest import parse_manifest
from comfy_serverless.environments.record import read_installed
from comfy_serverless.model_sources import CachedModel, ModelSource, Transport
from tests.model_files import POLICY, cache_for, file_body
from tests.node_packs import (
    SUBPROCESS_AT_IMPORT,
    bare_repository,
    git_node,
    manifest_text,
    path_node,
    write_pack,
)
from tests.range_server import range_server
from tests.tls_server import LocalCertificates

pytestmark = pytest.mark.comfyui


@pytest.fixture(autouse=True)
def offline_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")


async def install(text: str, environment: Path, layout: EngineLayout,
                  base: Path | None = None) -> InstallResult:
    manifest = parse_manifest(text, base or environment.parent)
    return await install_environment(manifest, environment, layout)


def head_of(folder: Path) -> str:
    return subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


async def test_a_node_from_a_bare_repository_installs_at_its_commit(
        engine_layout: EngineLayout, tmp_path: Path) -> None:
    url, commit = bare_repository(tmp_path / "repo", requirements="numpy>=1.25\n")
    environment = tmp_path / "environment"
    text = manifest_text("echo-env", git_node("cs-echo", url, commit))
    first = await install_environment(parse_manifest(text, tmp_path), environment,
                                      engine_layout)
    pack = environment / "custom_nodes" / "cs-echo"
    assert head_of(pack) == commit
    assert "class CSTestEcho" in (pack / "nodes.py").read_text()
    assert first.requirements == {"cs-echo": ("numpy>=1.25",)}  # the pack's requirements.txt
    assert not first.unchanged
    record = read_installed(environment)
    assert record == first.environment
    assert record is not None
    assert record.name == "echo-env"
    (node,) = record.nodes
    assert (node.name, node.source, node.commit, node.findings, node.verified) == (
        "cs-echo", url, commit, (), True)
    again = await install_environment(parse_manifest(text, tmp_path), environment,
                                      engine_layout)
    assert again.unchanged
    assert again.environment == record


async def test_a_commit_the_repository_lacks_fails_naming_the_node_and_the_step(
        engine_layout: EngineLayout, tmp_path: Path) -> None:
    url, _ = bare_repository(tmp_path / "repo")
    environment = tmp_path / "environment"
    with pytest.raises(InstallFailed) as failed:
        await install(manifest_text("e", git_node("cs-echo", url, "0" * 40)), environment,
                      engine_layout)
    assert str(failed.value).startswith(f"node 'cs-echo': checkout of {'0' * 40} failed: ")
    assert (failed.value.subject, failed.value.step) == ("node 'cs-echo'",
                                                         f"checkout of {'0' * 40} failed")
    assert read_installed(environment) is None
    assert not (environment / "custom_nodes").exists()


async def test_a_repository_that_is_not_there_fails_at_the_clone(
        engine_layout: EngineLayout, tmp_path: Path) -> None:
    with pytest.raises(InstallFailed, match=r"^node 'gone': clone failed: "):
        await install(manifest_text("e", git_node("gone", str(tmp_path / "no.git"), "1" * 40)),
                      tmp_path / "environment", engine_layout)


async def test_a_manifest_that_pins_another_torch_is_refused_before_anything_is_installed(
        engine_layout: EngineLayout, tmp_path: Path) -> None:
    url, commit = bare_repository(tmp_path / "repo")
    environment = tmp_path / "environment"
    text = manifest_text("e", git_node("fine", url, commit, ["numpy>=1.25"]),
                         git_node("old-torch", url, commit, ["torch==2.0.0"]))
    with pytest.raises(InstallFailed) as refused:
        await install(text, environment, engine_layout)
    message = str(refused.value)
    assert message.startswith("node 'old-torch': requirements: 'torch==2.0.0' would change "
                              "torch 2.13.0"), message
    assert "which the engine pins" in message
    assert read_installed(environment) is None
    assert not (environment / "custom_nodes").exists()


async def test_a_dependency_that_needs_another_torch_is_refused_by_the_resolver(
        engine_layout: EngineLayout, tmp_path: Path) -> None:
    wheel = conflicting_wheel(tmp_path / "wheels")
    pack = write_pack(tmp_path / "pack")
    text = manifest_text("e", path_node("needs-old-torch", pack,
                                        [f"cs-needs-old-torch @ {wheel.as_uri()}"]))
    with pytest.raises(InstallFailed) as refused:
        await install(text, tmp_path / "environment", engine_layout)
    message = str(refused.value)
    assert message.startswith("node 'needs-old-torch': requirements (checked under the "
                              "engine's pins): "), message
    assert "torch<2" in message
    assert read_installed(tmp_path / "environment") is None


async def test_the_scan_findings_of_a_node_are_recorded(
        engine_layout: EngineLayout, tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack", SUBPROCESS_AT_IMPORT)
    environment = tmp_path / "environment"
    result = await install(manifest_text("e", path_node("shells-out", pack, [])), environment,
                           engine_layout)
    record = read_installed(environment)
    assert record is not None
    assert record == result.environment
    (node,) = record.nodes
    assert node.findings == ("nodes.py:1: subprocess: imports subprocess",
                             "nodes.py:3: subprocess: calls subprocess.run")
    assert not node.verified
    assert node.commit is None
    assert node.source == str(pack)
    assert (environment / "custom_nodes" / "shells-out" / "nodes.py").is_file()


async def test_another_manifest_replaces_the_previous_environment(
        engine_layout: EngineLayout, tmp_path: Path) -> None:
    environment = tmp_path / "environment"
    first = write_pack(tmp_path / "first")
    second = write_pack(tmp_path / "second")
    await install(manifest_text("one", path_node("first", first, [])), environment,
                  engine_layout)
    await install(manifest_text("two", path_node("second", second, [])), environment,
                  engine_layout)
    assert sorted(path.name for path in (environment / "custom_nodes").iterdir()) == ["second"]
    record = read_installed(environment)
    assert record is not None
    assert record.name == "two"
    assert not (environment / ".staging").exists()


async def test_a_changed_local_folder_is_a_new_environment(
        engine_layout: EngineLayout, tmp_path: Path) -> None:
    environment = tmp_path / "environment"
    pack = write_pack(tmp_path / "pack")
    text = manifest_text("e", path_node("local", pack, []))
    before = await install(text, environment, engine_layout)
    (pack / "extra.py").write_text("X = 1\n")
    after = await install(text, environment, engine_layout)
    assert not after.unchanged
    assert after.environment.hash != before.environment.hash
    assert (environment / "custom_nodes" / "local" / "extra.py").is_file()


async def test_packs_whose_requirements_conflict_are_refused_together_naming_both(
        engine_layout: EngineLayout, tmp_path: Path) -> None:
    needs_old = wheel_of(tmp_path / "wheels", "cs-conflict-a", "1.0", "cs-conflict-shared<2")
    shared_two = wheel_of(tmp_path / "wheels", "cs-conflict-shared", "2.0")
    pack = write_pack(tmp_path / "pack")
    text = manifest_text("e", path_node("first", pack, [f"cs-conflict-a @ {needs_old.as_uri()}"]),
                         path_node("second", pack,
                                   [f"cs-conflict-shared @ {shared_two.as_uri()}"]))
    with pytest.raises(InstallFailed) as refused:
        await install(text, tmp_path / "environment", engine_layout)
    message = str(refused.value)
    assert message.startswith("nodes 'first', 'second': requirements (checked under the "
                              "engine's pins): "), message
    assert "cs-conflict-shared<2" in message
    assert read_installed(tmp_path / "environment") is None


async def test_pip_never_sees_the_services_secrets(
        engine_layout: EngineLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFY_SERVERLESS_TEST_SECRET", "do-not-leak")
    seen = tmp_path / "environment-seen.json"
    probe = environment_probe(tmp_path / "probe", seen)
    pack = write_pack(tmp_path / "pack")
    text = manifest_text("e", path_node("probe", pack, [f"cs-env-probe @ {probe.as_uri()}"]))
    with pytest.raises(InstallFailed, match="torch<2"):  # refused after pip read its metadata
        await install(text, tmp_path / "environment", engine_layout)
    environment = json.loads(seen.read_text())
    assert environment["PIP_NO_INDEX"] == "1"
    assert "COMFY_SERVERLESS_TEST_SECRET" not in environment
    assert "do-not-leak" not in seen.read_text()


def environment_probe(folder: Path, seen: Path) -> Path:
    """A project whose in-tree build backend writes the environment pip runs it with to
    `seen` while pip reads its metadata; it asks for torch<2, so nothing is installed."""
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "probe_backend"\n'
        'backend-path = ["."]\n')
    (folder / "probe_backend.py").write_text(f'''\
import json, os


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    with open({str(seen)!r}, "w") as out:
        json.dump(dict(os.environ), out)
    info = os.path.join(metadata_directory, "cs_env_probe-1.0.dist-info")
    os.makedirs(info)
    with open(os.path.join(info, "METADATA"), "w") as metadata:
        metadata.write("Metadata-Version: 2.1\\nName: cs-env-probe\\nVersion: 1.0\\n"
                       "Requires-Dist: torch<2\\n")
    return "cs_env_probe-1.0.dist-info"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise RuntimeError("the probe is never installed")
''')
    return folder


def conflicting_wheel(folder: Path) -> Path:
    """A pure-Python wheel whose metadata asks for torch<2: only pip's resolver sees it."""
    return wheel_of(folder, "cs-needs-old-torch", "1.0", "torch<2")


def wheel_of(folder: Path, name: str, version: str, *requires: str) -> Path:
    """A pure-Python wheel with these requirements in its metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    module = name.replace("-", "_")
    path = folder / f"{module}-{version}-py3-none-any.whl"
    info = f"{module}-{version}.dist-info"
    dependencies = "".join(f"Requires-Dist: {line}\n" for line in requires)
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{module}/__init__.py", "")
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\n"
                                           f"Version: {version}\n{dependencies}")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: tests\n"
                                        "Root-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")
    return path


async def test_a_model_with_another_sha256_fails_naming_the_model_and_keeps_the_old_nodes(
        engine_layout: EngineLayout, tmp_path: Path,
        test_certificates: LocalCertificates) -> None:
    environment = tmp_path / "environment"
    pack = write_pack(tmp_path / "pack")
    await install(manifest_text("old", path_node("kept", pack, [])), environment,
                  engine_layout)
    transport = Transport(ssl.create_default_context(cafile=str(test_certificates.ca_bundle)))
    cache = cache_for(tmp_path / "cache", transport)

    async def fetch(source: ModelSource) -> CachedModel:
        return await cache.fetch(source, POLICY)

    with range_server(test_certificates) as models:
        url = models.serve("/lora.safetensors", file_body("lora", 1000))
        text = manifest_text("new", path_node("new", pack, []), models=(
            f'\n[[models]]\nsource = "{url}"\nsha256 = "{"0" * 64}"\nfolder = "loras"\n'))
        with pytest.raises(InstallFailed) as failed:
            await install_environment(parse_manifest(text, tmp_path), environment,
                                      engine_layout, fetch)
    assert str(failed.value).startswith(
        f"model 'loras/lora.safetensors': download of {url}: ")
    assert "sha256" in str(failed.value)
    assert sorted(path.name for path in (environment / "custom_nodes").iterdir()) == ["kept"]
    record = read_installed(environment)
    assert record is not None
    assert record.name == "old"


async def test_a_symlink_and_a_compiled_file_leave_a_pack_unverified(
        engine_layout: EngineLayout, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "hidden.py").write_text("import subprocess\n")
    pack = write_pack(tmp_path / "pack")
    (pack / "lib").symlink_to(outside, target_is_directory=True)
    (pack / "helper.pyc").write_bytes(b"\x00" * 16)
    environment = tmp_path / "environment"
    result = await install(manifest_text("e", path_node("tricky", pack, [])), environment,
                           engine_layout)
    (node,) = result.environment.nodes
    assert node.findings == ("helper.pyc:1: binary: binary code the scan cannot read",
                             f"lib:1: symlink: points at {outside}, which the scan does not "
                             "follow")
    assert not node.verified
    assert (environment / "custom_nodes" / "tricky" / "lib").is_symlink()  # copied, as found


async def test_a_git_urls_credentials_never_reach_the_error(
        engine_layout: EngineLayout, tmp_path: Path) -> None:
    url = f"https://user:s3cret@127.0.0.1:{closed_port()}/pack.git"
    with pytest.raises(InstallFailed) as failed:
        await install(manifest_text("e", git_node("private", url, "1" * 40)),
                      tmp_path / "environment", engine_layout)
    assert str(failed.value).startswith("node 'private': clone failed: ")
    assert "s3cret" not in str(failed.value)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
