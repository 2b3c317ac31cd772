"""Operations on a published repository: status, gc, prune, delete-image."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from ducc.cli.common import open_registries, warn
from ducc.cli.group import cli
from ducc.cli.options import publisher_options, publisher_settings, state_dir_of
from ducc.errors import ExitCode, InputError
from ducc.oci.reference import parse_reference
from ducc.pipeline.convert import by_repo
from ducc.pipeline.prune import plan_prune
from ducc.publish.base import Publisher
from ducc.recipe.model import CvmfsRepo, Wishlist, cvmfs_repo_problem
from ducc.recipe.options import RecipeOptions
from ducc.recipe.parser import load_wishlist
from ducc.repository.gc import GcOptions, GcReport, collect_garbage
from ducc.repository.gc_list import read_candidates, write_candidates
from ducc.repository.layout import Layout
from ducc.repository.unpublish import delete_image, prune
from ducc.service.signals import installed
from ducc.service.state import State
from ducc.units import human_bytes, parse_grace_period


def _repo(text: str) -> CvmfsRepo:
    problem = cvmfs_repo_problem(text)
    if problem:
        raise InputError(f"repository: {problem}")
    name, _, subdir = text.partition("/")
    return CvmfsRepo(name, subdir)


def _published(publisher: Publisher, repository: CvmfsRepo | str) -> Publisher:
    """`publisher`, if its repository exists: gc, prune and delete-image work on what
    `ducc convert` published and never create a repository where a name was mistyped."""
    if not publisher.root.is_dir():
        raise InputError(
            f"{repository}: no repository at {publisher.root}",
            hint="name the cvmfs_repo as the recipe does (`repo` or `repo/subdir`); for the "
            "dir publisher, --root is the directory `ducc convert` published into",
        )
    return publisher


def _age(when: float | None, now: float) -> str:
    if when is None:
        return "-"
    seconds = now - when
    if abs(seconds) < 120:
        return f"{seconds:.0f}s" if seconds >= 0 else f"in {-seconds:.0f}s"
    minutes = seconds / 60
    text = f"{minutes:.0f}m" if abs(minutes) < 120 else f"{minutes / 60:.1f}h"
    return text if seconds >= 0 else f"in {text.lstrip('-')}"


@cli.command()
@click.option(
    "--state-dir", type=click.Path(file_okay=False, path_type=Path), help="ducc's local state."
)
@click.option("--history", default=10, show_default=True, help="Recent conversions to show.")
@click.option("--json", "as_json", is_flag=True, help="Print images and history as JSON.")
def status(state_dir: Path | None, history: int, as_json: bool) -> None:
    """Show every image ducc keeps in step: last digest, check, success, error, next check."""
    state = State(state_dir_of({"state_dir": state_dir}))
    images, conversions = state.images(), state.conversions(history)
    state.close()
    if as_json:
        doc = {
            "images": [asdict(i) for i in images],
            "conversions": [asdict(c) for c in conversions],
        }
        click.echo(json.dumps(doc, indent=2))
        return
    now = time.time()
    header = f"{'STATUS':<10} {'CHECKED':>8} {'SUCCESS':>8} {'NEXT':>9} {'FAIL':>4}  IMAGE"
    click.echo(header)
    for i in images:
        digest = (i.digest or "")[7:19]
        click.echo(
            f"{i.status:<10} {_age(i.last_check, now):>8} {_age(i.last_success, now):>8} "
            f"{_age(i.next_check, now):>9} {i.failures:>4}  {i.image} {digest}"
        )
        if i.last_error:
            click.echo(f"{'':>44}error: {i.last_error}")
    if conversions:
        click.echo("\nrecent conversions:")
    for c in conversions:
        click.echo(
            f"  {c.result:<9} {c.duration:7.1f}s {human_bytes(c.bytes):>10}  {c.image}"
            + (f": {c.error}" if c.error else "")
        )


@cli.command()
@click.argument("repository")
@publisher_options
@click.option("-n", "--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option(
    "--grace-period",
    default="7d",
    show_default=True,
    help="Keep unreachable products younger than this: a bare number is days, as in DUCC "
    "(30 = 30 days); or 12h, 7d.",
)
@click.option(
    "--remove-unknown-chains",
    is_flag=True,
    help="Also remove unreachable chains ducc did not build (DUCC's); they are kept otherwise.",
)
@click.option(
    "--scan-only",
    is_flag=True,
    help="DUCC's first phase: list what would be removed, remove nothing; with --db-path, "
    "write the list there.",
)
@click.option(
    "--delete-only",
    is_flag=True,
    help="DUCC's second phase: scan again and remove; with --db-path, only what the list "
    "written by --scan-only names (and is still unreachable).",
)
@click.option(
    "--db-path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The list of --scan-only (one repository path per line); ducc keeps no database.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def gc(
    repository: str,
    *,
    dry_run: bool,
    grace_period: str,
    remove_unknown_chains: bool,
    scan_only: bool,
    delete_only: bool,
    db_path: Path | None,
    as_json: bool,
    **kw: Any,
) -> None:
    """Remove flat trees, chains, layers and podman entries no published image reaches.

    REPOSITORY is the cvmfs_repo (`repo` or `repo/subdir`). A record gc cannot read stops it
    before anything is removed (exit 1). Chains ducc did not build (DUCC's) are kept.
    """
    if scan_only and delete_only:
        raise click.UsageError("--scan-only and --delete-only exclude each other")
    only = read_candidates(db_path) if delete_only and db_path is not None else None
    options = GcOptions(
        grace=parse_grace_period(grace_period),
        dry_run=dry_run or scan_only,
        remove_unknown_chains=remove_unknown_chains,
        only=only,
    )
    publisher = _published(publisher_settings(kw, quiet=True).make(_repo(repository)), repository)
    with installed():
        report = collect_garbage(publisher, options)
    if db_path is not None and not delete_only:
        write_candidates(db_path, report)
    render_gc(report, as_json=as_json)


def render_gc(report: GcReport, *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(asdict(report), indent=2))
        return
    verb = "would remove" if report.dry_run else "removed"
    click.echo(
        f"{verb} {len(report.removed)} products and {len(report.podman_images)} podman "
        f"entries; {report.reachable} reachable, {len(report.young)} kept by the grace period"
    )
    if report.unknown_chains:
        click.echo(
            f"kept {len(report.unknown_chains)} unreachable chains ducc did not build "
            "(DUCC's; --remove-unknown-chains removes them)"
        )
    for path in report.removed:
        click.echo(f"  {path}")


@cli.command("prune")
@click.argument("recipes", nargs=-1, required=True, type=click.Path(dir_okay=False))
@publisher_options
@click.option("--dry-run", is_flag=True, help="List what would be unpublished.")
def prune_command(recipes: tuple[str, ...], dry_run: bool, **kw: Any) -> int:
    """Unpublish images the RECIPES no longer wish for, or whose tag left the registry.

    Their data stays for `ducc gc`. A wish whose registry cannot be reached keeps its images,
    and so does a recipe entry that cannot be read. DUCC's `prune-images REPO [WISHLIST...]`
    takes the repository first.
    """
    return run_prune(load_wishlist(list(recipes), RecipeOptions(strict=False)), kw, dry_run)


def run_prune(wishlist: Wishlist, kw: dict[str, Any], dry_run: bool) -> int:
    """Prune every repository the wishlist names; print what goes and what stays."""
    warn(wishlist.warnings)
    settings = publisher_settings(kw, quiet=True)
    with installed(), open_registries() as registries:
        for repo, wishes in by_repo(wishlist.wishes).items():
            refused = [r for r in wishlist.refused if r.cvmfs_repo == repo]
            publisher = _published(settings.make(repo), repo)
            with publisher.session(wait=kw["wait"]):
                plan = plan_prune(Layout(publisher.root), wishes, registries, refused)
                prune(publisher, plan, dry_run=dry_run)
            verb = "would unpublish" if dry_run else "unpublished"
            click.echo(f"{repo}: {verb} {len(plan.remove)} images")
            for name in plan.remove:
                click.echo(f"  {name}")
            for name in plan.kept_unsure:
                click.echo(f"  kept (registry unreachable): {name}")
            for name in plan.kept_refused:
                click.echo(f"  kept (its recipe entry cannot be read): {name}")
    for refused_wish in wishlist.refused:
        click.echo(f"warning: {refused_wish.problem}", err=True)
    return ExitCode.OK


@cli.command("delete-image")
@click.argument("args", nargs=-1, required=True)
@click.option("--repo", "repository", help="The cvmfs_repo holding the image.")
@publisher_options
@click.option("--dry-run", is_flag=True, help="Say whether it is published; change nothing.")
def delete_image_command(
    args: tuple[str, ...], repository: str | None, dry_run: bool, **kw: Any
) -> int:
    """Unpublish one image: `delete-image --repo REPO IMAGE` or DUCC's `delete-image REPO IMAGE`.

    The data stays for `ducc gc`.
    """
    if len(args) == 2 and repository is None:
        repository, image = args
    elif len(args) == 1 and repository is not None:
        (image,) = args
    else:
        raise click.UsageError("give IMAGE with --repo REPO, or REPO IMAGE")
    ref = parse_reference(image)
    publisher = _published(publisher_settings(kw, quiet=True).make(_repo(repository)), repository)
    with installed(), publisher.session(wait=kw["wait"]):
        found = delete_image(publisher, ref.simple_name, dry_run=dry_run)
    if not found:
        click.echo(f"{ref.simple_name} is not published in {repository}", err=True)
        return ExitCode.FAILED
    click.echo(f"{'would unpublish' if dry_run else 'unpublished'} {ref.simple_name}")
    return ExitCode.OK
