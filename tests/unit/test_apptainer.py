"""Apptainer files in a flat tree: layout, environment and runscript semantics, hostile values."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from ducc.errors import FlatTreeError, ManifestError
from ducc.repository.apptainer import runscript_text, write_apptainer_files

SH = "/bin/sh"


def hostile_values(marker: Path) -> list[str]:
    """Strings that run `touch marker` if any shell ever evaluates them."""
    return [
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"'; touch {marker}; '",
        f'"; touch {marker}; "',
        f"\\'$(touch {marker})\\'",
        f"a\nb\n$(touch {marker})\n",
        f"${{X:-$(touch {marker})}}",
        "back\\slash\\\\ \\n \\",
        "'\"'\"",
        "",
        " lead and trail ",
        "*",
        "ünï€øde",
    ]


def write(root: Path, **config: object) -> Path:
    root.mkdir(exist_ok=True)
    write_apptainer_files(
        root,
        env=config.get("env", []),  # type: ignore[arg-type]
        entrypoint=config.get("entrypoint"),  # type: ignore[arg-type]
        cmd=config.get("cmd"),  # type: ignore[arg-type]
        working_dir=config.get("working_dir"),  # type: ignore[arg-type]
    )
    return root


def source_env(root: Path, name: str, environ: dict[str, str] | None = None) -> str:
    """Source the image's env script in a clean `sh` and print one variable exactly."""
    script = root / ".singularity.d/env/10-docker2singularity.sh"
    result = subprocess.run(
        [SH, "-c", '. "$1"; eval "printf %s \\"\\${$2}\\""', "sh", str(script), name],
        env={"PATH": "/usr/bin:/bin", **(environ or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def run_script(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SH, str(path), *args],
        check=False,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )


def test_layout_matches_what_apptainer_expects(tmp_path: Path) -> None:
    root = write(tmp_path / "flat", env=["PATH=/usr/bin:/bin"], cmd=["/bin/sh"])
    meta = root / ".singularity.d"
    for name in ("exec", "run", "shell", "start", "test"):
        assert os.access(meta / "actions" / name, os.X_OK), name
    env_files = sorted(p.name for p in (meta / "env").iterdir())
    assert env_files == [
        "01-base.sh",
        "10-docker2singularity.sh",
        "90-environment.sh",
        "95-apps.sh",
        "99-base.sh",
        "99-runtimevars.sh",
    ]
    assert (meta / "libs").is_dir()
    assert os.access(meta / "runscript", os.X_OK)
    assert os.access(meta / "startscript", os.X_OK)
    links = {n: os.readlink(root / n) for n in ("singularity", ".run", ".exec", ".shell", ".test")}
    assert links == {
        "singularity": ".singularity.d/runscript",
        ".run": ".singularity.d/actions/run",
        ".exec": ".singularity.d/actions/exec",
        ".shell": ".singularity.d/actions/shell",
        ".test": ".singularity.d/actions/test",
    }
    assert os.readlink(root / "environment") == ".singularity.d/env/90-environment.sh"
    for d in ("proc", "sys", "dev", "tmp", "var/tmp", "home", "root", "etc"):
        assert (root / d).is_dir(), d
        assert not (root / d).is_symlink(), d
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    for f in ("etc/hosts", "etc/resolv.conf"):
        assert (root / f).read_text() == ""
        assert stat.S_IMODE((root / f).stat().st_mode) == 0o644


def test_every_script_is_valid_sh(tmp_path: Path) -> None:
    root = write(tmp_path / "flat", env=["A=1", "B"], entrypoint=["/x"], cmd=["y"])
    scripts = [p for p in (root / ".singularity.d").rglob("*") if p.is_file()]
    assert len(scripts) == 13
    for script in scripts:
        subprocess.run([SH, "-n", str(script)], check=True)


def test_env_values_round_trip_and_never_execute(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    values = hostile_values(marker)
    env = [f"V{i}={v}" for i, v in enumerate(values)] + [f"PATH={values[0]}:/bin"]
    root = write(tmp_path / "flat", env=env)
    for i, value in enumerate(values):
        assert source_env(root, f"V{i}") == value, value
    assert source_env(root, "PATH") == f"{values[0]}:/bin"
    assert not marker.exists()


def test_image_path_wins_but_a_callers_value_wins_for_others(tmp_path: Path) -> None:
    root = write(tmp_path / "flat", env=["PATH=/image/bin", "LANG=C.UTF-8", "EMPTY="])
    host = {"PATH": "/host/bin:/usr/bin:/bin", "LANG": "de_CH.UTF-8"}
    assert source_env(root, "PATH", host) == "/image/bin"
    assert source_env(root, "LANG", host) == "de_CH.UTF-8"
    assert source_env(root, "LANG") == "C.UTF-8"
    # ${K:-default}: an empty caller value counts as unset.
    assert source_env(root, "LANG", {"LANG": ""}) == "C.UTF-8"


def test_bare_names_and_repeats(tmp_path: Path) -> None:
    root = write(tmp_path / "flat", env=["BARE", "TWICE=first", "TWICE=last"])
    assert source_env(root, "BARE") == ""
    assert source_env(root, "BARE", {"BARE": "kept"}) == "kept"
    assert source_env(root, "TWICE") == "last"


def test_names_that_are_not_shell_identifiers_are_skipped(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad = [f"$(touch {marker})=1", "A-B=2", "1X=3", "=4", f"X;touch {marker}=5", "Ä=6"]
    root = write(tmp_path / "flat", env=[*bad, "GOOD=yes", "NUL=a\0b"])
    text = (root / ".singularity.d/env/10-docker2singularity.sh").read_text()
    for name in ("A-B", "1X", "NUL", "touch"):
        assert name not in text
    assert source_env(root, "GOOD") == "yes"
    assert not marker.exists()


@pytest.mark.parametrize(
    ("entrypoint", "cmd", "args", "expected"),
    [
        (["/bin/echo", "ep"], None, [], "ep\n"),
        (["/bin/echo", "ep"], None, ["a", "b"], "ep a b\n"),
        (None, ["/bin/echo", "cmd"], [], "cmd\n"),
        (None, ["/bin/echo", "cmd"], ["/bin/echo", "args"], "args\n"),
        (["/bin/echo", "ep"], ["cmd"], [], "ep cmd\n"),
        (["/bin/echo", "ep"], ["cmd"], ["args"], "ep args\n"),
        ([], [], ["/bin/echo", "plain"], "plain\n"),
    ],
)
def test_runscript_follows_the_oci_rule(
    tmp_path: Path, entrypoint: list[str], cmd: list[str], args: list[str], expected: str
) -> None:
    root = write(tmp_path / "flat", entrypoint=entrypoint, cmd=cmd)
    result = run_script(root / ".singularity.d/runscript", *args)
    assert (result.returncode, result.stdout) == (0, expected)


def test_runscript_without_anything_to_run_says_so(tmp_path: Path) -> None:
    root = write(tmp_path / "flat")
    result = run_script(root / ".singularity.d/runscript")
    assert result.returncode == 1
    assert "neither ENTRYPOINT nor CMD" in result.stderr


def test_runscript_passes_hostile_words_and_args_through_exactly(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    values = hostile_values(marker)
    printer = ["/usr/bin/printf", "[%s]"]
    root = write(tmp_path / "flat", entrypoint=printer + values, cmd=values, working_dir=values[0])
    default = run_script(root / ".singularity.d/runscript")
    assert default.stdout == "".join(f"[{v}]" for v in values * 2)
    given = run_script(root / ".singularity.d/runscript", *values[:3], "$HOME")
    assert given.stdout == "".join(f"[{v}]" for v in [*values, *values[:3], "$HOME"])
    assert not marker.exists()


def test_runscript_records_but_does_not_apply_working_dir(tmp_path: Path) -> None:
    text = runscript_text(["/bin/pwd"], None, "/srv/app")
    assert "OCI_WORKDIR=/srv/app" in text
    script = tmp_path / "runscript"
    script.write_text(text)
    result = subprocess.run(
        [SH, str(script)], check=False, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.stdout == f"{tmp_path}\n"


def test_a_nul_byte_in_the_command_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="NUL"):
        write(tmp_path / "flat", cmd=["/bin/echo", "a\0b"])


def test_exec_action_runs_its_arguments(tmp_path: Path) -> None:
    root = write(tmp_path / "flat")
    result = run_script(root / ".singularity.d/actions/exec", "/bin/echo", "a b", "$c")
    assert result.stdout == "a b $c\n"


def test_images_own_bind_files_and_entries_are_kept(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hosts").write_text("127.0.0.1 image\n")
    (root / "etc/hosts").chmod(0o600)
    (root / "etc/resolv.conf").symlink_to("../run/resolv.conf")
    (root / "singularity").write_text("image's own\n")
    before = (root / "etc/hosts").stat()
    write(root, cmd=["/bin/true"])
    after = (root / "etc/hosts").stat()
    assert (root / "etc/hosts").read_text() == "127.0.0.1 image\n"
    assert (after.st_ino, after.st_mode, after.st_mtime_ns) == (
        before.st_ino,
        before.st_mode,
        before.st_mtime_ns,
    )
    assert os.readlink(root / "etc/resolv.conf") == "../run/resolv.conf"
    assert not (root / "run").exists()
    assert (root / "singularity").read_text() == "image's own\n"


def test_symlinked_mount_points_are_left_alone(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "flat"
    root.mkdir()
    (root / "home").symlink_to("var/home")
    (root / "var").symlink_to(outside)
    (root / "etc").symlink_to(outside)
    (root / "tmp").write_text("a file, oddly")
    write(root, cmd=["/bin/true"])
    assert os.readlink(root / "home") == "var/home"
    assert os.readlink(root / "var") == str(outside)
    assert (root / "tmp").read_text() == "a file, oddly"
    assert list(outside.iterdir()) == []


def test_links_in_the_image_never_lead_writes_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "env").mkdir(parents=True)
    root = tmp_path / "flat"
    root.mkdir()
    (root / ".singularity.d").symlink_to(outside)
    write(root, env=["A=1"], cmd=["/bin/true"])
    assert list((outside / "env").iterdir()) == []
    assert not (root / ".singularity.d").is_symlink()
    (root / ".singularity.d/env").rename(root / "moved")
    (root / ".singularity.d/env").symlink_to(outside / "env")
    (root / ".singularity.d/runscript").unlink()
    (root / ".singularity.d/runscript").symlink_to(outside / "runscript")
    write(root, env=["A=1"], cmd=["/bin/true"])
    assert list(outside.iterdir()) == [outside / "env"]
    assert list((outside / "env").iterdir()) == []
    assert (root / ".singularity.d/runscript").is_file()
    assert not (root / ".singularity.d/runscript").is_symlink()


def test_a_shared_inode_is_replaced_not_written(tmp_path: Path) -> None:
    other_tree = tmp_path / "other" / "90-environment.sh"
    other_tree.parent.mkdir()
    other_tree.write_text("# the other tree's file\n")
    root = tmp_path / "flat"
    (root / ".singularity.d/env").mkdir(parents=True)
    os.link(other_tree, root / ".singularity.d/env/90-environment.sh")
    write(root, cmd=["/bin/true"])
    assert other_tree.read_text() == "# the other tree's file\n"
    ours = root / ".singularity.d/env/90-environment.sh"
    assert ours.stat().st_ino != other_tree.stat().st_ino
    assert "Custom environment" in ours.read_text()


def test_writing_twice_gives_the_same_tree(tmp_path: Path) -> None:
    config: dict[str, object] = {"env": ["A=1"], "entrypoint": ["/e"], "cmd": ["c"]}
    first, second = write(tmp_path / "a", **config), write(tmp_path / "b", **config)
    write(second, **config)

    def snapshot(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): os.readlink(p) if p.is_symlink() else p.read_text()
            for p in sorted(root.rglob("*"))
            if p.is_file() or p.is_symlink()
        }

    assert snapshot(first) == snapshot(second)
    assert not list((second / ".singularity.d").rglob(".*")), "temporary files left behind"


def test_missing_root_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FlatTreeError):
        write_apptainer_files(tmp_path / "absent", env=[], entrypoint=None, cmd=None)
