"""A node pack's pip requirements, installed into the engine's venv without changing what
ComfyUI runs on.

The engine's pins are torch, torchvision and torchaudio, ComfyUI's own requirements
(`ComfyUI/requirements.txt`), and everything those depend on, each at the version installed
now (read from the engine's Python). They become a pip constraints file, and a manifest
that would change one of them is refused before anything is installed, twice over:

1. statically: a requirement that names a pinned package with a specifier its installed
   version does not satisfy (`torch==2.0.0`), or with a URL, is refused outright;
2. by pip's resolver: `pip install --dry-run --report` of every node's requirements
   together, under the constraints, must succeed (a dependency that needs another torch
   makes it fail, and so do two packs whose requirements conflict) and must plan to install
   no pinned package. A failure names the nodes whose packages pip's output names, else
   the step `requirements (all nodes)`.

Only then does pip install all of them in one run, under the same constraints.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion

from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.environments.errors import InstallFailed, ManifestInvalid
from comfy_serverless.environments.manifest import requirement_line
from comfy_serverless.environments.tool_env import tool_environment

__all__ = ["EnginePins", "pack_requirements", "strip_comment"]

_PIP_TIMEOUT = 1800.0
_PINNED_STEP = "requirements (checked under the engine's pins)"
_COMMENT = re.compile(r"(^|\s+)#.*$")
_PINNED_ROOTS = ("torch", "torchvision", "torchaudio")
# Run by the engine's Python: the installed closure of the roots, {name: version}.
_PROBE = """
import json, re, sys
from importlib import metadata
pins, todo = {}, json.loads(sys.argv[1])
while todo:
    name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
    if name in pins:
        continue
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        continue
    pins[name] = dist.version
    for line in dist.requires or []:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if match and not re.search(r"extra\\s*==", line):
            todo.append(match.group(0))
print(json.dumps(pins))
"""


def strip_comment(line: str) -> str:
    """pip's rule: a `#` at the start or after whitespace starts a comment, so the one in
    `pkg @ git+https://host/repo#subdirectory=x` does not."""
    return _COMMENT.sub("", line).strip()


def pack_requirements(name: str, given: Sequence[str] | None, pack: Path) -> tuple[str, ...]:
    """The manifest's list when it gives one, else the pack's requirements.txt."""
    if given is not None:
        return tuple(given)
    path = pack / "requirements.txt"
    if not path.is_file():
        return ()
    lines = [strip_comment(line) for line in path.read_text().splitlines()]
    try:
        return tuple(requirement_line(line, f"requirements.txt line {number}")
                     for number, line in enumerate(lines, 1) if line)
    except ManifestInvalid as error:
        raise InstallFailed.node(name, "requirements", str(error)) from error


class EnginePins:
    """The engine's pinned packages, and pip run by its Python under them."""

    def __init__(self, layout: EngineLayout, work_dir: Path) -> None:
        self.layout, self.work_dir = layout, work_dir
        self.pins = self._read_pins()
        self.constraints = work_dir / "constraints.txt"
        work_dir.mkdir(parents=True, exist_ok=True)
        self.constraints.write_text(
            "".join(f"{name}=={version}\n" for name, version in sorted(self.pins.items())))

    def _read_pins(self) -> dict[str, str]:
        roots = [*_PINNED_ROOTS, *_requirement_names(self.layout.comfyui_dir / "requirements.txt")]
        result = subprocess.run([str(self.layout.python), "-c", _PROBE, json.dumps(roots)],
                                capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0:
            raise InstallFailed("environment", "reading the engine's packages",
                                result.stderr.strip()[-2000:])
        return {str(name): str(version) for name, version in json.loads(result.stdout).items()}

    def refuse_changes(self, requirements: Mapping[str, Sequence[str]]) -> None:
        """InstallFailed when installing every node's requirements together would change a
        pinned package, or when they conflict with each other."""
        for node, lines in requirements.items():
            for line in lines:
                self._check_statically(node, Requirement(line))
        if any(requirements.values()):
            self._check_with_pip(requirements)

    def _check_statically(self, node: str, requirement: Requirement) -> None:
        name = canonicalize_name(requirement.name)
        installed = self.pins.get(name)
        if installed is None or (requirement.marker and not requirement.marker.evaluate()):
            return
        try:
            satisfied = requirement.url is None and requirement.specifier.contains(
                installed, prereleases=True)
        except InvalidVersion:
            satisfied = False
        if not satisfied:
            raise InstallFailed.node(node, "requirements",
                                     f"'{requirement}' would change {name} {installed}, which "
                                     "the engine pins (torch and ComfyUI's requirements)")

    def _check_with_pip(self, requirements: Mapping[str, Sequence[str]]) -> None:
        report = self.work_dir / "report.json"
        self._pip(requirements, "--dry-run", "--report", str(report))
        planned = json.loads(report.read_text()).get("install", [])
        report.unlink(missing_ok=True)
        for item in planned:
            name = canonicalize_name(item["metadata"]["name"])
            if name in self.pins:
                detail = (f"pip would install {name} {item['metadata']['version']} over the "
                          f"pinned {self.pins[name]}")
                raise _failure(requirements, detail, _PINNED_STEP)

    def install(self, requirements: Mapping[str, Sequence[str]]) -> None:
        """One pip run over every node's requirements, as they were checked."""
        if any(requirements.values()):
            self._pip(requirements)

    def _pip(self, requirements: Mapping[str, Sequence[str]], *options: str) -> None:
        listing = self.work_dir / "requirements.txt"
        lines = dict.fromkeys(line for node_lines in requirements.values()
                              for line in node_lines)
        listing.write_text("".join(f"{line}\n" for line in lines))
        command = [str(self.layout.python), "-m", "pip", "install", "--disable-pip-version-check",
                   "--no-input", *options, "-c", str(self.constraints), "-r", str(listing)]
        env = tool_environment()  # never the service's secrets; no VIRTUAL_ENV either
        step = _PINNED_STEP if options else "requirements"
        try:
            result = subprocess.run(command, capture_output=True, text=True, env=env,
                                    timeout=_PIP_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as error:
            raise _failure(requirements, "pip timed out", step) from error
        if result.returncode != 0:
            raise _failure(requirements, _pip_complaint(result.stdout + result.stderr), step)


def _failure(requirements: Mapping[str, Sequence[str]], detail: str,
             step: str) -> InstallFailed:
    """The failure of a pip run over all nodes, naming the nodes whose requirements pip's
    output names (one node, or several that conflict), else all of them."""
    involved = [node for node, lines in requirements.items()
                if any(_names(Requirement(line).name, detail) for line in lines)]
    if len(involved) == 1:
        return InstallFailed.node(involved[0], step, detail)
    if involved:
        return InstallFailed(f"nodes {', '.join(repr(node) for node in involved)}", step,
                             detail)
    return InstallFailed("environment", step.replace("requirements", "requirements (all nodes)",
                                                     1), detail)


def _names(package: str, text: str) -> bool:
    """Whether pip's output names the package (any spelling of `-`, `_`, `.`)."""
    spelled = r"[-_.]".join(re.escape(part) for part in re.split(r"[-_.]+", package))
    return re.search(rf"(?<![\w.-]){spelled}(?![\w-])", text, re.IGNORECASE) is not None


def _pip_complaint(output: str) -> str:
    """What pip said went wrong: its ERROR lines and the conflict it explains, not the
    progress of what it collected."""
    lines = output.strip().splitlines()
    start = next((index for index, line in enumerate(lines)
                  if line.startswith(("ERROR", "The conflict is caused by"))), 0)
    return "\n".join(lines[start:])[-3000:]


def _requirement_names(path: Path) -> list[str]:
    names = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        text = strip_comment(line)
        if text and not text.startswith("-"):
            names.append(Requirement(text).name)
    return names
