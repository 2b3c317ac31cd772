"""Small file-system steps: the atomic exchange used to replace a published tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from ducc.files import exchange


def test_exchange_swaps_two_trees(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old/f").write_text("old")
    (tmp_path / "new").mkdir()
    (tmp_path / "new/f").write_text("new")
    exchange(tmp_path / "new", tmp_path / "old")
    assert (tmp_path / "old/f").read_text() == "new"
    assert (tmp_path / "new/f").read_text() == "old"


def test_exchange_with_a_missing_path_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    with pytest.raises(FileNotFoundError):
        exchange(tmp_path / "a", tmp_path / "missing")
    assert (tmp_path / "a").is_dir()
