"""Apptainer's files in a flat root filesystem, from the image config's Env, Entrypoint and Cmd.

Config strings are untrusted and land in scripts every user sources: each value is written
single-quoted (`shlex.quote`). The tree may share inodes with other trees (hard links), so a
file is replaced by a new one (temp + rename), never changed in place. No symlink of the image
is followed: under `.singularity.d/` whatever is in the way is replaced; elsewhere the image's
own entry (a `home` link, its `etc/hosts`) is left alone.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

from ducc import log
from ducc.errors import FlatTreeError, ManifestError
from ducc.files import ensure_dir, ensure_empty_file, is_real_dir, replace_file
from ducc.repository.apptainer_scripts import ACTIONS, ENV_FILES, ROOT_LINKS, STARTSCRIPT

META = ".singularity.d"
# Bind-mount targets Apptainer needs in a read-only tree; tmp dirs get the usual sticky mode.
MOUNT_POINTS: dict[str, int] = {
    "proc": 0o755,
    "sys": 0o755,
    "dev": 0o755,
    "tmp": 0o1777,
    "var": 0o755,
    "var/tmp": 0o1777,
    "home": 0o755,
    "root": 0o700,
    "etc": 0o755,
}
# Apptainer bind-mounts the host's copies onto these; the files must exist to be targets.
BIND_FILES = ("etc/hosts", "etc/resolv.conf")
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_log = log.get(__name__)


def write_apptainer_files(
    root: Path,
    *,
    env: Sequence[str],
    entrypoint: Sequence[str] | None,
    cmd: Sequence[str] | None,
    working_dir: str | None = None,
) -> None:
    """Write `.singularity.d/`, the root links, mount points and bind files into `root`."""
    if root.is_symlink() or not root.is_dir():
        raise FlatTreeError(f"flat tree {root} is not a directory")
    runscript = runscript_text(entrypoint, cmd, working_dir)
    write_meta_files(root, env_script_text(env), runscript)
    make_root_links(root)
    make_mount_points(root)
    make_bind_files(root)


def check_config(
    *,
    env: Sequence[str],
    entrypoint: Sequence[str] | None,
    cmd: Sequence[str] | None,
    working_dir: str | None = None,
) -> None:
    """Raise what `write_apptainer_files` would refuse in the config, before anything of the
    image is published (a layer ingested for an image that then fails stays unused)."""
    runscript_text(entrypoint, cmd, working_dir)
    env_script_text(env)


def write_meta_files(root: Path, env_script: str, runscript: str) -> None:
    """`.singularity.d/` with its actions, environment scripts, runscript and startscript."""
    meta = root / META
    for directory in (meta, meta / "libs", meta / "actions", meta / "env"):
        ensure_dir(directory)
    for name, text in ACTIONS.items():
        replace_file(meta / "actions" / name, text.encode(), 0o755)
    for name, text in {**ENV_FILES, "10-docker2singularity.sh": env_script}.items():
        replace_file(meta / "env" / name, text.encode(), 0o755)
    replace_file(meta / "runscript", runscript.encode(), 0o755)
    replace_file(meta / "startscript", STARTSCRIPT.encode(), 0o755)


def env_script_text(env: Sequence[str]) -> str:
    """`env/10-docker2singularity.sh`: the image's PATH wins; other variables keep a set value."""
    lines = ["#!/bin/sh", "# Environment from the image config (Env), every value single-quoted."]
    for name, value in _env_items(env).items():
        lines.extend(_export_lines(name, value))
    return "\n".join(lines) + "\n"


def _env_items(env: Sequence[str]) -> dict[str, str | None]:
    """Valid `NAME[=value]` items; a repeated name keeps its first place and its last value."""
    items: dict[str, str | None] = {}
    for item in env:
        name, eq, value = item.partition("=")
        if not _SHELL_NAME.fullmatch(name):
            _log.warning("apptainer_env_skipped", variable=name[:80], reason="not a shell name")
        elif problem := _value_problem(value):
            _log.warning("apptainer_env_skipped", variable=name, reason=f"value {problem}")
        else:
            items[name] = value if eq else None
    return items


def _export_lines(name: str, value: str | None) -> list[str]:
    if value is None:
        return [f'export {name}="${{{name}:-}}"']
    if name == "PATH":
        return [f"export PATH={shlex.quote(value)}"]
    # The `${NAME:-default}` rule (a value set by the caller wins), without putting the
    # untrusted value inside a double-quoted parameter expansion, where quoting is unreliable.
    return [f'[ -n "${{{name}:-}}" ] || {name}={shlex.quote(value)}', f"export {name}"]


def runscript_text(
    entrypoint: Sequence[str] | None, cmd: Sequence[str] | None, working_dir: str | None = None
) -> str:
    """The OCI rule: ENTRYPOINT runs first when set; arguments, when given, replace CMD.

    Apptainer keeps the caller's working directory (as DUCC does): WorkingDir is only recorded.
    """
    entry, default = _argv("Entrypoint", entrypoint), _argv("Cmd", cmd)
    lines = ["#!/bin/sh", "# Runscript from the image config (Entrypoint, Cmd), values quoted."]
    if working_dir:
        lines.append(f"OCI_WORKDIR={_quote('WorkingDir', working_dir)}")
    if default:
        lines += ['if [ "$#" -eq 0 ]; then', f"    set -- {_words(default)}", "fi"]
    elif not entry:
        lines += [
            'if [ "$#" -eq 0 ]; then',
            "    echo 'The image defines neither ENTRYPOINT nor CMD: nothing to run' >&2",
            "    exit 1",
            "fi",
        ]
    lines.append(f'exec {_words(entry)} "$@"' if entry else 'exec "$@"')
    return "\n".join(lines) + "\n"


def _argv(field: str, argv: Sequence[str] | None) -> list[str]:
    words = list(argv or ())
    for word in words:
        _quote(field, word)
    return words


def _quote(field: str, word: str) -> str:
    if problem := _value_problem(word):
        raise ManifestError(f"image config {field}: an argument {problem}")
    return shlex.quote(word)


def _value_problem(text: str) -> str | None:
    """Why `text` cannot become a shell word, environment value or argument, if it cannot."""
    if "\0" in text:
        return "holds a NUL byte"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    return None


def _words(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(word) for word in argv)


def make_root_links(root: Path) -> None:
    """`singularity`, `.run`, `.exec`, ... unless the image has an entry of that name."""
    for name, target in ROOT_LINKS.items():
        if not os.path.lexists(root / name):
            os.symlink(target, root / name)


def make_mount_points(root: Path) -> None:
    """Missing mount-point directories; an existing entry (even a symlink) is left alone."""
    for relative, mode in MOUNT_POINTS.items():
        path = root / relative
        if not is_real_dir(path.parent):
            _log.info("apptainer_mount_point_skipped", path=relative, reason="parent not a dir")
        elif not os.path.lexists(path):
            path.mkdir()
            path.chmod(mode)


def make_bind_files(root: Path) -> None:
    """Empty `etc/hosts` and `etc/resolv.conf` where missing; the image's own are kept."""
    for relative in BIND_FILES:
        path = root / relative
        if not is_real_dir(path.parent):
            _log.info("apptainer_bind_file_skipped", path=relative, reason="parent not a dir")
        elif not os.path.lexists(path):
            ensure_empty_file(path)
