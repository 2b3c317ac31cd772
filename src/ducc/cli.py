"""The command line: parse options, call one function, render the result, map errors to exits.

Exit codes: 0 ok, 1 some work failed, 2 bad input or usage, 130 interrupted. Tracebacks
only with `--debug`. Nothing imports this module.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections import Counter
from typing import Any, NoReturn

import click

from ducc import __version__, log
from ducc.errors import DuccError, ExitCode
from ducc.recipe import Wishlist, load_wishlist
from ducc.reference import parse_reference

_debug = False


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
    global _debug  # noqa: PLW0603 - the entry point reads it after the command has run
    _debug = debug
    log.configure(verbosity=2 if debug else verbose, fmt=log_format)


def _warn(lines: list[str]) -> None:
    for line in lines:
        click.echo(f"warning: {line}", err=True)


def _wishlist_summary(wishlist: Wishlist) -> dict[str, Any]:
    recipes = []
    for recipe in wishlist.recipes:
        registries = Counter(w.reference.registry for w in recipe.wishes)
        recipes.append(
            {
                "recipe": recipe.path,
                "cvmfs_repo": str(recipe.cvmfs_repo),
                "images": sum(1 for w in recipe.wishes if not w.reference.is_wildcard),
                "wildcards": sum(1 for w in recipe.wishes if w.reference.is_wildcard),
                "registries": dict(sorted(registries.items())),
                "wishes": [str(w.reference) for w in recipe.wishes],
            }
        )
    return {"recipes": recipes, "warnings": wishlist.warnings}


@cli.command()
@click.argument("recipes", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def check(recipes: tuple[str, ...], as_json: bool) -> None:
    """Validate RECIPES; report every problem at once (exit 2) or summarise them."""
    wishlist = load_wishlist(list(recipes))
    summary = _wishlist_summary(wishlist)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    _warn(wishlist.warnings)
    for item in summary["recipes"]:
        registries = ", ".join(f"{name} ({n})" for name, n in item["registries"].items())
        click.echo(
            f"{item['recipe']}: {item['cvmfs_repo']}: {item['images']} images, "
            f"{item['wildcards']} wildcard entries, {len(item['registries'])} registries"
        )
        click.echo(f"  registries: {registries}")


@cli.command("check-image-syntax")
@click.argument("image")
@click.option(
    "-z", "--machine-friendly", is_flag=True, help="One CSV line: name,scheme,registry,..."
)
def check_image_syntax(image: str, machine_friendly: bool) -> None:
    """Parse IMAGE and print its parts."""
    ref = parse_reference(image)
    fields = {
        "name": str(ref),
        "scheme": ref.scheme,
        "registry": ref.registry,
        "repository": ref.repository,
        "tag": ref.tag or "",
        "digest": str(ref.digest) if ref.digest else "",
    }
    if machine_friendly:
        click.echo(",".join(fields.values()))
        return
    if ref.tag_is_default:
        _warn([f"{image!r} has no tag or digest; using 'latest'"])
    for key, value in fields.items():
        click.echo(f"{key:<11} {value}")
    if ref.is_wildcard:
        click.echo(f"{'wildcard':<11} yes (expanded against the registry's tag list)")
    if ref.api_host != ref.registry:
        click.echo(f"{'api host':<11} {ref.api_host}")


AliasedGroup.aliases.update(
    {"check-image": "check-image-syntax", "image-check": "check-image-syntax"}
)


def _run(argv: list[str] | None) -> int:
    try:
        result = cli.main(args=argv, prog_name="ducc", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return ExitCode.INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return ExitCode.BAD_INPUT if exc.exit_code == 2 else exc.exit_code
    except DuccError as exc:
        click.echo(f"error: {log.redact(exc.message)}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        if _debug:
            traceback.print_exc()
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return ExitCode.INTERRUPTED
    return result if isinstance(result, int) else ExitCode.OK


def main(argv: list[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    try:
        code = _run(argv)
    except Exception as exc:  # an unexpected bug: say so, show the traceback only on request
        click.echo(f"error: unexpected {type(exc).__name__}: {log.redact(str(exc))}", err=True)
        if _debug:
            traceback.print_exc()
        else:
            click.echo("hint: run again with --debug for the traceback", err=True)
        code = ExitCode.FAILED
    sys.exit(int(code))
