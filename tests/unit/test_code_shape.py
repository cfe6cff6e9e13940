"""The size rule of the house, checked: no function in src/ over 40 lines, and no module over
350 (SQL files aside). A long function hides several steps that want names; a long module
holds several responsibilities that want rooms of their own (docs/architecture.md)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src"
MAX_FUNCTION_LINES = 40
MAX_MODULE_LINES = 350

Function = ast.FunctionDef | ast.AsyncFunctionDef


def _modules() -> list[Path]:
    return sorted(SOURCE.rglob("*.py"))


def _functions(tree: ast.Module) -> Iterator[Function]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _function_lines(function: Function) -> int:
    """From the `def` line (decorators aside) to its last line, docstring included."""
    return (function.end_lineno or function.lineno) - function.lineno + 1


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(SOURCE)
    return [f"{where}:{function.lineno} {function.name} has {_function_lines(function)} lines"
            for function in _functions(tree)
            if _function_lines(function) > MAX_FUNCTION_LINES]


def test_the_walk_finds_the_package() -> None:
    names = {path.name for path in _modules()}
    assert {"app.py", "settings.py", "store.py"} <= names


def test_no_function_is_over_40_lines() -> None:
    too_long = [finding for path in _modules() for finding in _long_functions(path)]
    assert too_long == [], "split these into named steps:\n" + "\n".join(too_long)


def test_no_module_is_over_350_lines() -> None:
    too_long = [f"{path.relative_to(SOURCE)} has {count} lines"
                for path in _modules()
                if (count := len(path.read_text().splitlines())) > MAX_MODULE_LINES]
    assert too_long == [], "split these by responsibility:\n" + "\n".join(too_long)


def test_the_function_rule_counts_the_whole_body() -> None:
    body = "\n".join(f"    x{n} = {n}" for n in range(MAX_FUNCTION_LINES))
    tree = ast.parse(f"def long() -> None:\n{body}\n\n\ndef short() -> None:\n    pass\n")
    lengths = {function.name: _function_lines(function) for function in _functions(tree)}
    assert lengths == {"long": MAX_FUNCTION_LINES + 1, "short": 2}
