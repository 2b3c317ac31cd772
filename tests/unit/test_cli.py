"""The command line as a user runs it: output, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ducc import __version__
from ducc.cli.main import main

DATA = Path(__file__).parent.parent / "data"


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--version"], capsys)
    assert (code, out.strip()) == (0, f"ducc, version {__version__}")


def test_python_dash_m_runs_the_same_command_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ducc", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0
    assert __version__ in proc.stdout


def test_check_real_wishlist(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["check", str(DATA / "images-unpacked.cern.ch.yaml")], capsys)
    assert code == 0
    assert "45 images, 1 wildcard entries, 5 registries" in out
    assert "warning:" in err
    assert "duplicate of" in err


def test_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["check", "--json", str(DATA / "images-unpacked.cern.ch.yaml")], capsys)
    assert code == 0
    summary = json.loads(out)
    (recipe,) = summary["recipes"]
    assert recipe["cvmfs_repo"] == "unpacked.cern.ch"
    assert recipe["registries"]["quay.io"] == 9
    assert len(summary["warnings"]) == 1


def test_check_bad_recipe_exits_2_with_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 2\ncvmfs_repo: ../x\ninput: [quay.io/A/b]\n")
    code, out, err = run(["check", str(bad)], capsys)
    assert code == 2
    assert out == ""
    assert f"{bad}:1: version" in err
    assert f"{bad}:2: cvmfs_repo" in err
    assert f"{bad}:3: input[0]" in err
    assert "Traceback" not in err


def test_check_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["check", str(tmp_path / "none.yaml")], capsys)
    assert code == 2
    assert "cannot read the recipe: No such file or directory" in err


def test_check_image_syntax_human_and_csv(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["check-image", "https://registry.hub.docker.com/centos:centos7"], capsys)
    assert code == 0
    assert "repository  library/centos" in out
    assert "api host    registry-1.docker.io" in out
    code, out, _ = run(["check-image-syntax", "-z", "http://127.0.0.1:5000/a/b:1"], capsys)
    assert (code, out) == (0, "http://127.0.0.1:5000/a/b:1,http,127.0.0.1:5000,a/b,1,\n")


def test_check_image_bad_reference_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["image-check", "https://bob:s3cret@quay.io/a/b"], capsys)
    assert code == 2
    assert "s3cret" not in err
    assert "carries credentials" in err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["no-such-command"], capsys)
    assert code == 2
    assert "No such command" in err
    code, _, _ = run(["check"], capsys)
    assert code == 2


@pytest.mark.parametrize(
    "args",
    [
        ["gc", "ducc-repos/demo.local", "--dry-run"],  # a path where the repo name belongs
        ["gc", "nosuch.repo", "--root", "nosuch-root"],
        ["delete-image", "--repo", "nosuch.repo", "127.0.0.1:5000/team/app:1"],
        ["delete-image", "nosuch.repo/sub", "127.0.0.1:5000/team/app:1"],
    ],
)
def test_maintenance_on_a_missing_repository_exits_2_and_creates_nothing(
    args: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run([*args, "--publisher", "dir", "--state-dir", "state"], capsys)
    assert code == 2
    assert "no repository at " + str(tmp_path) in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_prune_of_a_repository_never_published_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\ncvmfs_repo: never.published\ninput:\n  - 'http://127.0.0.1:9/team/app:1'\n"
    )
    code, _, err = run(["prune", str(recipe), "--publisher", "dir"], capsys)
    assert code == 2
    assert f"never.published: no repository at {tmp_path}/ducc-repos/never.published" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.yaml"]


def test_verify_of_a_missing_directory_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["verify", str(tmp_path / "nosuch")], capsys)
    assert code == 2
    assert "does not exist" in err
