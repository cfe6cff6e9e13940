"""Custom node packs for the environment tests: a tiny node class written to a folder,
and a local bare git repository holding it, as a manifest's `git` source."""

from __future__ import annotations

import subprocess
from pathlib import Path

# One node: an image in, the image inverted out. No weights, quick on the CPU.
ECHO_NODE = '''\
class CSTestEcho:
    """An environment test's custom node: the image, inverted."""

    CATEGORY = "comfy-serverless/tests"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "echo"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    def echo(self, image):
        return (1.0 - image,)


NODE_CLASS_MAPPINGS = {"CSTestEcho": CSTestEcho}
'''

# The same, but it starts a process while ComfyUI imports it.
SUBPROCESS_AT_IMPORT = '''\
import subprocess

VERSION = subprocess.run(["git", "--version"], capture_output=True).stdout

NODE_CLASS_MAPPINGS = {}
'''


def write_pack(folder: Path, source: str = ECHO_NODE, *, requirements: str | None = None
               ) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text("from .nodes import NODE_CLASS_MAPPINGS\n")
    (folder / "nodes.py").write_text(source)
    if requirements is not None:
        (folder / "requirements.txt").write_text(requirements)
    return folder


def bare_repository(root: Path, source: str = ECHO_NODE, *,
                    requirements: str | None = None) -> tuple[str, str]:
    """A bare repository at `root/pack.git` whose one commit holds a pack: (its path as a
    git URL, the commit's sha)."""
    work = write_pack(root / "work", source, requirements=requirements)
    _git(work, "init", "--quiet", "--initial-branch=main")
    _git(work, "add", ".")
    _git(work, "-c", "user.name=tests", "-c", "user.email=tests@localhost", "commit",
         "--quiet", "-m", "a tiny node pack")
    commit = _git(work, "rev-parse", "HEAD").strip()
    bare = root / "pack.git"
    _git(root, "clone", "--quiet", "--bare", str(work), str(bare))
    return str(bare), commit


def _git(cwd: Path, *arguments: str) -> str:
    return subprocess.run(["git", *arguments], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout


def manifest_text(name: str, *nodes: str, models: str = "") -> str:
    return f'name = "{name}"\n' + "".join(nodes) + models


def git_node(name: str, url: str, commit: str, requirements: list[str] | None = None) -> str:
    line = "" if requirements is None else f"requirements = {requirements!r}\n".replace(
        "'", '"')
    return f'\n[[nodes]]\nname = "{name}"\ngit = "{url}"\ncommit = "{commit}"\n{line}'


def path_node(name: str, path: Path, requirements: list[str] | None = None) -> str:
    line = "" if requirements is None else f"requirements = {requirements!r}\n".replace(
        "'", '"')
    return f'\n[[nodes]]\nname = "{name}"\npath = "{path}"\n{line}'
