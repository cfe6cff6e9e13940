"""A custom node pack put in place: cloned at its exact commit, or copied from a folder.

Git runs with no prompt (a private repository without credentials fails instead of
waiting), `protocol.file.allow=always` (a local or bare repository, as tests and offline
hosts use), the URL after `--` (it can never be read as an option), and the checked-out
HEAD is compared with the manifest's commit. Submodules are not fetched. Git sees only the
allowed environment (environments/tool_env.py), never the service's secrets.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from comfy_serverless.environments.errors import InstallFailed, redact_userinfo
from comfy_serverless.environments.manifest import NodeSpec
from comfy_serverless.environments.scan import pack_entries
from comfy_serverless.environments.tool_env import tool_environment

__all__ = ["GIT_TIMEOUT", "fetch_node", "tree_digest"]

GIT_TIMEOUT = 600.0


def fetch_node(node: NodeSpec, target: Path) -> None:
    """Put the pack at `target` (which must not exist); InstallFailed names the step."""
    if node.git is not None and node.commit is not None:
        _clone(node.name, node.git, node.commit, target)
    elif node.path is not None:
        _copy(node.name, node.path, target)


def _clone(name: str, url: str, commit: str, target: Path) -> None:
    _git(name, "clone failed", ["clone", "--quiet", "--no-checkout", "--", url, str(target)])
    _git(name, f"checkout of {commit} failed",
         ["-C", str(target), "checkout", "--quiet", "--detach", commit])
    head = _git(name, "reading HEAD failed", ["-C", str(target), "rev-parse", "HEAD"]).strip()
    if head != commit:
        raise InstallFailed.node(name, "checkout", f"HEAD is {head}, not {commit}")
    if redact_userinfo(url) != url:  # the clone's config keeps no credentials either
        _git(name, "forgetting the credentials failed",
             ["-C", str(target), "remote", "set-url", "origin", redact_userinfo(url)])


def _git(name: str, step: str, arguments: list[str]) -> str:
    env = tool_environment({"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false"})
    try:
        result = subprocess.run(["git", "-c", "protocol.file.allow=always", *arguments],
                                capture_output=True, text=True, env=env, timeout=GIT_TIMEOUT,
                                check=False)
    except FileNotFoundError as error:
        raise InstallFailed.node(name, step, "git is not installed") from error
    except subprocess.TimeoutExpired as error:
        raise InstallFailed.node(name, step, f"git took over {GIT_TIMEOUT:.0f}s") from error
    if result.returncode != 0:
        raise InstallFailed.node(name, step, (result.stderr or result.stdout).strip()[-2000:])
    return result.stdout


def _copy(name: str, source: Path, target: Path) -> None:
    if not source.is_dir():
        raise InstallFailed.node(name, "copy failed", f"{source} is not a folder")
    try:
        shutil.copytree(source, target, symlinks=True,
                        ignore=shutil.ignore_patterns(".git", "__pycache__"))
    except OSError as error:
        raise InstallFailed.node(name, "copy failed", str(error)) from error


def tree_digest(folder: Path) -> str:
    """sha256 over the pack's entries (relative path and bytes, in path order; a symlink by
    its target, never followed), without `.git` and `__pycache__`: what a local folder's
    entry of the environment hash carries."""
    digest = hashlib.sha256()
    if not folder.is_dir():  # the copy fails then, naming the node
        return digest.hexdigest()
    for entry in pack_entries(folder, frozenset({".git", "__pycache__"})):
        digest.update(entry.relative.encode() + b"\0" + entry.kind.encode() + b"\0")
        if entry.kind == "symlink":
            digest.update(os.readlink(entry.path).encode())
        elif entry.kind == "file":
            digest.update(hashlib.sha256(entry.path.read_bytes()).digest())
    return digest.hexdigest()
