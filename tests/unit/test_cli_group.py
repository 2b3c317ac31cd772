"""The `ducc` group loads a command only when it runs: `--version`, `--help` and `check` import
click and a few small modules, never the registry client, the pipeline or their libraries.

What is imported is checked, not how long it takes (timings are bench/startup.py's).
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

from ducc.cli.group import ALIASES, COMMANDS, cli, load_commands

DATA = Path(__file__).parent.parent / "data"
# What `--version` and `--help` may import of ducc: the entry point and the group.
STARTUP = {"ducc", "ducc.cli", "ducc.cli.main", "ducc.cli.group", "ducc.cli.compat"}
STARTUP |= {"ducc.errors", "ducc.log"}
LIBRARIES = ("requests", "urllib3", "rich", "structlog", "tenacity", "isal", "zstandard")
LATER_PACKAGES = ("registry", "layers", "publish", "repository", "pipeline", "service")
_PROBE = """
import json, sys
from ducc.cli.main import main
try:
    main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def imported_by(args: list[str], tmp_path: Path) -> tuple[int, set[str]]:
    """The exit code of `ducc ARGS` in a fresh interpreter, and every module it imported."""
    report = tmp_path / "modules.json"
    subprocess.run(
        [sys.executable, "-c", _PROBE, str(report), *args], capture_output=True, check=False
    )
    found = json.loads(report.read_text())
    return found["code"], set(found["modules"])


def top_levels(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_version_and_help_import_the_group_and_nothing_of_the_work(tmp_path: Path) -> None:
    for args in (["--version"], ["--help"], ["-h"]):
        code, modules = imported_by(args, tmp_path)
        assert code == 0, args
        assert {m for m in modules if m.split(".")[0] == "ducc"} <= STARTUP, args
        assert not top_levels(modules) & {*LIBRARIES, "yaml"}, args


def test_check_imports_the_recipe_reader_only(tmp_path: Path) -> None:
    code, modules = imported_by(["check", str(DATA / "images-unpacked.cern.ch.yaml")], tmp_path)
    assert code == 0
    assert {"ducc.recipe.parser", "yaml"} <= modules
    assert not top_levels(modules) & set(LIBRARIES)
    later = [m for m in modules if m.startswith(tuple(f"ducc.{p}." for p in LATER_PACKAGES))]
    assert later == ["ducc.registry.settings"]  # DUCC_REGISTRY_* parsing: one dataclass


def test_a_command_loads_its_own_module_and_not_the_others(tmp_path: Path) -> None:
    code, modules = imported_by(["check-image-syntax", "quay.io/a/b:1"], tmp_path)
    assert code == 0
    assert "ducc.cli.recipes" in modules
    assert not {"ducc.cli.convert", "ducc.cli.loop", "ducc.cli.ops"} & modules


def test_every_command_is_listed_with_its_module_and_help() -> None:
    """`ducc --help` shows `COMMANDS`' help for commands it did not load: it must be theirs."""
    load_commands()
    assert set(cli.commands) == {*COMMANDS, "version"}
    for name, lazy in COMMANDS.items():
        command = cli.commands[name]
        assert command.callback is not None
        assert command.callback.__module__ == f"ducc.cli.{lazy.module}", name
        first_paragraph = inspect.cleandoc(command.help or "").split("\n\n")[0]
        assert lazy.help.split() == first_paragraph.split(), name
    assert set(ALIASES.values()) <= set(cli.commands)


_COLLECTOR = """
import atexit, gc, sys
from ducc.cli.main import main
atexit.register(lambda: print(gc.get_freeze_count() > 0))
sys.argv = ["ducc", *sys.argv[1:]]
main({argv})
"""


def _collector_after(argv: str, *args: str) -> str:
    run = subprocess.run(
        [sys.executable, "-c", _COLLECTOR.format(argv=argv), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    return run.stdout.strip().splitlines()[-1]


def test_the_collector_is_settled_only_in_a_process_of_ducc_s_own() -> None:
    """The console script freezes what its imports made; called from another program
    (`main(argv)`), ducc leaves that program's collector alone."""
    image = "quay.io/a/b:1"
    assert _collector_after("", "check-image-syntax", image) == "True"
    assert _collector_after("sys.argv[1:]", "check-image-syntax", image) == "False"
