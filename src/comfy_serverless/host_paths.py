"""Host paths scrubbed out of text that clients will read.

Every Failure (queue/outcome.py) is scrubbed when it is made, so that no client sees the
server's folders in a status (`error`, `execution_log`), a result or a webhook: ComfyUI's
folders, the data and engine folders (elide_host_roots), home and temp paths, anything up to
one of ComfyUI's folders (`…/output/`), `file://` paths and paths after a ':' all become
`…/<name>` (scrub_host_paths). A leaf: it imports nothing of ours.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["elide_host_roots", "scrub_host_paths", "scrubbed"]

# The folders of an absolute path, POSIX or Windows, that is not the path of a URL (whose
# slashes follow a ':' , a '/' or the host name): '/srv/x/output/cat.png' keeps 'cat.png'.
# A path may follow a ':' ('path:/srv/a'), and a file:// URL's path is a host path too.
_HOST_FOLDERS = re.compile(
    r"(?:(?<=file://)|(?<![\w.~/\\-]))"
    r"(?:[A-Za-z]:)?[/\\](?:[^\s'\"`/\\:,;()\[\]{}<>]+[/\\])+")
# Everything up to one of ComfyUI's own folders, spaces included ('/srv/comfy data/output/').
_UP_TO_COMFYUI_FOLDER = re.compile(
    r"(?:(?<=file://)|(?<![\w.~/\\-]))(?:[A-Za-z]:)?[/\\](?![/\\])[^\n'\"`<>]*?[/\\]"
    r"(?:input|output|temp|models|user|custom_nodes)[/\\]")
_ELIDED = "…/"
# The roots the process was configured with (elide_host_roots): data, engine, ComfyUI folders.
_CONFIGURED_ROOTS: set[str] = set()


def elide_host_roots(roots: Iterable[str | Path]) -> None:
    """Elide these folders too, wherever they appear: the configured data and engine folders
    and ComfyUI's, whose names may hold spaces that the pattern alone would cut short."""
    _CONFIGURED_ROOTS.update(str(root).rstrip("/") for root in roots if len(str(root)) > 1)


def _known_roots() -> list[str]:
    """Folders whose names may hold spaces, which the pattern alone would cut short."""
    roots = {str(Path.home()), tempfile.gettempdir(), str(Path.cwd()), *_CONFIGURED_ROOTS}
    return sorted((root for root in roots if len(root) > 1), key=len, reverse=True)


def scrub_host_paths(text: str) -> str:
    """`text` with the folders of every host path elided; file names are kept."""
    for root in _known_roots():
        text = text.replace(root + "/", "/elided/").replace(root, "/elided")
    text = _UP_TO_COMFYUI_FOLDER.sub(_ELIDED, text)
    return _HOST_FOLDERS.sub(_ELIDED, text)


def scrubbed(value: Any) -> Any:
    """A copy of a JSON value with scrub_host_paths applied to every string in it, walked
    with a stack of its own."""
    holder: list[Any] = [value]
    pending: list[tuple[Any, Any]] = [(holder, 0)]
    while pending:
        container, key = pending.pop()
        item = container[key]
        if isinstance(item, str):
            container[key] = scrub_host_paths(item)
        elif isinstance(item, dict):
            container[key] = mapping = dict(item)
            pending.extend((mapping, name) for name in mapping)
        elif isinstance(item, list):
            container[key] = items = list(item)
            pending.extend((items, index) for index in range(len(items)))
    return holder[0]
