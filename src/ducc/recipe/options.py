"""How recipes are read: all at once or entry by entry, and DUCC's extra ignoreErrors file.

DUCC converted every entry it could parse and only warned about the others; `ducc convert`
and `ducc loop` do the same, each refused entry becoming a failed wish with its file and line.
`ducc check`, `convert --strict` and `prune` (which must not unpublish what it cannot read)
refuse a recipe with any problem. `DUCC_IGNORE_ERRORS_FILE` names a YAML file whose
`ignoreErrors:` list is added to every recipe's, as DUCC adds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from ducc.errors import RecipeInvalid
from ducc.recipe.model import CvmfsRepo

IGNORE_ERRORS_VARIABLE = "DUCC_IGNORE_ERRORS_FILE"
_MAX_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RecipeOptions:
    strict: bool = True  # any problem refuses the whole recipe (exit 2)
    extra_ignore_errors: tuple[str, ...] = ()
    repository: CvmfsRepo | None = None  # DUCC's `prune-images REPO`: overrides cvmfs_repo


def ignore_errors_from_environment(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The patterns of the file `DUCC_IGNORE_ERRORS_FILE` names; none when it is unset."""
    path = environ.get(IGNORE_ERRORS_VARIABLE, "").strip()
    return read_ignore_errors_file(Path(path)) if path else ()


def read_ignore_errors_file(path: Path) -> tuple[str, ...]:
    """`ignoreErrors: [pattern, ...]` from `path`; `RecipeInvalid` when it cannot be read."""
    where = f"{path} ({IGNORE_ERRORS_VARIABLE})"
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RecipeInvalid([f"{where}: cannot read it: {exc.strerror}"]) from None
    if len(data) > _MAX_FILE_BYTES:
        raise RecipeInvalid([f"{where}: larger than {_MAX_FILE_BYTES} bytes"])
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise RecipeInvalid([f"{where}: not valid YAML: {exc}"]) from None
    patterns = doc.get("ignoreErrors") if isinstance(doc, dict) else None
    if patterns is None:
        patterns = []
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        raise RecipeInvalid([f"{where}: 'ignoreErrors' must be a list of patterns"])
    return tuple(patterns)
