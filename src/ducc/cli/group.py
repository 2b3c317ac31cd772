"""The `ducc` command group, its global options, and DUCC's alternative command names."""

from __future__ import annotations

import os
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


class AliasedGroup(click.Group):
    """A group whose commands may have DUCC's alternative names (`check-image`, ...)."""

    aliases: dict[str, str] = {}  # noqa: RUF012 - filled once below, read-only afterwards

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in RETIRED:
            return retired_command(cmd_name)
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        _, command, rest = super().resolve_command(ctx, args)
        return (command.name if command else None), command, rest


@click.group(cls=AliasedGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


def alias(name: str, command: str) -> None:
    """Let DUCC's spelling `name` run `command`."""
    AliasedGroup.aliases[name] = command


alias("v", "version")
