"""Loads the named SQL blocks (`-- name: x`) of queries/common.sql (statements that more than
one sub-store runs), then of the other shared files (one per sub-store, named as its module:
claims.sql for store/claims.py), then the dialect's overrides, and expands the
dialect tokens ({{row_lock}}, {{for_update}}, and {{json_items}}(CAST(x AS {{json}})) for the
elements of a JSON array as rows with `.value`). A block whose name starts with `_` is a
fragment of other statements, included where they say {{> _name}}."""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable

__all__ = ["load_queries"]

_BLOCK_HEADER = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def _parse(text: str) -> dict[str, str]:
    parts = _BLOCK_HEADER.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {
        name: body.strip().rstrip(";")
        for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


# Files that are not shared by both dialects (or that are read first).
_NOT_SHARED = frozenset({"common", "sqlite", "postgres"})

_DIALECT_TOKENS = {
    "postgres": {"{{row_lock}}": "FOR UPDATE SKIP LOCKED", "{{for_update}}": "FOR UPDATE",
                 "{{row_lock_of_c}}": "FOR UPDATE OF c SKIP LOCKED",
                 "{{json_items}}": "jsonb_array_elements_text", "{{json}}": "jsonb",
                 "{{strpos}}": "strpos"},
    # SQLite needs no row locks: its writes run in BEGIN IMMEDIATE transactions, one at a time.
    "sqlite": {"{{row_lock}}": "", "{{for_update}}": "", "{{row_lock_of_c}}": "",
               "{{json_items}}": "json_each",
               "{{json}}": "TEXT", "{{strpos}}": "instr"},
}


_INCLUDE = re.compile(r"\{\{> (_\w+)\}\}")


def _without_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


def _expand_includes(queries: dict[str, str]) -> dict[str, str]:
    """Replace each {{> _fragment}} with that block (fragments may include fragments);
    fragments (names starting with `_`) are pieces of statements, not statements."""
    def expand(sql: str, depth: int = 0) -> str:
        if depth > 8:
            raise ValueError("query fragments include each other in a loop")
        return _INCLUDE.sub(lambda match: expand(_without_comments(queries[match.group(1)]),
                                                 depth + 1), sql)

    return {name: expand(sql) for name, sql in queries.items() if not name.startswith("_")}


def _shared_queries(folder: Traversable) -> dict[str, str]:
    """Every shared file's blocks; a name defined in two of them is an error, not a silent
    override (only a dialect file overrides)."""
    queries = _parse((folder / "common.sql").read_text())
    for extra in sorted(entry.name for entry in folder.iterdir()):
        if extra.endswith(".sql") and extra.removesuffix(".sql") not in _NOT_SHARED:
            blocks = _parse((folder / extra).read_text())
            twice = sorted(queries.keys() & blocks.keys())
            if twice:
                raise ValueError(f"queries/{extra} defines {twice} again")
            queries.update(blocks)
    return queries


def load_queries(dialect: str) -> dict[str, str]:
    folder = resources.files("comfy_serverless.store") / "queries"
    queries = _shared_queries(folder)
    queries.update(_parse((folder / f"{dialect}.sql").read_text()))
    queries = _expand_includes(queries)
    for name, sql in queries.items():
        for token, replacement in _DIALECT_TOKENS[dialect].items():
            sql = sql.replace(token, replacement)
        queries[name] = sql
    return queries
