"""The `ducc` command group, its global options, and DUCC's alternative command names."""

from __future__ import annotations

import click

from ducc import __version__, log

_state = {"debug": False}


def debug_enabled() -> bool:
    return _state["debug"]


class AliasedGroup(click.Group):
    """A group whose commands may have DUCC's alternative names (`check-image`, ...)."""

    aliases: dict[str, str] = {}  # noqa: RUF012 - filled once below, read-only afterwards

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
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
def cli(verbose: int, debug: bool, log_format: log.LogFormat) -> None:
    """Publish container images into CernVM-FS, unpacked, following YAML wishlists."""
    _state["debug"] = debug
    log.configure(verbosity=2 if debug else verbose, fmt=log_format)


def alias(name: str, command: str) -> None:
    """Let DUCC's spelling `name` run `command`."""
    AliasedGroup.aliases[name] = command
