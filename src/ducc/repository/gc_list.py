"""The list `ducc gc --scan-only --db-path FILE` writes and `--delete-only --db-path FILE` reads.

DUCC kept its candidates in an SQLite database between its scan and delete phases; ducc
writes a plain list instead (one repository-relative path per line, `#` comments) that an
operator can review and edit. A delete-only run removes a listed path only if a fresh scan
finds it still unreachable, so a list never removes what an image published since uses.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from ducc.errors import InputError
from ducc.files import replace_file
from ducc.repository.layout import PODMAN_STORE
from ducc.repository.podman import IMAGES

if TYPE_CHECKING:
    from ducc.repository.gc import GcReport

SQLITE_MAGIC = b"SQLite format 3\x00"
_MAX_BYTES = 256 * 1024 * 1024


def podman_path(image_id: str) -> str:
    """How a podman entry is named in the list."""
    return f"{PODMAN_STORE}/{IMAGES}/{image_id}"


def write_candidates(path: Path, report: GcReport) -> None:
    verb = "candidates (scan only)" if report.dry_run else "removed"
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lines = [f"# ducc gc: {verb}, {when}; one repository path per line"]
    lines += report.removed
    lines += [podman_path(image_id) for image_id in report.podman_images]
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, ("\n".join(lines) + "\n").encode())


def read_candidates(path: Path) -> frozenset[str]:
    """The paths a list names; `InputError` when it is missing, too big or DUCC's database."""
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_BYTES + 1)
    except OSError as exc:
        raise InputError(
            f"--db-path {path}: cannot read it: {exc.strerror}",
            hint="write it first with `ducc gc REPO --scan-only --db-path FILE`",
        ) from None
    if data.startswith(SQLITE_MAGIC):
        raise InputError(
            f"--db-path {path} is DUCC's SQLite database; ducc keeps no database",
            hint="run `ducc gc REPO --scan-only --db-path FILE` to write ducc's list, then "
            "`--delete-only --db-path FILE`",
        )
    if len(data) > _MAX_BYTES:
        raise InputError(f"--db-path {path}: larger than {_MAX_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"--db-path {path}: not a text list of paths") from None
    lines = (line.strip() for line in text.splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))
