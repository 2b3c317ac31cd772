"""`ducc convert` and `ducc convert-single-image`: the main job, and its summary."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from ducc import log
from ducc.cli.common import warn
from ducc.cli.group import cli
from ducc.cli.options import build_converter, conversion_options, publisher_options
from ducc.convert import ConvertReport, Outcome
from ducc.errors import AnotherDuccRunning, ExitCode, InputError
from ducc.recipe import CvmfsRepo, Recipe, Wish, Wishlist, cvmfs_repo_problem, load_wishlist
from ducc.reference import parse_reference
from ducc.signals import INTERRUPTS
from ducc.verify import verify

repair_option = click.option(
    "--repair",
    is_flag=True,
    help="Check the wished images' products deeply (as `verify --deep`) and rebuild the "
    "damaged ones.",
)


def run_conversion(wishlist: Wishlist, kw: dict[str, Any], *, dry_run: bool, as_json: bool) -> int:
    converter = build_converter(kw, dry_run=dry_run)
    try:
        with INTERRUPTS.installed(), converter.registries:
            report = converter.run(wishlist)
    except AnotherDuccRunning as exc:
        click.echo(f"{exc.message}; nothing to do", err=True)
        return ExitCode.OK
    finally:
        if converter.state is not None:
            converter.state.close()
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


@cli.command()
@click.argument("recipes", nargs=-1, required=True, type=click.Path(dir_okay=False))
@publisher_options
@conversion_options
@click.option("--dry-run", is_flag=True, help="Print what would change; touch nothing.")
@repair_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def convert(recipes: tuple[str, ...], dry_run: bool, as_json: bool, **kw: Any) -> int:
    """Bring the repositories in line with RECIPES and publish the result.

    Expands wildcards, polls every image (HEAD), converts what is new or changed (layers,
    chains, flat root filesystem, metadata, public symlink, podman store) and publishes.
    Exit 0 when everything succeeded (or failed only under ignoreErrors), 1 otherwise.
    """
    wishlist = load_wishlist(list(recipes))
    if not as_json:
        warn(wishlist.warnings)
    return run_conversion(wishlist, kw, dry_run=dry_run, as_json=as_json)


@cli.command("convert-single-image")
@click.argument("image")
@click.argument("repository")
@publisher_options
@conversion_options
@repair_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def convert_single_image(image: str, repository: str, as_json: bool, **kw: Any) -> int:
    """Convert IMAGE into the cvmfs REPOSITORY (`repo` or `repo/subdir`), no recipe needed."""
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
    return run_conversion(wishlist, kw, dry_run=False, as_json=as_json)


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
