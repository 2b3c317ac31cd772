"""`ducc convert` and `ducc convert-single-image`: the main job, and its summary."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from ducc import log
from ducc.cli.common import warn
from ducc.cli.compat import THIN_IMAGES_GONE, recipes_from_environment
from ducc.cli.group import cli
from ducc.cli.options import build_converter, conversion_options, publisher_options
from ducc.errors import AnotherDuccRunning, ExitCode, InputError
from ducc.oci.reference import parse_reference
from ducc.pipeline.report import ConvertReport, Outcome
from ducc.recipe.model import CvmfsRepo, Recipe, Wish, Wishlist, cvmfs_repo_problem
from ducc.recipe.options import RecipeOptions, ignore_errors_from_environment
from ducc.recipe.parser import load_wishlist
from ducc.repository.verify import verify
from ducc.service.signals import installed

repair_option = click.option(
    "--repair",
    is_flag=True,
    help="Check the wished images' products deeply (as `verify --deep`) and rebuild the "
    "damaged ones.",
)


def run_conversion(
    wishlist: Wishlist, kw: dict[str, Any], *, dry_run: bool, as_json: bool, attempts: int = 1
) -> int:
    converter, state = build_converter(kw, dry_run=dry_run)
    try:
        with installed(), converter.registries:
            report = converter.run(wishlist)
            for _ in range(attempts - 1):  # DUCC's convert-single-image -r/--attempts
                if not report.failures:
                    break
                report = converter.run(wishlist)
    except AnotherDuccRunning as exc:
        click.echo(f"{exc.message}; nothing to do", err=True)
        return ExitCode.OK
    finally:
        if state is not None:
            state.close()
    render_report(report, as_json=as_json)
    return ExitCode.FAILED if report.failures else ExitCode.OK


def render_report(report: ConvertReport, *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
        return
    would = "would be " if any(r.dry_run for r in report.results) else ""
    totals = ", ".join(f"{report.count(o)} {would}{o.value}" for o in Outcome)
    click.echo(
        f"conversion summary: {totals}; {report.publishes} publishes, "
        f"{report.ingests} layer ingests"
    )
    for result in report.results:
        if result.outcome == Outcome.UNCHANGED:
            continue
        label = f"{result.outcome.value}{' (ignored)' if result.ignored else ''}"
        line = f"  {label:<18} {result.image}"
        if result.error:
            line += f": {log.redact(result.error)}"
        click.echo(line)


def recipe_options(*, strict: bool) -> RecipeOptions:
    """How `convert` and `loop` read recipes, with DUCC's `DUCC_IGNORE_ERRORS_FILE`."""
    return RecipeOptions(
        strict=strict, extra_ignore_errors=ignore_errors_from_environment(os.environ)
    )


@cli.command()
@click.argument("recipes", nargs=-1, type=click.Path(dir_okay=False))
@publisher_options
@conversion_options
@click.option("--dry-run", is_flag=True, help="Print what would change; touch nothing.")
@click.option(
    "--strict", is_flag=True, help="Convert nothing when any recipe entry is refused (exit 2)."
)
@repair_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def convert(recipes: tuple[str, ...], dry_run: bool, strict: bool, as_json: bool, **kw: Any) -> int:
    """Bring the repositories in line with RECIPES (default $RECIPE_FILE) and publish.

    Expands wildcards, polls every image (HEAD), converts what is new or changed (layers,
    chains, flat root filesystem, metadata, public symlink, podman store) and publishes; an
    image DUCC recorded whose config is unchanged is adopted as it is. A recipe entry that
    cannot be read is a failed wish (with --strict, nothing is converted: exit 2).
    Exit 0 when everything succeeded (or failed only under ignoreErrors), 1 otherwise.
    """
    paths = recipes_from_environment(recipes, os.environ)
    wishlist = load_wishlist(paths, recipe_options(strict=strict))
    if not as_json:
        warn(wishlist.warnings)
    return run_conversion(wishlist, kw, dry_run=dry_run, as_json=as_json)


@cli.command("convert-single-image")
@click.argument("image")
@click.argument("repository")
@publisher_options
@conversion_options
@click.option(
    "-r",
    "--attempts",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Attempts in all when the conversion fails (DUCC's).",
)
@click.option("-u", "--username", hidden=True, help="DUCC's thin-image user: ignored.")
@click.option("--thin-image-name", hidden=True, help="DUCC's thin-image name: ignored.")
@repair_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def convert_single_image(
    image: str,
    repository: str,
    *,
    attempts: int,
    username: str | None,
    thin_image_name: str | None,
    as_json: bool,
    **kw: Any,
) -> int:
    """Convert IMAGE into the cvmfs REPOSITORY (`repo` or `repo/subdir`), no recipe needed."""
    if username is not None or thin_image_name is not None:
        warn([THIN_IMAGES_GONE])
    problem = cvmfs_repo_problem(repository)
    if problem:
        raise InputError(f"repository: {problem}")
    ref = parse_reference(image)
    name, _, subdir = repository.partition("/")
    repo = CvmfsRepo(name, subdir)
    wish = Wish(
        recipe="<command line>", line=0, index=0, input=image, reference=ref, cvmfs_repo=repo
    )
    wishlist = Wishlist(recipes=[Recipe("<command line>", repo, (wish,))])
    return run_conversion(wishlist, kw, dry_run=False, as_json=as_json, attempts=attempts)


@cli.command("verify")
@click.argument(
    "roots", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--deep",
    is_flag=True,
    help="Also compare contents: layer trees with the chains of their diff_ids, flat trees "
    "with their chains or layers (reads every file).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify_command(roots: tuple[Path, ...], deep: bool, as_json: bool) -> int:
    """Check the repositories at ROOTS (e.g. /cvmfs/unpacked.cern.ch); exit 1 on problems.

    Every public path must resolve to the complete flat tree of its recorded config, every
    referenced layer and chain must be complete, and the metadata must match the digests.
    """
    reports = {str(root): verify(root, deep=deep) for root in roots}
    if as_json:
        click.echo(json.dumps({k: asdict(v) for k, v in reports.items()}, indent=2))
    for root, report in reports.items():
        if as_json:
            continue
        counts = ", ".join(f"{n} {what}s" for what, n in sorted(report.counts.items()))
        click.echo(f"{root}: {counts or 'empty'}; {len(report.problems)} problems")
        for problem in report.problems:
            click.echo(f"  problem: {problem}")
        for warning in report.warnings:
            click.echo(f"  warning: {warning}")
    return ExitCode.OK if all(r.ok for r in reports.values()) else ExitCode.FAILED
