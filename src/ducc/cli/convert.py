"""`ducc convert` and `ducc convert-single-image`: the main job, and its summary."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click

from ducc import log
from ducc.cli.common import open_registries, platform_option, warn
from ducc.cli.group import cli
from ducc.convert import Converter, ConvertOptions, ConvertReport, Outcome
from ducc.errors import AnotherDuccRunning, ExitCode, InputError
from ducc.layers import Limits
from ducc.products import BuildOptions
from ducc.publish.factory import PublisherKind, PublisherSettings, default_kind
from ducc.recipe import CvmfsRepo, Recipe, Wish, Wishlist, cvmfs_repo_problem, load_wishlist
from ducc.reference import parse_reference
from ducc.signals import INTERRUPTS
from ducc.state import default_state_dir
from ducc.verify import verify

F = TypeVar("F", bound=Callable[..., Any])
_log = log.get("cli")


def publishing_options(func: F) -> F:
    """The options shared by every command that publishes (DUCC's names where it has them)."""
    options = [
        click.option(
            "--publisher",
            type=click.Choice([k.value for k in PublisherKind]),
            help="cvmfs (default where cvmfs_server is on PATH) or dir.",
        ),
        click.option(
            "--root",
            type=click.Path(file_okay=False, path_type=Path),
            help="The dir publisher's repository root [./ducc-repos/<cvmfs_repo>].",
        ),
        click.option(
            "--cvmfs-prefix",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path("/cvmfs"),
            show_default=True,
            help="Where CernVM-FS repositories are mounted.",
        ),
        click.option(
            "-s", "--skip-flat", is_flag=True, help="No flat root filesystem (layers only)."
        ),
        click.option("-p", "--skip-podman", is_flag=True, help="No podman store entry."),
        click.option("--skip-chains", is_flag=True, help="Build flat trees without chains."),
        click.option(
            "-m", "--multi-arch", is_flag=True, help="Convert every platform of an index."
        ),
        click.option(
            "--platform",
            callback=platform_option,
            metavar="OS/ARCH[/VARIANT]",
            help="The platform taken from an index (default linux/amd64).",
        ),
        click.option("-g", "--convert-again", is_flag=True, help="Convert unchanged images too."),
        click.option("-f", "--overwrite-layers", is_flag=True, help="Ingest layers again."),
        click.option(
            "--max-concurrent-downloads",
            type=click.IntRange(1, 64),
            envvar="DUCC_MAX_CONCURRENT_DOWNLOADS",
            default=4,
            show_default=True,
        ),
        click.option("--shard", metavar="I/N", help="Convert only shard I of N (0-based)."),
        click.option(
            "--state-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="ducc's local state [/var/lib/ducc as root, else ~/.local/state/ducc].",
        ),
        click.option(
            "--downloads-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Where blobs are kept during a conversion [<state-dir>/downloads].",
        ),
        click.option(
            "--abort-stale",
            is_flag=True,
            help="Abort a transaction found open even if ducc did not open it.",
        ),
        click.option(
            "--gateway",
            is_flag=True,
            help="Scope transactions to lease paths (CernVM-FS repository gateway).",
        ),
        click.option("--wait", is_flag=True, help="Wait for another ducc instead of exiting."),
        click.option(
            "-i",
            "--skip-thin-image",
            is_flag=True,
            hidden=True,
            help="Accepted for DUCC compatibility; ducc never builds thin images.",
        ),
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), func)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    index, sep, count = text.partition("/")
    if not sep or not index.isdigit() or not count.isdigit() or not 0 <= int(index) < int(count):
        raise InputError(f"bad --shard {text!r}: use I/N with 0 <= I < N, e.g. 0/4")
    return int(index), int(count)


def build_converter(kw: dict[str, Any], *, dry_run: bool = False) -> Converter:
    """A converter from the shared options (the CLI's one place for settings)."""
    state_dir: Path = kw["state_dir"] or default_state_dir()
    kind = PublisherKind(kw["publisher"]) if kw["publisher"] else default_kind()
    if kw["publisher"] is None:
        _log.info(
            "publisher_chosen",
            publisher=kind.value,
            reason="cvmfs_server found on PATH"
            if kind == PublisherKind.CVMFS
            else "no cvmfs_server on PATH: publishing into a plain directory",
        )
    if kind == PublisherKind.DIR and kw["root"] is None and not dry_run:
        click.echo(
            "publishing into a directory (no cvmfs_server on PATH or --publisher dir)", err=True
        )
    settings = PublisherSettings(
        kind=kind,
        state_dir=state_dir,
        root=kw["root"],
        cvmfs_prefix=kw["cvmfs_prefix"],
        abort_stale=kw["abort_stale"],
        gateway=kw["gateway"],
    )
    build = BuildOptions(
        skip_flat=kw["skip_flat"],
        skip_chains=kw["skip_chains"] or kw["gateway"],
        overwrite_layers=kw["overwrite_layers"],
        max_concurrent_downloads=kw["max_concurrent_downloads"],
        limits=Limits(),
    )
    options = ConvertOptions(
        build=build,
        multi_arch=kw["multi_arch"],
        platform=kw["platform"],
        convert_again=kw["convert_again"],
        skip_podman=kw["skip_podman"] or kw["skip_flat"],
        dry_run=dry_run,
        shard=parse_shard(kw["shard"]),
        wait=kw["wait"],
    )
    downloads = kw["downloads_dir"] or state_dir / "downloads"
    return Converter(open_registries(), settings.make, downloads, options)


def run_conversion(wishlist: Wishlist, kw: dict[str, Any], *, dry_run: bool, as_json: bool) -> int:
    converter = build_converter(kw, dry_run=dry_run)
    try:
        with INTERRUPTS.installed(), converter.registries:
            report = converter.run(wishlist)
    except AnotherDuccRunning as exc:
        click.echo(f"{exc.message}; nothing to do", err=True)
        return ExitCode.OK
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
@publishing_options
@click.option("--dry-run", is_flag=True, help="Print what would change; touch nothing.")
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
@publishing_options
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
@click.argument("roots", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify_command(roots: tuple[Path, ...], as_json: bool) -> int:
    """Check the repositories at ROOTS (e.g. /cvmfs/unpacked.cern.ch); exit 1 on problems.

    Every public path must resolve to a complete flat tree, every referenced layer and
    chain must be complete, and the metadata must match the digests.
    """
    reports = {str(root): verify(root) for root in roots}
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
