"""Two wishes for one public path are refused at `check` time, with both entries named; a
path that cannot be a file name is refused too."""

from __future__ import annotations

from pathlib import Path

import pytest

from ducc.errors import ExitCode, RecipeInvalid
from ducc.recipe.parser import load_wishlist
from tests.unit.test_cli import run

APP = "registry.test/team/app"
OTHER = "sha256:" + "ab" * 32
ANOTHER = "sha256:" + "cd" * 32


def recipe(path: Path, *inputs: str, repo: str = "unpacked.test") -> str:
    lines = ["version: 1", f"cvmfs_repo: {repo}", "input:", *[f"  - '{i}'" for i in inputs]]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def problems(*paths: str) -> list[str]:
    with pytest.raises(RecipeInvalid) as info:
        load_wishlist(list(paths))
    return info.value.problems


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (f"{APP}:1.0", f"{APP}:1.0@{OTHER}"),  # the tag, and the tag pinned to a digest
        (f"{APP}:1.0@{ANOTHER}", f"{APP}:1.0@{OTHER}"),  # one tag pinned to two digests
        (f"{APP}:1.*", f"{APP}:1.0@{OTHER}"),  # a wildcard matching a pinned tag
    ],
)
def test_two_wishes_for_one_path_are_refused_naming_both(
    tmp_path: Path, first: str, second: str
) -> None:
    (problem,) = problems(recipe(tmp_path / "r.yaml", first, second))
    assert "r.yaml:4: input[0]" in problem
    assert "r.yaml:5: input[1]" in problem
    assert first in problem
    assert second in problem
    assert f"{APP}:1.0" in problem  # the path they both claim


def test_a_collision_across_recipes_of_one_repository_is_refused(tmp_path: Path) -> None:
    a = recipe(tmp_path / "a.yaml", f"{APP}:1.0")
    b = recipe(tmp_path / "b.yaml", f"{APP}:1.0@{OTHER}")
    (problem,) = problems(a, b)
    assert "a.yaml:4" in problem
    assert "b.yaml:4" in problem


@pytest.mark.parametrize(
    "inputs",
    [
        (f"{APP}:1.*", f"{APP}:1.0"),  # the same image at the same path: not a collision
        (f"{APP}@{OTHER}", f"{APP}@{ANOTHER}"),  # digests without tags: paths of their own
        (f"{APP}:1.0", f"registry.test/team/other:1.0@{OTHER}"),
        (f"{APP}:2.*", f"{APP}:1.0@{OTHER}"),
    ],
)
def test_wishes_with_paths_of_their_own_are_accepted(
    tmp_path: Path, inputs: tuple[str, ...]
) -> None:
    assert len(load_wishlist([recipe(tmp_path / "r.yaml", *inputs)]).wishes) == 2


def test_one_path_in_two_repositories_is_no_collision(tmp_path: Path) -> None:
    a = recipe(tmp_path / "a.yaml", f"{APP}:1.0", repo="one.test")
    b = recipe(tmp_path / "b.yaml", f"{APP}:1.0@{OTHER}", repo="two.test")
    assert len(load_wishlist([a, b]).wishes) == 2


def test_a_path_longer_than_a_file_name_is_refused(tmp_path: Path) -> None:
    long_repo = "registry.test/" + "a" * 200
    fits, too_long = f"{long_repo}:{'t' * 54}", f"{long_repo}:{'t' * 55}"  # 255, 256 bytes
    (problem,) = problems(recipe(tmp_path / "r.yaml", fits, too_long))
    assert "input[1]" in problem
    assert "256 bytes" in problem


def test_check_exits_2_naming_both_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = recipe(tmp_path / "r.yaml", f"{APP}:1.0", f"{APP}:1.0@{OTHER}")
    code, _, err = run(["check", path], capsys)
    assert code == ExitCode.BAD_INPUT
    assert "input[0]" in err
    assert "input[1]" in err
