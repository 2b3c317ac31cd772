"""DUCC's commands whose arguments differ from ducc's own: `prune-images REPO [WISHLIST...]`,
`expand-wildcard [IMAGE] [-w WISHLIST]... [-o FILE]` and `create-podman-store IMAGE REPO DIR`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
import yaml

from ducc.cli.common import open_registries, platform_option, warn
from ducc.cli.group import cli
from ducc.cli.ops import _repo, run_prune
from ducc.cli.options import publisher_options
from ducc.errors import ExitCode, InputError
from ducc.oci.platform import Platform
from ducc.oci.reference import TagPattern, parse_reference
from ducc.pipeline.expansion import Expansion, expand_all
from ducc.recipe.model import Wishlist
from ducc.recipe.options import RecipeOptions, ignore_errors_from_environment
from ducc.recipe.parser import load_wishlist
from ducc.registry.manifests import resolve
from ducc.repository.layout import Layout
from ducc.repository.podman import PodmanStore
from ducc.repository.pointers import image_created
from ducc.repository.products import flat_complete

PRUNE_CONFIG = "ducc-prune.yaml"  # DUCC's default, read from the current directory
_REMOTE = ("http://", "https://", "git+")


@cli.command("prune-images")
@click.argument("repository")
@click.argument("wishlists", nargs=-1)
@publisher_options
@click.option("--dry-run", is_flag=True, help="List what would be unpublished.")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"YAML `wishlists: [...]` naming more wishlists [{PRUNE_CONFIG} if present].",
)
def prune_images(
    repository: str, wishlists: tuple[str, ...], dry_run: bool, config: Path | None, **kw: Any
) -> int:
    """DUCC's spelling of `ducc prune`: unpublish from REPOSITORY the images the WISHLISTs
    (only their `input:` is read) no longer wish for, or whose tag left the registry."""
    sources = [*wishlists, *_config_sources(config)]
    if not sources:
        raise click.UsageError(f"no wishlists: give them as arguments or in {PRUNE_CONFIG}")
    remote = [s for s in sources if s.startswith(_REMOTE)]
    if remote:
        raise InputError(
            f"wishlist {remote[0]} is remote: ducc reads wishlists from files only",
            hint="fetch it first (curl -o FILE URL, or git clone) and give the file",
        )
    options = RecipeOptions(strict=False, repository=_repo(repository))
    return run_prune(load_wishlist(sources, options), kw, dry_run)


def _config_sources(config: Path | None) -> list[str]:
    """DUCC's prune config: `wishlists: [...]`; the default file only when it exists."""
    path = config or Path(PRUNE_CONFIG)
    if config is None and not path.is_file():
        return []
    try:
        doc = yaml.safe_load(path.read_bytes())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"prune config {path}: cannot read it: {exc}") from None
    found = doc.get("wishlists") if isinstance(doc, dict) else None
    if not isinstance(found, list) or not all(isinstance(s, str) and s for s in found):
        raise InputError(f"prune config {path}: 'wishlists' must be a list of paths")
    return list(found)


@cli.command("expand-wildcard")
@click.argument("image", required=False)
@click.option(
    "-w",
    "--wishlist",
    "wishlists",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A wishlist whose inputs are expanded too; repeatable.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the images as YAML `images: [...]` to this file instead of printing them.",
)
@click.option("--json", "as_json", is_flag=True, help="Print images and failures as JSON.")
@click.option("-j", "--jobs", default=8, show_default=True, type=click.IntRange(1, 64))
def expand_wildcard(
    image: str | None, wishlists: tuple[str, ...], output: Path | None, as_json: bool, jobs: int
) -> int:
    """DUCC's `expand-wildcard IMAGE`: every tag IMAGE (a wildcard) stands for, one
    `scheme://registry/repository:tag` per line; with -w, every image of the wishlists."""
    if image is None and not wishlists:
        raise click.UsageError("give IMAGE or at least one -w/--wishlist")
    options = RecipeOptions(
        strict=False, extra_ignore_errors=ignore_errors_from_environment(os.environ)
    )
    wishlist = load_wishlist(list(wishlists), options) if wishlists else Wishlist()
    items = [(w.reference, w.ignore_errors) for w in wishlist.wishes]
    labels = [f"{w.location}: {w.input}" for w in wishlist.wishes]
    if image is not None:
        ref = parse_reference(image)
        if ref.pattern is TagPattern.DUCC_REGEX:
            warn([f"{image}: the tag is read as DUCC read it, as a regular expression"])
        items.append((ref, False))
        labels.append(image)
    with open_registries() as registries:
        results = expand_all(registries, items, concurrency=jobs)
    return _finish(results, labels, wishlist, output, as_json)


def _finish(
    results: list[Expansion],
    labels: list[str],
    wishlist: Wishlist,
    output: Path | None,
    as_json: bool,
) -> int:
    every = [str(image) for r in results for image in r.images]
    failed = [(label, r) for label, r in zip(labels, results, strict=True) if r.error]
    if output is not None:
        output.write_text(yaml.safe_dump({"images": every}, default_flow_style=False))
        click.echo(f"wrote {len(every)} images to {output}", err=True)
    elif as_json:
        click.echo(json.dumps({"images": every, "warnings": wishlist.warnings}, indent=2))
    else:
        for line in every:
            click.echo(line)
    warn(wishlist.warnings)
    for label, r in failed:
        click.echo(f"{'ignored' if r.ignore_errors else 'error'}: {label}: {r.error}", err=True)
    for refused in wishlist.refused:
        click.echo(
            f"{'ignored' if refused.ignore_errors else 'error'}: {refused.problem}", err=True
        )
    bad = [r for _, r in failed if not r.ignore_errors]
    bad_refused = [r for r in wishlist.refused if not r.ignore_errors]
    return ExitCode.FAILED if bad or bad_refused else ExitCode.OK


@cli.command("create-podman-store")
@click.argument("image")
@click.argument("repository")
@click.argument("store_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--cvmfs-prefix",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/cvmfs"),
    show_default=True,
    help="Where CernVM-FS repositories are mounted.",
)
@click.option(
    "--platform",
    callback=platform_option,
    metavar="OS/ARCH[/VARIANT]",
    help="The platform picked from an index (default linux/amd64).",
)
def create_podman_store(
    image: str, repository: str, store_dir: Path, cvmfs_prefix: Path, platform: Platform | None
) -> int:
    """DUCC's `create-podman-store`: a local podman additional image store in STORE_DIR whose
    one layer is IMAGE's flat tree in /cvmfs/REPOSITORY (convert the image first)."""
    ref = parse_reference(image)
    repo = _repo(repository)
    with open_registries() as registries:
        resolved = resolve(registries.client(ref), ref, platform=platform)[0]
    layout = Layout(cvmfs_prefix / repo.name / repo.subdir)
    config = resolved.config
    if not flat_complete(layout, config.digest):
        raise InputError(
            f"{ref.simple_name}: no flat tree at {layout.flat_dir(config.digest)}",
            hint=f"convert it first: ducc convert-single-image {image} {repository}",
        )
    PodmanStore(store_dir, local=True).add_image(
        image_id=config.digest.hex,
        names=[ref.simple_name],
        flat_dir=layout.flat_dir(config.digest),
        manifest=resolved.manifest.raw,
        config=config.raw,
        config_digest=str(config.digest),
        created=image_created(config.raw),
    )
    click.echo(f"podman store ready at {store_dir}; add it to /etc/containers/storage.conf:")
    click.echo(f'  [storage.options.overlay]\n  additionalImageStores = ["{store_dir}"]')
    return ExitCode.OK
