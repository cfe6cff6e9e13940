"""The one migrations tree (shared files, per-dialect overrides) gives each dialect the same
numbered, named sequence, so existing databases' bookkeeping (schema_migrations) holds."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from comfy_serverless.store.migrations import available_migrations, migrations_in_tree

_DIALECTS = ("sqlite", "postgres")


def test_both_dialects_get_every_version_once_under_the_same_names() -> None:
    sequences = {dialect: [(m.version, m.name) for m in available_migrations(dialect)]
                 for dialect in _DIALECTS}
    assert sequences["sqlite"] == sequences["postgres"]
    versions = [version for version, _ in sequences["sqlite"]]
    assert versions == list(range(1, len(versions) + 1))
    assert sequences["sqlite"][0] == (1, "initial")


def test_an_override_exists_only_where_the_dialects_differ() -> None:
    folder = resources.files("comfy_serverless.store") / "migrations"
    for entry in (folder / "sqlite").iterdir():
        if entry.name.endswith(".sql"):
            other = folder / "postgres" / entry.name
            assert other.is_file(), f"{entry.name} overrides for SQLite only"
            assert other.read_text() != entry.read_text(), f"{entry.name} is the same twice"
            assert not (folder / entry.name).is_file(), f"{entry.name} is shared as well"


def test_a_dialect_reads_its_own_file_where_there_is_one() -> None:
    initial = {dialect: available_migrations(dialect)[0].sql for dialect in _DIALECTS}
    assert initial["sqlite"] != initial["postgres"]
    shared = {dialect: available_migrations(dialect)[1].sql for dialect in _DIALECTS}
    assert shared["sqlite"] == shared["postgres"]


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, sql in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(sql)
    return root


def test_an_override_replaces_the_shared_file_of_its_number(tmp_path: Path) -> None:
    tree = _tree(tmp_path, {"0001_initial.sql": "shared", "0002_more.sql": "both",
                            "sqlite/0001_initial.sql": "sqlite's"})
    assert [(m.version, m.name, m.sql) for m in migrations_in_tree(tree, "sqlite")] == [
        (1, "initial", "sqlite's"), (2, "more", "both")]
    assert [m.sql for m in migrations_in_tree(tree, "postgres")] == ["shared", "both"]


def test_an_override_under_another_name_is_refused(tmp_path: Path) -> None:
    tree = _tree(tmp_path, {"0001_initial.sql": "shared", "postgres/0001_renamed.sql": "pg"})
    with pytest.raises(ValueError, match="'initial' shared and 'renamed' for postgres"):
        migrations_in_tree(tree, "postgres")
