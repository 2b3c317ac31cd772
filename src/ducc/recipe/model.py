"""What a recipe says once read: repositories, wishes, recipes and the wishlist of them all,
and the refused entries; DUCC's `output_format` substitution and the `cvmfs_repo` grammar."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ducc.oci.glob import Glob
from ducc.oci.reference import Reference

OUTPUT_VARIABLES = ("scheme", "registry", "repository", "tag", "digest", "reference", "image")
VARIABLE = re.compile(r"\$\((?P<name>[^)]*)\)")
_REPO_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True, slots=True)
class CvmfsRepo:
    """`cvmfs_repo` of a recipe: a repository name and an optional subdirectory in it."""

    name: str
    subdir: str = ""

    def __str__(self) -> str:
        return f"{self.name}/{self.subdir}" if self.subdir else self.name


@dataclass(frozen=True, slots=True)
class Wish:
    """One `input` entry: an image (or wildcard) the repository should hold."""

    recipe: str
    line: int
    index: int
    input: str
    reference: Reference
    cvmfs_repo: CvmfsRepo
    output_format: str | None = None
    ignore_errors: bool = False

    @property
    def location(self) -> str:
        return f"{self.recipe}:{self.line}: input[{self.index}]"

    def output_name(self, concrete: Reference | None = None) -> str | None:
        """The DUCC output (thin image) name for this wish or one of its expanded tags."""
        if self.output_format is None:
            return None
        return format_output(self.output_format, concrete or self.reference)


@dataclass(frozen=True, slots=True)
class Recipe:
    path: str
    cvmfs_repo: CvmfsRepo
    wishes: tuple[Wish, ...]
    user: str | None = None
    output_format: str | None = None
    ignore_errors: tuple[Glob, ...] = ()


@dataclass(slots=True)
class Wishlist:
    """Every recipe given at once, with duplicate wishes merged."""

    recipes: list[Recipe] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    refused: list[RefusedWish] = field(default_factory=list)  # read entry by entry only

    @property
    def wishes(self) -> list[Wish]:
        return [wish for recipe in self.recipes for wish in recipe.wishes]


def format_output(template: str, ref: Reference) -> str:
    """Substitute DUCC's `$(variable)`s in an `output_format`."""
    values = {
        "scheme": ref.scheme,
        "registry": ref.registry,
        "repository": ref.repository,
        "tag": ref.tag or "",
        "digest": str(ref.digest) if ref.digest else "",
        "reference": ref.reference,
        "image": ref.image,
    }
    # An unknown variable stays as written, as DUCC left it (only a strict read refuses it).
    return VARIABLE.sub(lambda m: values.get(m.group("name"), m.group(0)), template)


@dataclass(frozen=True, slots=True)
class RefusedWish:
    """An `input` entry that cannot be read; the other entries are converted."""

    recipe: str
    line: int
    index: int
    input: str
    problem: str  # located: `recipe.yaml:7: input[2]: ...`
    cvmfs_repo: CvmfsRepo
    ignore_errors: bool = False

    @property
    def location(self) -> str:
        return f"{self.recipe}:{self.line}: input[{self.index}]"


def cvmfs_repo_problem(text: str) -> str | None:
    """Why `text` is not a usable `cvmfs_repo` (`repo` or `repo/subdir`), or None."""
    if text.startswith("/"):
        return f"{text!r} is absolute; give the repository name, e.g. 'unpacked.cern.ch'"
    for component in text.split("/"):
        if component in {"", ".", ".."}:
            return f"{text!r} has an empty, '.' or '..' path component"
        if not _REPO_COMPONENT.fullmatch(component):
            return f"{text!r}: bad characters in {component!r} (letters, digits, '.', '_', '-')"
    return None
