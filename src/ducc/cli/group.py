"""The `ducc` command group, its global options, and DUCC's alternative command names.

Commands are loaded when they are chosen: the group knows each command's module and one-line
help (for `ducc --help`), and imports the module, with what it needs, only to run it.
"""

from __future__ import annotations

import gc
import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import click

from ducc import __version__, log
from ducc.cli.compat import NOTIFICATIONS_GONE, RETIRED, environment_notes, retired_command

_state: dict[str, object] = {"debug": False, "temporary": None, "downloads": None}


def debug_enabled() -> bool:
    return bool(_state["debug"])


def temporary_dir() -> str | None:
    """DUCC's global `-t/--temporary-dir`, when given."""
    value = _state["temporary"]
    return value if isinstance(value, str) else None


def global_downloads_dir() -> Path | None:
    """DUCC's global `--downloads-dir`, when given before (or after) the command."""
    value = _state["downloads"]
    return Path(value) if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Lazy:
    """Where a command is defined (a module of `ducc.cli`) and the first paragraph of its
    help, as `ducc --help` shows it without importing the module."""

    module: str
    help: str


COMMANDS = {
    "check": Lazy(
        "recipes", "Validate RECIPES; report every problem at once (exit 2) or summarise them."
    ),
    "check-image-syntax": Lazy("recipes", "Parse IMAGE and print its parts."),
    "convert": Lazy(
        "convert",
        "Bring the repositories in line with RECIPES (default $RECIPE_FILE) and publish.",
    ),
    "convert-single-image": Lazy(
        "convert",
        "Convert IMAGE into the cvmfs REPOSITORY (`repo` or `repo/subdir`), no recipe needed.",
    ),
    "create-podman-store": Lazy(
        "ducc_commands",
        "DUCC's `create-podman-store`: a local podman additional image store in STORE_DIR "
        "whose one layer is IMAGE's flat tree in /cvmfs/REPOSITORY (convert the image first).",
    ),
    "delete-image": Lazy(
        "ops",
        "Unpublish one image: `delete-image --repo REPO IMAGE` or DUCC's "
        "`delete-image REPO IMAGE`.",
    ),
    "download-manifest": Lazy(
        "recipes", "Print IMAGE's manifest (index) and the selected platforms' manifests as JSON."
    ),
    "expand": Lazy(
        "recipes", "Print every concrete image the RECIPES' wishes stand for, one per line."
    ),
    "expand-wildcard": Lazy(
        "ducc_commands",
        "DUCC's `expand-wildcard IMAGE`: every tag IMAGE (a wildcard) stands for, one "
        "`scheme://registry/repository:tag` per line; with -w, every image of the wishlists.",
    ),
    "gc": Lazy(
        "ops", "Remove flat trees, chains, layers and podman entries no published image reaches."
    ),
    "loop": Lazy(
        "loop",
        "Keep the repositories in step with RECIPES (default $RECIPE_FILE, as DUCC's unit file "
        "runs `loop $RECIPE_FILE`) until stopped (SIGTERM): poll every image on a schedule, "
        "convert what changed, re-read the recipes when they change or on SIGHUP. A recipe "
        "entry that cannot be read is logged and recorded as a failed wish; the others are "
        "kept in step.",
    ),
    "prune": Lazy(
        "ops", "Unpublish images the RECIPES no longer wish for, or whose tag left the registry."
    ),
    "prune-images": Lazy(
        "ducc_commands",
        "DUCC's spelling of `ducc prune`: unpublish from REPOSITORY the images the WISHLISTs "
        "(only their `input:` is read) no longer wish for, or whose tag left the registry.",
    ),
    "status": Lazy(
        "ops",
        "Show every image ducc keeps in step: last digest, check, success, error, next check.",
    ),
    "unpack": Lazy(
        "unpack", "Pull IMAGE and write its flat root filesystem into DEST (new or empty)."
    ),
    "verify": Lazy(
        "convert",
        "Check the repositories at ROOTS (e.g. /cvmfs/unpacked.cern.ch); exit 1 on problems.",
    ),
}
# DUCC's spellings of commands.
ALIASES = {
    "v": "version",
    "check-image": "check-image-syntax",
    "image-check": "check-image-syntax",
    "get-manifest": "download-manifest",
    "garbage-collection": "gc",
}


def settle_collector() -> None:
    """After the imports: what they made lives as long as the process, so no collection
    should walk it again (`gc.freeze`). The thresholds stay: raised, they let `ducc loop`
    grow by cyclic garbage (the soak test measured 2.7 MB a minute)."""
    gc.freeze()


class LazyGroup(click.Group):
    """A group that imports a command's module when the command is chosen, and answers to
    DUCC's alternative names (`check-image`, ...). `settle`: the process is ducc's own, so
    the collector may be settled after the imports (never inside another program)."""

    settle = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in RETIRED:
            return retired_command(cmd_name)
        name = ALIASES.get(cmd_name, cmd_name)
        if name not in self.commands and name in COMMANDS:
            importlib.import_module(f"ducc.cli.{COMMANDS[name].module}")
            if self.settle:
                settle_collector()
        return super().get_command(ctx, name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        _, command, rest = super().resolve_command(ctx, args)
        return (command.name if command else None), command, rest

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click lists commands, from the help in `COMMANDS` for those not loaded."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, self._short_help(name, limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def _short_help(self, name: str, limit: int) -> str:
        command = self.commands.get(name)
        if command is not None:
            return command.get_short_help_str(limit)
        return click.Command(name, help=COMMANDS[name].help).get_short_help_str(limit)


def load_commands() -> None:
    """Import every command's module (a process that forks one child per command)."""
    for lazy in COMMANDS.values():
        importlib.import_module(f"ducc.cli.{lazy.module}")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="ducc")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "json", "console"]),
    default="auto",
    show_default=True,
    help="JSON lines off a terminal, readable lines on one.",
)
@click.option(
    "-t",
    "--temporary-dir",
    metavar="DIR",
    help="DUCC's spelling: blobs are kept under DIR/cvmfs/ducc/downloads [$DUCC_TMP_DIR].",
)
@click.option(
    "--downloads-dir",
    "downloads_dir",
    metavar="DIR",
    hidden=True,
    help="DUCC's global spelling of the conversion option --downloads-dir.",
)
@click.option(
    "-n",
    "--notification-file",
    metavar="FILE",
    help="DUCC's notification file: accepted, nothing is written (notifications are gone).",
)
def cli(
    *,
    verbose: int,
    debug: bool,
    log_format: log.LogFormat,
    temporary_dir: str | None,
    downloads_dir: str | None,
    notification_file: str | None,
) -> None:
    """Publish container images into CernVM-FS, unpacked, following YAML wishlists."""
    _state["debug"] = debug
    _state["temporary"] = temporary_dir
    _state["downloads"] = downloads_dir
    log.configure(verbosity=2 if debug else verbose, fmt=log_format)
    notes = environment_notes(os.environ)
    if notification_file is not None:
        notes.append(NOTIFICATIONS_GONE)
    for note in notes:
        click.echo(f"warning: {note}", err=True)


@cli.command()
def version() -> None:
    """Print ducc's version (DUCC's `version`, alias `v`)."""
    click.echo(__version__)
