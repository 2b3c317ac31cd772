"""Options shared by the commands that publish, and the settings built from them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from ducc import log
from ducc.cli.common import open_registries, platform_option
from ducc.cli.compat import downloads_from_temporary
from ducc.cli.group import global_downloads_dir, temporary_dir
from ducc.cli.limits import apply_options, limit_options, limits_of
from ducc.errors import InputError
from ducc.pipeline.builder import BuildOptions
from ducc.pipeline.convert import Converter, ConvertOptions
from ducc.publish.factory import PublisherKind, PublisherSettings, default_kind
from ducc.service.state import State, default_state_dir
from ducc.units import parse_duration

F = TypeVar("F", bound=Callable[..., Any])
_log = log.get("cli")
MAX_DOWNLOADS = 64
SKIP_LAYERS_NOTE = (
    "-d/--skip-layers is deprecated in DUCC and has no effect: layers are always published"
)


def publisher_options(func: F) -> F:
    """Where and how to publish (every command that writes into a repository)."""
    return apply_options(
        func,
        [
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
                "--state-dir",
                type=click.Path(file_okay=False, path_type=Path),
                help="ducc's local state [/var/lib/ducc as root, else ~/.local/state/ducc].",
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
        ],
    )


def _deadline(ctx: click.Context, param: click.Parameter, value: str) -> float:
    """A duration > 0; from the environment, the message names the variable."""
    try:
        seconds = parse_duration(value)
    except InputError as exc:
        seconds, problem = 0.0, exc.message
    else:
        problem = "must be longer than 0"
    if seconds > 0:
        return seconds
    if ctx.get_parameter_source(param.name or "") == ParameterSource.ENVIRONMENT:
        raise click.BadParameter(f"DUCC_IMAGE_DEADLINE={value!r}: {problem}")
    raise click.BadParameter(problem)


def conversion_options(func: F) -> F:
    """What to build (convert, convert-single-image, loop); DUCC's names where it has them."""
    return apply_options(
        func,
        [
            click.option(
                "-s", "--skip-flat", is_flag=True, help="No flat root filesystem (layers only)."
            ),
            click.option("-p", "--skip-podman", is_flag=True, help="No podman store entry."),
            click.option("--skip-chains", is_flag=True, help="Build flat trees without chains."),
            click.option(
                "--server-overlay/--no-server-overlay",
                default=None,
                help="Merge flat trees with `cvmfs_server overlay` (catalog level, no chains)"
                " [default: where the server has it (CernVM-FS newer than 2.12)].",
            ),
            click.option(
                "-m", "--multi-arch", is_flag=True, help="Convert every platform of an index."
            ),
            click.option(
                "--platform",
                callback=platform_option,
                metavar="OS/ARCH[/VARIANT]",
                help="The platform taken from an index (default linux/amd64).",
            ),
            click.option(
                "-g", "--convert-again", is_flag=True, help="Convert unchanged images too."
            ),
            click.option("-f", "--overwrite-layers", is_flag=True, help="Ingest layers again."),
            click.option(
                "--max-concurrent-downloads",
                type=click.IntRange(0, MAX_DOWNLOADS),
                envvar="DUCC_MAX_CONCURRENT_DOWNLOADS",
                default=4,
                show_default=True,
                help=f"Blobs fetched at once; 0 (DUCC's 'unlimited') means {MAX_DOWNLOADS}.",
            ),
            click.option("--shard", metavar="I/N", help="Convert only shard I of N (0-based)."),
            click.option(
                "--image-deadline",
                envvar="DUCC_IMAGE_DEADLINE",
                default="1h",
                show_default=True,
                callback=_deadline,
                help="Longest an image's registry traffic may take (resolve and download).",
            ),
            click.option(
                "--downloads-dir",
                type=click.Path(file_okay=False, path_type=Path),
                help="Where blobs are kept during a conversion [<state-dir>/downloads].",
            ),
            click.option(
                "-i",
                "--skip-thin-image",
                is_flag=True,
                hidden=True,
                help="Accepted for DUCC compatibility; ducc never builds thin images.",
            ),
            click.option(
                "-d",
                "--skip-layers",
                is_flag=True,
                hidden=True,
                help="DUCC's deprecated no-op: layers are always published (a warning says so).",
            ),
            limit_options,
        ],
    )


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    index, sep, count = text.partition("/")
    if not sep or not index.isdigit() or not count.isdigit() or not 0 <= int(index) < int(count):
        raise InputError(f"bad --shard {text!r}: use I/N with 0 <= I < N, e.g. 0/4")
    return int(index), int(count)


def state_dir_of(kw: dict[str, Any]) -> Path:
    path: Path = kw["state_dir"] or default_state_dir()
    return path


def publisher_settings(kw: dict[str, Any], *, quiet: bool = False) -> PublisherSettings:
    kind = PublisherKind(kw["publisher"]) if kw["publisher"] else default_kind()
    if kw["publisher"] is None:
        reason = (
            "cvmfs_server found on PATH"
            if kind == PublisherKind.CVMFS
            else "no cvmfs_server on PATH: publishing into a plain directory"
        )
        _log.info("publisher_chosen", publisher=kind.value, reason=reason)
        if kind == PublisherKind.DIR and not quiet:
            click.echo("publishing into a directory (no cvmfs_server on PATH)", err=True)
    return PublisherSettings(
        kind=kind,
        state_dir=state_dir_of(kw),
        root=kw["root"],
        cvmfs_prefix=kw["cvmfs_prefix"],
        abort_stale=kw["abort_stale"],
        gateway=kw["gateway"],
    )


def build_converter(kw: dict[str, Any], *, dry_run: bool = False) -> tuple[Converter, State | None]:
    """A converter from the shared options (the CLI's one place for settings), and the local
    state it records into (none for a dry run; the caller closes it)."""
    if kw.pop("skip_layers", False):
        click.echo(f"warning: {SKIP_LAYERS_NOTE}", err=True)
    settings = publisher_settings(kw, quiet=dry_run)
    if kw["server_overlay"] and settings.kind != PublisherKind.CVMFS:
        raise InputError("--server-overlay needs the cvmfs publisher (cvmfs_server overlay)")
    build = BuildOptions(
        skip_flat=kw["skip_flat"],
        skip_chains=kw["skip_chains"],
        server_overlay=kw["server_overlay"],
        overwrite_layers=kw["overwrite_layers"],
        max_concurrent_downloads=kw["max_concurrent_downloads"] or MAX_DOWNLOADS,
        limits=limits_of(kw),
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
        image_deadline=kw["image_deadline"],
        repair=kw.get("repair", False),
    )
    downloads = (
        kw["downloads_dir"]
        or global_downloads_dir()
        or downloads_from_temporary(temporary_dir(), os.environ)
        or settings.state_dir / "downloads"
    )
    state = None if dry_run else State(settings.state_dir)
    return Converter(open_registries(), settings.make, downloads, options, state), state
