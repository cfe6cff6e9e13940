"""The scan's rules for one Python file (environments/scan.py walks the pack).

The file is parsed, never imported or run. Names are followed through imports and aliases
(`import subprocess as sp`, `from os import system`, `from urllib import request`,
`posix.system` as `os.system`) and through a call that imports a literal module
(`__import__("os").system`, `importlib.import_module("os").system`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Finding", "scan_source"]

_PROCESS_MODULES = frozenset({"subprocess", "_posixsubprocess", "pty"})
_NATIVE_MODULES = frozenset({"ctypes", "_ctypes", "cffi"})
_CODE_RUNNING_MODULES = frozenset({"runpy"})
# A star import from these binds process, native, import or network functions unseen.
_STAR_REFUSED = frozenset({"os", "posix", "nt", "builtins", "importlib", "asyncio",
                           "multiprocessing", "socket", "urllib", "http", "requests", "httpx",
                           "aiohttp", "urllib3", "ftplib", "smtplib", "websocket", "websockets",
                           *_PROCESS_MODULES, *_NATIVE_MODULES, *_CODE_RUNNING_MODULES})
_PROCESS_CALLS = ("os.system", "os.popen", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
                  "pty.spawn", "pty.fork", "asyncio.create_subprocess_")
_LOOP_PROCESS_METHODS = frozenset({"subprocess_exec", "subprocess_shell"})
_NETWORK_MODULES = ("socket", "urllib.request", "urllib3", "http.client", "requests", "httpx",
                    "aiohttp", "ftplib", "smtplib", "websocket", "websockets")
_IMPORTERS = frozenset({"__import__", "importlib.import_module", "builtins.__import__",
                        "importlib.__import__"})
# An importer given one of these literally is flagged: what it returns runs processes or
# native code (a pack has no reason to import them by a string).
_DANGEROUS_LITERALS = frozenset({"os", "posix", "nt", "builtins", "importlib",
                                 *_PROCESS_MODULES, *_NATIVE_MODULES, *_CODE_RUNNING_MODULES})
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


def scan_source(source: bytes | str, file: str) -> list[Finding]:
    try:
        tree = ast.parse(source, filename=file)
    except (SyntaxError, ValueError) as error:
        line = getattr(error, "lineno", None) or 1
        return [Finding(file, line, "unparsable", "not valid Python, so it cannot be checked")]
    aliases = _aliases(tree)
    scanner = _Scanner(file, aliases, _networking_functions(tree, aliases))
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


def _networking_functions(tree: ast.Module, aliases: dict[str, str]) -> dict[str, str]:
    """The functions defined at the file's top level whose bodies call into the network:
    {function name: the network call}. One level only: calling one of them while the module
    is imported is network at import; a chain of two helpers is not followed."""
    found: dict[str, str] = {}
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(statement):
                name = _dotted(node.func, aliases) if isinstance(node, ast.Call) else None
                if name is not None and _is_network(name):
                    found[statement.name] = name
                    break
    return found


class _Scanner(ast.NodeVisitor):
    def __init__(self, file: str, aliases: dict[str, str],
                 networking: dict[str, str]) -> None:
        self.file, self.aliases, self.networking = file, aliases, networking
        self.findings: list[Finding] = []
        self._function_depth = 0
        self._called: set[int] = set()

    def _flag(self, node: ast.AST, pattern: str, what: str) -> None:
        self.findings.append(Finding(self.file, getattr(node, "lineno", 1), pattern, what))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name, "imports")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level != 0 or not node.module:
            return
        self._check_module(node, node.module, "imports from")
        if any(alias.name == "*" for alias in node.names) and (
                node.module.split(".")[0] in _STAR_REFUSED):
            self._flag(node, "star-import", f"from {node.module} import * binds names unseen")

    def _check_module(self, node: ast.AST, module: str, how: str) -> None:
        top = module.split(".")[0]
        if top in _PROCESS_MODULES:
            self._flag(node, "subprocess", f"{how} {top}")
        elif top in _NATIVE_MODULES:
            self._flag(node, "native-code", f"{how} {top}")
        elif top in _CODE_RUNNING_MODULES:
            self._flag(node, "dynamic-code", f"{how} {top}")

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
        self._called.add(id(node.func))
        name = _dotted(node.func, self.aliases)
        if name is not None:
            self._check_call(node, name)
        elif isinstance(node.func, ast.Attribute) and node.func.attr in _LOOP_PROCESS_METHODS:
            self._flag(node, "subprocess", f"calls .{node.func.attr}")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        self._check_reference(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self._check_reference(node)
        self.generic_visit(node)

    def _check_reference(self, node: ast.Name | ast.Attribute) -> None:
        """An importer named without being called (`load = importlib.import_module`) is
        flagged: the call made through the alias would not be seen."""
        name = _dotted(node, self.aliases)
        if name in _IMPORTERS and id(node) not in self._called:
            self._flag(node, "dynamic-import", f"refers to {name} without calling it")

    def _check_call(self, node: ast.Call, name: str) -> None:
        if name.startswith(_PROCESS_CALLS) or name.split(".")[-1] in _LOOP_PROCESS_METHODS or (
                name.split(".")[0] in _PROCESS_MODULES):
            self._flag(node, "subprocess", f"calls {name}")
        if name.split(".")[0] in _NATIVE_MODULES:
            self._flag(node, "native-code", f"calls {name}")
        if name in _IMPORTERS:
            self._check_importer(node, name)
        if name in _DYNAMIC_CODE and not _literal_first_argument(node):
            self._flag(node, "dynamic-code", f"{name.split('.')[-1]} of a non-literal")
        if self._function_depth == 0:
            self._check_network_at_import(node, name)

    def _check_importer(self, node: ast.Call, name: str) -> None:
        module = _first_literal(node)
        top = (module or "").split(".")[0]
        if module is None:
            self._flag(node, "dynamic-import", f"{name} of a non-literal module")
        elif top in _PROCESS_MODULES:
            self._flag(node, "subprocess", f"imports {top} by {name}")
        elif top in _DANGEROUS_LITERALS:
            self._flag(node, "dynamic-import", f"imports {top} by {name}")

    def _check_network_at_import(self, node: ast.Call, name: str) -> None:
        if _is_network(name):
            self._flag(node, "network-at-import", f"calls {name} while the module is imported")
        elif name in self.networking:
            self._flag(node, "network-at-import", f"calls {name} (which calls "
                                                  f"{self.networking[name]}) while the module "
                                                  "is imported")


def _dotted(func: ast.expr, aliases: dict[str, str]) -> str | None:
    """The dotted name a call target stands for, or None when it is not a name: an import
    call of a literal module stands for that module."""
    parts: list[str] = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Call):
        importer = _dotted(func.func, aliases)
        module = _first_literal(func) if importer in _IMPORTERS else None
        if module is None:
            return None
        parts.append(module)
    elif isinstance(func, ast.Name):
        parts.append(aliases.get(func.id, func.id))
    else:
        return None
    name = ".".join(reversed(parts))
    for platform in ("posix.", "nt."):  # what `os` re-exports
        if name.startswith(platform):
            name = "os." + name[len(platform):]
    return name


def _evaluated_at_definition(node: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.AST]:
    yield from node.decorator_list
    yield from node.args.defaults
    yield from (default for default in node.args.kw_defaults if default is not None)


def _literal_first_argument(node: ast.Call) -> bool:
    return bool(node.args) and isinstance(node.args[0], ast.Constant) and isinstance(
        node.args[0].value, str | bytes)


def _first_literal(node: ast.Call) -> str | None:
    """The call's first argument when it is a string literal, else None."""
    if node.args and isinstance(node.args[0], ast.Constant) and isinstance(
            node.args[0].value, str):
        return node.args[0].value
    return None


def _is_network(name: str) -> bool:
    return any(name == module or name.startswith(module + ".") for module in _NETWORK_MODULES)
