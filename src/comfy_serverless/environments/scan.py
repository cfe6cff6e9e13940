"""The static check of a custom node pack, before ComfyUI ever loads it.

Every entry of the pack (outside the top-level `.git`) is looked at without following a
symlink, and these patterns are flagged, each as `<file>:<line>: <pattern>: <what>`:

- `subprocess`: an import of `subprocess` or `pty` (anywhere: importing it is the intent to
  start processes; also by `__import__`/`importlib.import_module` of the literal name), and
  a call of `os.system`, `os.popen`, `os.exec*`, `os.spawn*`, `os.posix_spawn*`,
  `os.fork*`, `pty.spawn`, `asyncio.create_subprocess_*` or a loop's `subprocess_exec` /
  `subprocess_shell` (`posix.*` counts as `os.*`).
- `native-code`: an import or call of `ctypes` or `cffi` (which call any C function).
- `dynamic-code`: `eval`, `exec` or `compile` of anything but a string literal; `runpy`.
- `dynamic-import`: `__import__` or `importlib.import_module` of a non-literal module, or of
  `os`, `builtins`, `importlib` or a module above, or named without being called.
- `star-import`: `from os import *` (or from a process, native, network or import module):
  the names it binds could not be followed.
- `network-at-import`: a call into `socket`, `urllib.request`, `urllib3`, `http.client`,
  `requests`, `httpx`, `aiohttp`, `ftplib`, `smtplib` or `websocket(s)` made while the
  module is imported (module code, class bodies, decorators, default arguments), or, made
  the same way, a call of a function defined at the file's top level whose body makes one
  (one level of calls within the file is followed, no more).
- `unparsable`: a `.py` file that is not valid Python cannot be checked.
- `binary`: a file Python could load that is not source (`.pyc`, `.pyo`, `.so`, `.pyd`,
  `.dll`, `.dylib`, a compiled extension, or any file that starts like an ELF or Mach-O
  executable): binary code the scan cannot read.
- `symlink`: a symlink, to a file or a folder, anywhere in the pack: it is not followed, so
  what it points at is not scanned; `special-file`: a FIFO, socket or device.

It is a tripwire for the patterns above, not a sandbox: code that hides a call
(`getattr(os, "sys" + "tem")`, a helper chain deeper than one call, a file it loads by a
path it computes) passes it. A pack with no findings that the operator's manifest installed
is recorded as verified (environments/record.py), which is what the spec's
`require_verification` policy asks of the custom nodes a workflow uses. The pip
requirements of a pack are not scanned.
"""

from __future__ import annotations

import importlib.machinery
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from comfy_serverless.environments.scan_python import Finding, scan_source

__all__ = ["Finding", "PackEntry", "pack_entries", "scan_pack", "scan_source"]

_BINARY_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd", ".dll", ".dylib",
                    *importlib.machinery.EXTENSION_SUFFIXES,
                    *importlib.machinery.BYTECODE_SUFFIXES)
# ELF and Mach-O (32/64-bit, both byte orders, universal) headers; a PE has its suffix.
_EXECUTABLE_MAGIC = (b"\x7fELF", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
                     b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")


@dataclass(frozen=True)
class PackEntry:
    """One entry of a pack, as `lstat` sees it (a symlink is never followed)."""

    path: Path
    relative: str  # posix path inside the pack
    kind: str  # "file", "symlink" or "special"


def pack_entries(folder: Path, skip: frozenset[str] = frozenset({".git"})) -> Iterator[PackEntry]:
    """Every file, symlink and special file under `folder`, in path order, without
    descending into a symlinked folder; `skip` names folders left out at any depth."""
    for entry in sorted(os.scandir(folder), key=lambda item: item.name):
        if entry.name in skip:
            continue
        path, mode = Path(entry.path), entry.stat(follow_symlinks=False).st_mode
        relative = path.relative_to(folder).as_posix()
        if stat.S_ISLNK(mode):
            yield PackEntry(path, relative, "symlink")
        elif stat.S_ISDIR(mode):
            for inner in pack_entries(path, skip):
                yield PackEntry(inner.path, f"{relative}/{inner.relative}", inner.kind)
        else:
            yield PackEntry(path, relative, "file" if stat.S_ISREG(mode) else "special")


def scan_pack(folder: Path) -> tuple[Finding, ...]:
    """The findings of every entry of the pack, in file and line order."""
    findings: list[Finding] = []
    for entry in pack_entries(folder):
        findings.extend(_scan_entry(entry))
    return tuple(findings)


def _scan_entry(entry: PackEntry) -> list[Finding]:
    if entry.kind == "symlink":
        target = os.readlink(entry.path)
        return [Finding(entry.relative, 1, "symlink",
                        f"points at {target}, which the scan does not follow")]
    if entry.kind == "special":
        return [Finding(entry.relative, 1, "special-file", "not a regular file")]
    if entry.relative.endswith(_BINARY_SUFFIXES) or _starts_like_an_executable(entry.path):
        return [Finding(entry.relative, 1, "binary", "binary code the scan cannot read")]
    if entry.relative.endswith(".py"):
        return scan_source(entry.path.read_bytes(), entry.relative)
    return []


def _starts_like_an_executable(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4).startswith(_EXECUTABLE_MAGIC)
