"""A spool file is kept when its block ends normally and never left behind by a failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfy_serverless.spool import SpoolFile


def test_a_finished_spool_is_kept_closed_with_its_data(tmp_path: Path) -> None:
    with SpoolFile(tmp_path) as spool:
        spool.write(b"part one, ")
        spool.write(b"part two")
    assert spool.path.parent == tmp_path
    assert spool.path.read_bytes() == b"part one, part two"


def _write_half_then_fail(tmp_path: Path) -> Path:
    with SpoolFile(tmp_path) as spool:
        spool.write(b"half")
        raise RuntimeError(f"the download of {spool.path.name} broke off")


def test_a_failure_inside_the_block_removes_the_spool(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="broke off"):
        _write_half_then_fail(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_discard_and_keep_outside_a_block(tmp_path: Path) -> None:
    empty = SpoolFile(tmp_path).keep()
    assert empty.read_bytes() == b""
    dropped = SpoolFile(tmp_path)
    dropped.write(b"x")
    dropped.discard()
    assert not dropped.path.exists()
    assert list(tmp_path.iterdir()) == [empty]
