"""DUCC's spellings on ducc's command line, where no registry is needed: `version`, retired
commands, global flags after the command, DUCC's environment, gc's flags and phases,
`prune-images` and `expand-wildcard` usage, `RECIPE_FILE`, `convert --strict`."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from ducc import __version__
from ducc.cli.compat import downloads_from_temporary, lift_global_options
from tests.support.ducc_layout import DuccRepository, chain_ids, hexof
from tests.support.images import Image, file, make_image, make_layer
from tests.unit.test_cli import run

HOST = "registry.test"
KEPT = make_image([make_layer([file("kept", "1")])])
GONE = make_image([make_layer([file("gone", "1")])])
OTHER = make_image([make_layer([file("other", "1")])])
REFUSED_ONLY = "cvmfs_repo: local.test\ninput:\n  - 'quay.io/Upper/case:1'\n"


@pytest.mark.parametrize("spelling", ["version", "v"])
def test_version_prints_the_version_alone(
    capsys: pytest.CaptureFixture[str], spelling: str
) -> None:
    assert run([spelling], capsys)[:2] == (0, f"{__version__}\n")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["daemon", "--rest-api-port", "8080"], "`ducc loop RECIPE` is the service"),
        (["wish", "add", "quay.io/a/b:1", "repo"], "list images in a recipe"),
        (["unpack-image", "quay.io/a/b:1", "repo"], "ducc convert-single-image IMAGE REPO"),
        (["convert-singularity-image", "-r", "repo", "x"], "ducc convert-single-image IMAGE"),
    ],
)
def test_retired_commands_say_what_replaced_them(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    code, _, err = run(argv, capsys)
    assert code == 2
    assert f"`{argv[0]}` is not a ducc command" in err
    assert fragment in err


@pytest.mark.parametrize(
    ("argv", "lifted"),
    [
        (["convert", "r.yaml", "-t", "/scratch"], ["-t", "/scratch", "convert", "r.yaml"]),
        (["-v", "loop", "--temporary-dir=/s", "r"], ["-v", "-t", "/s", "loop", "r"]),
        (["convert", "-n", "/tmp/n.json", "r"], ["-n", "/tmp/n.json", "convert", "r"]),
        (["gc", "-n", "repo"], ["gc", "-n", "repo"]),  # gc's -n is DUCC's old --dry-run
        (["--log-format", "json", "gc", "repo", "-t", "/s"], None),
        (["check", "--", "-t"], ["check", "--", "-t"]),
        (["convert", "r", "--downloads-dir", "/d"], ["--downloads-dir", "/d", "convert", "r"]),
    ],
)
def test_ducc_s_global_flags_after_the_command_are_moved_before_it(
    argv: list[str], lifted: list[str] | None
) -> None:
    expected = lifted or ["--log-format", "json", "-t", "/s", "gc", "repo"]
    assert lift_global_options(argv) == expected


def test_temporary_dir_holds_ducc_s_downloads_below_it_never_itself() -> None:
    assert downloads_from_temporary("/scratch", {"DUCC_TMP_DIR": "/other"}) == Path(
        "/scratch/cvmfs/ducc/downloads"
    )
    assert downloads_from_temporary(None, {"DUCC_TMP_DIR": "/other"}) == Path(
        "/other/cvmfs/ducc/downloads"
    )
    assert downloads_from_temporary(None, {}) is None


def _recipe(tmp_path: Path, text: str = REFUSED_ONLY) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return str(path)


def test_notification_file_and_gone_variables_are_said_once_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUCC_OUTPUT_REGISTRY_PASS", "Pw-thin-91d2")
    notes = tmp_path / "notifications.json"
    code, _, err = run(["check", "-n", str(notes), _recipe(tmp_path, _good())], capsys)
    assert code == 0, err
    assert err.count("notifications are gone") == 1
    assert "DUCC_OUTPUT_REGISTRY_PASS: thin images are gone" in err
    assert "Pw-thin-91d2" not in err
    assert not notes.exists()


def _good() -> str:
    return "version: 1\ncvmfs_repo: local.test\ninput: ['quay.io/team/app:1']\n"


def test_convert_reads_recipe_file_and_reports_a_refused_entry_as_a_failed_wish(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECIPE_FILE", _recipe(tmp_path))
    args = ["--publisher", "dir", "--root", str(tmp_path / "repo"), "--state-dir", str(tmp_path)]
    code, out, err = run(["convert", *args, "-d", "--max-concurrent-downloads", "0"], capsys)
    assert code == 1
    assert "1 failed" in out
    assert f"quay.io/Upper/case:1: {tmp_path}/recipe.yaml:3: input[0]:" in out
    assert "must be lowercase" in out
    assert "-d/--skip-layers is deprecated in DUCC and has no effect" in err
    assert "no 'version' key: read as version 1" in err
    strict = run(["convert", "--strict", *args], capsys)
    assert strict[0] == 2
    assert "1 problem in the recipe" in strict[2]


def test_convert_without_recipe_or_recipe_file_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECIPE_FILE", raising=False)
    monkeypatch.delenv("DUCC_RECIPE_FILE", raising=False)
    code, _, err = run(["convert"], capsys)
    assert code == 2
    assert "give RECIPE (or set RECIPE_FILE" in err


def test_usage_of_prune_images_and_expand_wildcard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["prune-images", "local.test"], capsys)
    assert (code, "no wishlists" in err) == (2, True)
    code, _, err = run(["prune-images", "local.test", "https://example.org/w.yaml"], capsys)
    assert (code, "is remote: ducc reads wishlists from files only" in err) == (2, True)
    (tmp_path / "ducc-prune.yaml").write_text("wishlists: 3\n")
    code, _, err = run(["prune-images", "local.test"], capsys)
    assert (code, "'wishlists' must be a list" in err) == (2, True)
    code, _, err = run(["expand-wildcard"], capsys)
    assert (code, "give IMAGE or at least one -w/--wishlist" in err) == (2, True)


# --- gc -----------------------------------------------------------------------------------


def _gc_repo(tmp_path: Path, age_days: float) -> tuple[Path, list[str]]:
    repo = DuccRepository(tmp_path / "repo", HOST)
    repo.publish("team/app", "1", KEPT)
    for image in (GONE, OTHER):  # products of images DUCC unpublished
        repo.layer(image.layers[0], image.config_digest)
    repo.chains(GONE)
    then = time.time() - age_days * 86400
    for path in (repo.root / ".layers").rglob("layers.json"):
        os.utime(path, (then, then))
    args = ["--publisher", "dir", "--root", str(repo.root), "--state-dir", str(tmp_path / "s")]
    return repo.root, args


def _layer(image: Image) -> str:
    blob = hexof(image.layers[0].digest)
    return f".layers/{blob[:2]}/{blob}"


def test_a_bare_grace_period_is_days_as_in_ducc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, args = _gc_repo(tmp_path, age_days=2)
    code, out, _ = run(["gc", "local.test", *args, "-n", "--grace-period", "30"], capsys)
    assert code == 0
    assert out.startswith("would remove 0 products")
    assert "2 kept by the grace period" in out
    code, out, _ = run(["gc", "local.test", *args, "-n", "--grace-period", "1"], capsys)
    assert out.startswith("would remove 2 products")
    code, out, _ = run(["garbage-collection", "local.test", *args, "--grace-period", "36h"], capsys)
    assert out.startswith("removed 2 products")
    chain = chain_ids(GONE)[0]
    assert "kept 1 unreachable chains ducc did not build" in out
    assert (root / ".chains" / chain[:2] / chain).is_dir()
    assert not (root / _layer(GONE)).exists()
    argv = ["gc", "local.test", *args, "-n", "--remove-unknown-chains", "--grace-period", "0"]
    code, out, _ = run(argv, capsys)
    assert f"  .chains/{chain[:2]}/{chain}" in out.splitlines()[1:]


def test_scan_only_writes_a_list_that_delete_only_removes_no_more_than(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, args = _gc_repo(tmp_path, age_days=10)
    listed = tmp_path / "gc.list"
    code, out, _ = run(["gc", "local.test", *args, "--scan-only", "--db-path", str(listed)], capsys)
    assert code == 0
    assert out.startswith("would remove 2 products")
    paths = [line for line in listed.read_text().splitlines() if not line.startswith("#")]
    assert sorted(paths) == sorted([_layer(GONE), _layer(OTHER)])
    assert (root / _layer(GONE)).is_dir()
    listed.write_text(f"# reviewed\n{_layer(OTHER)}\n")
    run(["gc", "local.test", *args, "--delete-only", "--db-path", str(listed)], capsys)
    assert not (root / _layer(OTHER)).exists()
    assert (root / _layer(GONE)).is_dir()


def test_gc_phase_flags_exclude_each_other_and_ducc_s_database_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, args = _gc_repo(tmp_path, age_days=10)
    code, _, err = run(["gc", "local.test", *args, "--scan-only", "--delete-only"], capsys)
    assert (code, "exclude each other" in err) == (2, True)
    database = tmp_path / "gc_local.test.db"
    sqlite3.connect(database).execute("CREATE TABLE gc_paths (path TEXT)").connection.commit()
    command = ["gc", "local.test", *args, "--delete-only", "--db-path", str(database)]
    code, _, err = run(command, capsys)
    assert (code, "is DUCC's SQLite database" in err) == (2, True)
    assert (root / _layer(GONE)).is_dir()
