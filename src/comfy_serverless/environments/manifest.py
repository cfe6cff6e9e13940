"""The environment manifest: a TOML file that says what an engine runs beyond ComfyUI.

    name = "portraits"                       # the environment's name (a submit's rule:
                                             # letters, digits, . _ -; at most 64)

    [[nodes]]                                # a custom node pack, by git at an exact commit
    name = "cs-echo"                         # its folder under custom_nodes/
    git = "https://github.com/acme/cs-echo.git"
    commit = "<40 hex>"                      # a full sha: a branch or tag could move
    requirements = ["numpy>=1.25"]           # optional, see below

    [[nodes]]                                # or a local folder, copied as it is
    name = "local-tools"
    path = "nodes/local-tools"               # relative to the manifest's folder

    [[models]]
    source = "https://models.example.com/sd15.safetensors"   # https://, s3:// or hf://
    sha256 = "<64 hex>"                      # required
    folder = "checkpoints"                   # the ComfyUI model folder
    name = "sd15.safetensors"                # optional: the file name there (default:
                                             # the source's file name)

A node's pip requirements are its `requirements` list when the manifest gives one (an empty
list installs nothing), else the lines of the pack's own `requirements.txt`. Requirements are
requirement specifiers only: pip options (`-r`, `--index-url` …) are refused, so a manifest
cannot send pip elsewhere. Unknown keys are refused too, so a typo is not silently ignored.

The environment's hash is the sha256 (hex) of the canonical form: `canonical()` as JSON
with sorted keys and no spaces (`environment_hash`), where a local folder's entry also carries
the sha256 of its files, so that two workers with one hash run the same code.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from comfy_serverless.environments.errors import ManifestInvalid, redact_userinfo
from comfy_serverless.environments.requests import NAME_PATTERN
from comfy_serverless.model_sources import (
    DEFAULT_HF_ENDPOINT,
    MalformedSource,
    ModelSource,
    parse_source,
)

__all__ = ["Manifest", "ModelSpec", "NodeSpec", "environment_hash", "load_manifest",
           "parse_manifest", "requirement_line"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_FOLDER = re.compile(r"^[a-z0-9_]{1,64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GIT_URL = re.compile(r"^(https://|ssh://|git@|file://|/)")
_NODE_KEYS = frozenset({"name", "git", "commit", "path", "requirements"})
_MODEL_KEYS = frozenset({"source", "sha256", "folder", "name"})


@dataclass(frozen=True)
class NodeSpec:
    """`git` + `commit`, or `path` (absolute, resolved against the manifest's folder).
    `requirements` None: the pack's own requirements.txt."""

    name: str
    git: str | None = None
    commit: str | None = None
    path: Path | None = None
    requirements: tuple[str, ...] | None = None

    @property
    def source(self) -> str:
        """Where it comes from, as printed and recorded: a git URL without its credentials."""
        return redact_userinfo(self.git) if self.git is not None else str(self.path)

    def canonical(self) -> dict[str, Any]:
        return {"name": self.name, "git": self.git, "commit": self.commit,
                "path": None if self.path is None else str(self.path),
                "requirements": None if self.requirements is None else list(self.requirements)}


@dataclass(frozen=True)
class ModelSpec:
    source: ModelSource
    sha256: str
    folder: str
    name: str

    def canonical(self) -> dict[str, Any]:
        return {"source": self.source.identity, "sha256": self.sha256, "folder": self.folder,
                "name": self.name}


@dataclass(frozen=True)
class Manifest:
    name: str
    nodes: tuple[NodeSpec, ...] = field(default=())
    models: tuple[ModelSpec, ...] = field(default=())

    def canonical(self) -> dict[str, Any]:
        return {"name": self.name, "nodes": [node.canonical() for node in self.nodes],
                "models": [model.canonical() for model in self.models]}


def environment_hash(manifest: Manifest, local_trees: dict[str, str] | None = None) -> str:
    """sha256 of the canonical JSON; `local_trees` maps a local node's name to the sha256
    of its files (environments/nodes.py `tree_digest`)."""
    form = manifest.canonical()
    for node in form["nodes"]:
        if node["path"] is not None:
            node["tree_sha256"] = (local_trees or {}).get(node["name"])
    text = json.dumps(form, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def load_manifest(path: Path, *, hf_endpoint: str = DEFAULT_HF_ENDPOINT) -> Manifest:
    try:
        text = path.read_text()
    except OSError as error:
        raise ManifestInvalid(str(path), f"cannot be read ({error.strerror})") from error
    return parse_manifest(text, path.resolve().parent, hf_endpoint=hf_endpoint)


def parse_manifest(text: str, base_dir: Path, *,
                   hf_endpoint: str = DEFAULT_HF_ENDPOINT) -> Manifest:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ManifestInvalid("(file)", f"not valid TOML: {error}") from error
    _no_unknown_keys(data, frozenset({"name", "nodes", "models"}), "(top level)")
    nodes = tuple(_node(entry, f"nodes[{index}]", base_dir)
                  for index, entry in enumerate(_tables(data, "nodes")))
    models = tuple(_model(entry, f"models[{index}]", hf_endpoint)
                   for index, entry in enumerate(_tables(data, "models")))
    _unique([node.name for node in nodes], "nodes", "name")
    _unique([f"{model.folder}/{model.name}" for model in models], "models", "folder/name")
    return Manifest(name=_environment_name(data.get("name")), nodes=nodes, models=models)


def _tables(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ManifestInvalid(key, f"must be an array of tables ([[{key}]])")
    return value


def _node(entry: dict[str, Any], where: str, base_dir: Path) -> NodeSpec:
    _no_unknown_keys(entry, _NODE_KEYS, where)
    name = _safe_name(entry.get("name"), f"{where}.name")
    requirements = _requirements(entry.get("requirements"), f"{where}.requirements", name)
    if ("git" in entry) == ("path" in entry):
        raise ManifestInvalid(where, "give either `git` (with `commit`) or `path`")
    if "path" in entry:
        if "commit" in entry:
            raise ManifestInvalid(f"{where}.commit", "only a `git` node has a commit")
        path = Path(_string(entry["path"], f"{where}.path")).expanduser()
        return NodeSpec(name=name, path=(base_dir / path).resolve(), requirements=requirements)
    git = _string(entry["git"], f"{where}.git")
    if not _GIT_URL.match(git):
        raise ManifestInvalid(f"{where}.git", "must start with https://, ssh://, git@, "
                                              "file:// or / (a local repository)")
    commit = _string(entry.get("commit"), f"{where}.commit")
    if not _COMMIT.match(commit):
        raise ManifestInvalid(f"{where}.commit", "must be a full 40-hex commit sha "
                                                 "(a branch or tag could move)")
    return NodeSpec(name=name, git=git, commit=commit, requirements=requirements)


def _requirements(value: Any, where: str, node: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ManifestInvalid(where, "must be a list of requirement strings")
    return tuple(requirement_line(_string(item, f"{where}[{index}]"),
                                  f"{where}[{index}] of node '{node}'")
                 for index, item in enumerate(value))


def requirement_line(line: str, where: str) -> str:
    """A pip requirement specifier, checked: no options, no line breaks, no `${` (pip
    would expand an environment variable there, and send it wherever the line points)."""
    text = line.strip()
    if text.startswith("-") or "\n" in text:
        raise ManifestInvalid(where, f"{text!r}: pip options are not allowed, only "
                                     "requirement specifiers")
    if "${" in text:
        raise ManifestInvalid(where, f"{text!r}: '${{' is not allowed (pip would expand an "
                                     "environment variable there)")
    try:
        Requirement(text)
    except InvalidRequirement as error:
        raise ManifestInvalid(where, f"{text!r} is not a requirement: {error}") from error
    return text


def _model(entry: dict[str, Any], where: str, hf_endpoint: str) -> ModelSpec:
    _no_unknown_keys(entry, _MODEL_KEYS, where)
    sha256 = _string(entry.get("sha256"), f"{where}.sha256").lower()
    if not _SHA256.match(sha256):
        raise ManifestInvalid(f"{where}.sha256", "must be 64 hex digits")
    folder = _string(entry.get("folder"), f"{where}.folder")
    if not _FOLDER.match(folder) or folder == "custom_nodes":
        raise ManifestInvalid(f"{where}.folder", "must be a model folder name such as "
                                                 "checkpoints or loras")
    try:
        source = parse_source(_string(entry.get("source"), f"{where}.source"),
                              sha256=sha256, hf_endpoint=hf_endpoint)
    except MalformedSource as error:
        raise ManifestInvalid(f"{where}.source", str(error)) from error
    name = _safe_name(entry.get("name", source.basename), f"{where}.name")
    return ModelSpec(source=source, sha256=sha256, folder=folder, name=name)


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ManifestInvalid(where, "is required, as a non-empty string")
    return value


def _environment_name(value: Any) -> str:
    """The rule a submit's `environment` names it by (environments/requests.py)."""
    name = _string(value, "name")
    if not re.fullmatch(NAME_PATTERN, name):
        raise ManifestInvalid("name", f"{name!r} is not an environment name (letters, digits, "
                                      "'.', '_' and '-', starting with a letter or digit, at "
                                      "most 64)")
    return name


def _safe_name(value: Any, where: str) -> str:
    name = _string(value, where)
    if not _NAME.match(name) or ".." in name:
        raise ManifestInvalid(where, f"{name!r} is not a safe name (letters, digits, '.', '_' "
                                     "and '-', starting with a letter or digit)")
    return name


def _no_unknown_keys(entry: dict[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ManifestInvalid(where, f"unknown key(s) {', '.join(unknown)}; known: "
                                     f"{', '.join(sorted(known))}")


def _unique(names: list[str], where: str, key: str) -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise ManifestInvalid(f"{where}[{index}].{key}", f"{name!r} is given twice")
        seen.add(name)
