"""The queries loader: one name, one shared file; only a dialect file overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfy_serverless.store.sql_loader import _shared_queries, load_queries


def test_a_name_defined_in_two_shared_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "common.sql").write_text("-- name: notify\nSELECT 1;\n")
    (tmp_path / "claims.sql").write_text("-- name: claim_next\nSELECT 2;\n")
    (tmp_path / "executions.sql").write_text("-- name: claim_next\nSELECT 3;\n")
    with pytest.raises(ValueError, match=r"executions\.sql defines \['claim_next'\] again"):
        _shared_queries(tmp_path)


def test_each_shared_file_adds_its_own_names(tmp_path: Path) -> None:
    (tmp_path / "common.sql").write_text("-- name: notify\nSELECT 1;\n")
    (tmp_path / "claims.sql").write_text("-- name: claim_next\nSELECT 2;\n")
    (tmp_path / "postgres.sql").write_text("-- name: notify\nSELECT 9;\n")
    assert _shared_queries(tmp_path) == {"notify": "SELECT 1", "claim_next": "SELECT 2"}


def test_a_dialect_file_overrides_a_shared_statement() -> None:
    assert "pg_notify" in load_queries("postgres")["notify"]
    assert "pg_notify" not in load_queries("sqlite")["notify"]
