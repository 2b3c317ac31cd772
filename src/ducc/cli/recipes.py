"""Commands about recipes and references: check, check-image-syntax, expand, download-manifest.

`check` and `check-image-syntax` read files and text only; the commands that ask a registry
import the registry client when they run."""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import TYPE_CHECKING, Any

import click

from ducc import log
from ducc.cli.common import open_registries, platform_option, warn
from ducc.cli.compat import USERNAME_IGNORED
from ducc.cli.group import cli
from ducc.errors import ExitCode
from ducc.oci.platform import Platform
from ducc.oci.reference import Reference, parse_reference
from ducc.recipe.model import Wishlist
from ducc.recipe.options import RecipeOptions, ignore_errors_from_environment
from ducc.recipe.parser import load_wishlist

if TYPE_CHECKING:
    from ducc.pipeline.expansion import Expansion
    from ducc.registry.manifests import ResolvedImage


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
    extra = ignore_errors_from_environment(os.environ)
    wishlist = load_wishlist(list(recipes), RecipeOptions(extra_ignore_errors=extra))
    summary = _wishlist_summary(wishlist)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    warn(wishlist.warnings)
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
        warn([f"{image!r} has no tag or digest; using 'latest'"])
    for key, value in fields.items():
        click.echo(f"{key:<11} {value}")
    if ref.is_wildcard:
        click.echo(f"{'wildcard':<11} yes (expanded against the registry's tag list)")
    if ref.api_host != ref.registry:
        click.echo(f"{'api host':<11} {ref.api_host}")


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
    options = RecipeOptions(
        strict=False, extra_ignore_errors=ignore_errors_from_environment(os.environ)
    )
    wishlist = load_wishlist(paths, options) if paths else Wishlist()
    items = [(w.reference, w.ignore_errors) for w in wishlist.wishes]
    items += [(parse_reference(text), False) for text in images]
    labels = [f"{w.location}: {w.input}" for w in wishlist.wishes] + list(images)
    from ducc.pipeline.expansion import expand_all

    with open_registries() as registries:
        results = expand_all(registries, items, concurrency=jobs)
    _render_expansions(results, labels, wishlist.warnings, as_json)
    for refused in wishlist.refused:
        prefix = "ignored" if refused.ignore_errors else "error"
        click.echo(f"{prefix}: {refused.problem}", err=True)
    failed = any(r.failed and not r.ignore_errors for r in results)
    failed |= any(not r.ignore_errors for r in wishlist.refused)
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
    warn(warnings)
    for line in every:
        click.echo(line)
    for label, r in zip(labels, results, strict=True):
        if r.error is not None:
            prefix = "ignored" if r.ignore_errors else "error"
            click.echo(f"{prefix}: {label}: {log.redact(str(r.error))}", err=True)


@cli.command("download-manifest")
@click.argument("image")
@click.option(
    "--platform",
    callback=platform_option,
    metavar="OS/ARCH[/VARIANT]",
    help="The platform picked from an index (default linux/amd64).",
)
@click.option("--multi-arch", is_flag=True, help="Every platform of the index.")
@click.option("-u", "--username", hidden=True, help="DUCC's user (for thin images only): ignored.")
def download_manifest(
    image: str, platform: Platform | None, multi_arch: bool, username: str | None
) -> None:
    """Print IMAGE's manifest (index) and the selected platforms' manifests as JSON."""
    if username is not None:
        warn([USERNAME_IGNORED])
    ref = parse_reference(image)
    from ducc.registry.manifests import resolve

    with open_registries() as registries:
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
