"""The static check of a custom node pack, before ComfyUI ever loads it.

Every `.py` file of the pack (outside `.git`) is parsed, never imported or run, and these
patterns are flagged, each as `<file>:<line>: <pattern>: <what>`:

- `subprocess`: an import of `subprocess` (anywhere: importing it is the intent to start
  processes, whether the call sits at the top or in a function; also by
  `__import__("subprocess")` or `importlib.import_module("subprocess")`), and a call of
  `os.system`, `os.popen`, `os.exec*`, `os.spawn*`, `os.posix_spawn*` or `pty.spawn`.
- `dynamic-code`: `eval`, `exec` or `compile` of anything but a string literal.
- `network-at-import`: a call into `socket`, `urllib.request`, `urllib3`, `http.client`,
  `requests`, `httpx`, `aiohttp`, `ftplib`, `smtplib` or `websocket(s)` made while the
  module is imported: in module code or a class body, a decorator or a default argument,
  not inside a function's body (which runs only when called).
- `unparsable`: a file that is not valid Python cannot be checked, so it is flagged.

Names are followed through imports and aliases (`import subprocess as sp`, `from os import
system`, `from urllib import request`). It is a tripwire for review, not a sandbox: code
that hides a call (`getattr(os, "sys" + "tem")`, a native extension) passes it. A pack with
no findings is recorded as verified (environments/record.py), which is what the spec's
`require_verification` policy asks of the custom nodes a workflow uses.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Finding", "scan_pack", "scan_source"]

_SHELL_PREFIXES = ("os.system", "os.popen", "os.exec", "os.spawn", "os.posix_spawn",
                   "pty.spawn")
_NETWORK_MODULES = ("socket", "urllib.request", "urllib3", "http.client", "requests", "httpx",
                    "aiohttp", "ftplib", "smtplib", "websocket", "websockets")
_IMPORTERS = frozenset({"__import__", "importlib.import_module", "builtins.__import__"})
_DYNAMIC_CODE = frozenset({"eval", "exec", "compile", "builtins.eval", "builtins.exec",
                           "builtins.compile"})


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    pattern: str
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.pattern}: {self.what}"


def scan_pack(folder: Path) -> tuple[Finding, ...]:
    """The findings of every Python file of the pack, in file and line order."""
    findings: list[Finding] = []
    for path in sorted(folder.rglob("*.py")):
        relative = path.relative_to(folder)
        if ".git" in relative.parts or not path.is_file():
            continue
        findings.extend(scan_source(path.read_bytes(), relative.as_posix()))
    return tuple(findings)


def scan_source(source: bytes | str, file: str) -> list[Finding]:
    try:
        tree = ast.parse(source, filename=file)
    except (SyntaxError, ValueError) as error:
        line = getattr(error, "lineno", None) or 1
        return [Finding(file, line, "unparsable", "not valid Python, so it cannot be checked")]
    scanner = _Scanner(file, _aliases(tree))
    scanner.visit(tree)
    return sorted(scanner.findings, key=lambda finding: finding.line)


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Each name an import binds, anywhere in the file, to the dotted name it stands for."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


class _Scanner(ast.NodeVisitor):
    def __init__(self, file: str, aliases: dict[str, str]) -> None:
        self.file, self.aliases = file, aliases
        self.findings: list[Finding] = []
        self._function_depth = 0

    def _flag(self, node: ast.AST, pattern: str, what: str) -> None:
        self.findings.append(Finding(self.file, getattr(node, "lineno", 1), pattern, what))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] == "subprocess":
                self._flag(node, "subprocess", "imports subprocess")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and (node.module or "").split(".")[0] == "subprocess":
            self._flag(node, "subprocess", "imports from subprocess")

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for part in _evaluated_at_definition(node):  # decorators and defaults run at import
            self.visit(part)
        self._function_depth += 1
        for statement in node.body:
            self.visit(statement)
        self._function_depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        self._function_depth += 1
        self.visit(node.body)
        self._function_depth -= 1

    def visit_Call(self, node: ast.Call) -> None:
        name = self._dotted(node.func)
        if name is not None:
            self._check_call(node, name)
        self.generic_visit(node)

    def _check_call(self, node: ast.Call, name: str) -> None:
        if name.startswith(_SHELL_PREFIXES) or name.split(".")[0] == "subprocess":
            self._flag(node, "subprocess", f"calls {name}")
        if name in _IMPORTERS and _first_literal(node).split(".")[0] == "subprocess":
            self._flag(node, "subprocess", f"imports subprocess by {name}")
        if name in _DYNAMIC_CODE and not _literal_first_argument(node):
            self._flag(node, "dynamic-code", f"{name.split('.')[-1]} of a non-literal")
        if self._function_depth == 0 and _is_network(name):
            self._flag(node, "network-at-import", f"calls {name} while the module is imported")

    def _dotted(self, func: ast.expr) -> str | None:
        parts: list[str] = []
        while isinstance(func, ast.Attribute):
            parts.append(func.attr)
            func = func.value
        if not isinstance(func, ast.Name):
            return None
        parts.append(self.aliases.get(func.id, func.id))
        return ".".join(reversed(parts))


def _evaluated_at_definition(node: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.AST]:
    yield from node.decorator_list
    yield from node.args.defaults
    yield from (default for default in node.args.kw_defaults if default is not None)


def _literal_first_argument(node: ast.Call) -> bool:
    return bool(node.args) and isinstance(node.args[0], ast.Constant) and isinstance(
        node.args[0].value, str | bytes)


def _first_literal(node: ast.Call) -> str:
    """The call's first argument when it is a string literal, else ''."""
    if node.args and isinstance(node.args[0], ast.Constant) and isinstance(
            node.args[0].value, str):
        return node.args[0].value
    return ""


def _is_network(name: str) -> bool:
    return any(name == module or name.startswith(module + ".") for module in _NETWORK_MODULES)
