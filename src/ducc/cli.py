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
from ducc.expansion import Expansion, expand_all
from ducc.platform import Platform, parse_platform
from ducc.recipe import Wishlist, load_wishlist
from ducc.reference import Reference, parse_reference
from ducc.registry.client import Registries
from ducc.registry.credentials import CredentialStore
from ducc.registry.manifests import ResolvedImage, resolve

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


def _registries() -> Registries:
    return Registries(credentials=CredentialStore.from_environment())


@cli.command()
@click.argument("recipes", nargs=-1, type=click.Path(dir_okay=False))
@click.option(
    "-w",
    "--wishlist",
    "more",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Another recipe (DUCC's spelling); repeatable.",
)
@click.option("-i", "--image", "images", multiple=True, help="An image or wildcard; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print images and failures as JSON.")
@click.option(
    "-j",
    "--jobs",
    default=8,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Wishes expanded at once.",
)
def expand(
    recipes: tuple[str, ...],
    more: tuple[str, ...],
    images: tuple[str, ...],
    as_json: bool,
    jobs: int,
) -> int:
    """Print every concrete image the RECIPES' wishes stand for, one per line.

    Wildcard tags are expanded against the registry's tag list; plain tags are checked to
    exist. Exit 1 if a wish failed, unless ignoreErrors covers every failed wish.
    """
    paths = [*recipes, *more]
    if not paths and not images:
        raise click.UsageError("give at least one recipe or --image")
    wishlist = load_wishlist(paths) if paths else Wishlist()
    items = [(w.reference, w.ignore_errors) for w in wishlist.wishes]
    items += [(parse_reference(text), False) for text in images]
    labels = [f"{w.location}: {w.input}" for w in wishlist.wishes] + list(images)
    with _registries() as registries:
        results = expand_all(registries, items, concurrency=jobs)
    _render_expansions(results, labels, wishlist.warnings, as_json)
    failed = [r for r in results if r.failed and not r.ignore_errors]
    return ExitCode.FAILED if failed else ExitCode.OK


def _render_expansions(
    results: list[Expansion], labels: list[str], warnings: list[str], as_json: bool
) -> None:
    every = [str(image) for r in results for image in r.images]
    if as_json:
        wishes = [
            {
                "wish": label,
                "images": [str(image) for image in r.images],
                "error": log.redact(str(r.error)) if r.error else None,
                "ignored": bool(r.error and r.ignore_errors),
            }
            for label, r in zip(labels, results, strict=True)
        ]
        click.echo(json.dumps({"images": every, "wishes": wishes, "warnings": warnings}, indent=2))
        return
    _warn(warnings)
    for line in every:
        click.echo(line)
    for label, r in zip(labels, results, strict=True):
        if r.error is not None:
            prefix = "ignored" if r.ignore_errors else "error"
            click.echo(f"{prefix}: {label}: {log.redact(str(r.error))}", err=True)


def _platform_option(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> Platform | None:
    return parse_platform(value) if value else None


@cli.command("download-manifest")
@click.argument("image")
@click.option(
    "--platform",
    callback=_platform_option,
    metavar="OS/ARCH[/VARIANT]",
    help="The platform picked from an index (default linux/amd64).",
)
@click.option("--multi-arch", is_flag=True, help="Every platform of the index.")
def download_manifest(image: str, platform: Platform | None, multi_arch: bool) -> None:
    """Print IMAGE's manifest (index) and the selected platforms' manifests as JSON."""
    ref = parse_reference(image)
    with _registries() as registries:
        resolved = resolve(registries.client(ref), ref, platform=platform, multi_arch=multi_arch)
    click.echo(json.dumps(_manifest_document(ref, resolved), indent=2))


def _manifest_document(ref: Reference, resolved: list[ResolvedImage]) -> dict[str, Any]:
    top = resolved[0].index or resolved[0].manifest
    return {
        "image": str(ref),
        "digest": str(top.digest),
        "mediaType": top.media_type,
        "manifest": json.loads(top.raw),
        "platforms": [
            {
                "platform": str(item.platform),
                "label": item.platform.label,
                "digest": str(item.manifest.digest),
                "mediaType": item.manifest.media_type,
                "manifest": json.loads(item.manifest.raw),
                "config": {
                    "digest": str(item.config.digest),
                    "size": len(item.config.raw),
                    "diff_ids": [str(d) for d in item.config.diff_ids],
                },
            }
            for item in resolved
        ],
    }


AliasedGroup.aliases.update(
    {
        "check-image": "check-image-syntax",
        "image-check": "check-image-syntax",
        "expand-wildcard": "expand",
        "get-manifest": "download-manifest",
    }
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
