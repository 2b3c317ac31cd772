"""DUCC's spellings the command line takes: global flags anywhere, retired commands and
features, and DUCC's environment variables, each accepted with DUCC's meaning or answered
with one clear sentence.

DUCC (`cvmfs_ducc`, cobra) accepts its global flags `-t/--temporary-dir`,
`-n/--notification-file` and `--downloads-dir` before or after the command; click takes group
options only before it, so they are moved there first (`gc -n` stays gc's `--dry-run`, as in
DUCC's older gc).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

# DUCC's commands ducc does not have, and what to use instead.
RETIRED = {
    "daemon": "DUCC's unfinished REST daemon has no counterpart: `ducc loop RECIPE` is the "
    "service (`--webhook-listen`, `--metrics-listen`, `ducc status`)",
    "wish": "DUCC's daemon wishes have no counterpart: list images in a recipe and run "
    "`ducc loop RECIPE` (or `ducc convert RECIPE`)",
    "unpack-image": "DUCC's old `unpack-image IMAGE REPO` is "
    "`ducc convert-single-image IMAGE REPO`",
    "convert-singularity-image": "DUCC's old `convert-singularity-image -r REPO IMAGE` is "
    "`ducc convert-single-image IMAGE REPO`",
}
# Group options that take a value (so the command name is found after them).
_GROUP_VALUES = frozenset(
    {"--log-format", "-t", "--temporary-dir", "-n", "--notification-file", "--downloads-dir"}
)
_LIFTED = {
    "-t": "-t",
    "--temporary-dir": "-t",
    "--notification-file": "-n",
    "-n": "-n",
    "--downloads-dir": "--downloads-dir",
}
_GC_COMMANDS = frozenset({"gc", "garbage-collection"})
# Variables of DUCC's that ducc does not read, and why.
IGNORED_VARIABLES = {
    "DUCC_OUTPUT_REGISTRY_PASS": "thin images are gone (ducc pushes nothing): the variable "
    "is ignored",
    "DUCC_DOCKER_REGISTRY_PASS": "thin images are gone: the variable is ignored",
    "DOCKER2CVMFS_DOCKER_REGISTRY_PASS": "thin images are gone: the variable is ignored",
    "CVMFS_DUCC_MOUNTLESS_PUBLISHING": "ducc publishes through cvmfs_server transactions on "
    "the mounted repository; mountless publishing is not implemented and the variable is "
    "ignored",
    "DUCC_DEBUG_LOG_CURL_REQ": "ducc logs every registry request with -vv (credentials "
    "never shown); the variable is ignored",
    "DUCC_DOCKERHUB_USER": "not read: give Docker Hub credentials as DUCC_AUTH_REGISTRIES=hub, "
    "DUCC_hub_IDENT=docker.io, DUCC_hub_USER, DUCC_hub_PASS (or in auth.json)",
    "DUCC_GITLAB_REGISTRY_USER": "not read: give the registry's credentials as "
    "DUCC_AUTH_REGISTRIES=<name> with DUCC_<name>_IDENT/_USER/_PASS (or in auth.json)",
}
THIN_IMAGES_GONE = (
    "-u/--username and --thin-image-name: DUCC's thin images are gone; ducc builds no thin "
    "image and pushes nothing (the options are ignored)"
)
USERNAME_IGNORED = (
    "-u/--username: ignored; DUCC used it only for thin images, and registry credentials come "
    "from DUCC_AUTH_REGISTRIES (DUCC_<R>_USER/_PASS) or auth.json"
)
NOTIFICATIONS_GONE = (
    "-n/--notification-file: DUCC's progress notifications are gone and no file is written; "
    "`ducc loop --metrics-listen` and `ducc status` report progress instead"
)


def lift_global_options(argv: list[str]) -> list[str]:
    """`argv` with DUCC's global flags given after the command moved in front of it."""
    command = _command_index(argv)
    if command is None:
        return argv
    head, tail = argv[: command + 1], argv[command + 1 :]
    lifted: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(tail):
        arg = tail[i]
        if arg == "--":
            rest += tail[i:]
            break
        name, eq, value = arg.partition("=")
        is_gc_dry_run = name == "-n" and argv[command] in _GC_COMMANDS
        if name in _LIFTED and not is_gc_dry_run and (eq or i + 1 < len(tail)):
            value = value if eq else tail[i + 1]
            lifted += [_LIFTED[name], value]
            i += 1 if eq else 2
            continue
        rest.append(arg)
        i += 1
    return head[:command] + lifted + [head[command]] + rest


def _command_index(argv: list[str]) -> int | None:
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return i
        i += 2 if arg in _GROUP_VALUES else 1
    return None


def environment_notes(environ: Mapping[str, str]) -> list[str]:
    """One sentence for each of DUCC's variables set here that ducc does not follow."""
    return [f"{name}: {why}" for name, why in IGNORED_VARIABLES.items() if environ.get(name)]


def downloads_from_temporary(temporary: str | None, environ: Mapping[str, str]) -> Path | None:
    """Where blobs go under DUCC's `-t DIR` (or `DUCC_TMP_DIR`): DUCC's own place below it.
    Never the directory itself: ducc clears its downloads directory of leftovers."""
    base = temporary or environ.get("DUCC_TMP_DIR", "").strip()
    return Path(base) / "cvmfs" / "ducc" / "downloads" if base else None


def recipes_from_environment(given: tuple[str, ...], environ: Mapping[str, str]) -> list[str]:
    """The recipes named, else `$RECIPE_FILE` (DUCC's unit file runs `loop $RECIPE_FILE`)."""
    if given:
        return list(given)
    for variable in ("RECIPE_FILE", "DUCC_RECIPE_FILE"):
        paths = environ.get(variable, "").split()
        if paths:
            return paths
    raise click.UsageError("give RECIPE (or set RECIPE_FILE, as DUCC's unit file does)")


def retired_command(name: str) -> click.Command:
    """A command that only says what replaced DUCC's `name` (exit 2)."""

    def refuse(**_kw: Any) -> None:
        raise click.UsageError(f"`{name}` is not a ducc command: {RETIRED[name]}")

    return click.Command(
        name,
        callback=refuse,
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        hidden=True,
        add_help_option=False,
    )
