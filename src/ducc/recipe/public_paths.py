"""Where wishes publish: each public path belongs to one wish, and fits in a file name.

Two wishes of one repository that name the same path (`app:1.0` and `app:1.0@sha256:...`,
or a tag pinned to a digest that a wildcard of the same repository matches) would flip the
path between two flat trees on every run, one publish each time; both are named, with their
recipe and line, and nothing is converted. A path whose last part (`<repository>:<tag>`)
is longer than a file name may be (255 bytes) cannot exist on any file system.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

from ducc.files import NAME_MAX
from ducc.recipe.model import Wish


def public_path_problems(wishes: Sequence[Wish]) -> list[str]:
    """Every collision and every path too long, as located recipe problems."""
    groups: dict[tuple[str, str, str], list[Wish]] = {}
    for wish in wishes:
        ref = wish.reference
        groups.setdefault((str(wish.cvmfs_repo), ref.registry, ref.repository), []).append(wish)
    problems = [_too_long(w) for w in wishes if not w.reference.is_wildcard]
    for group in groups.values():
        problems += [_collision(a, b) for a, b in combinations(group, 2) if _collide(a, b)]
    return [p for p in problems if p]


def _collide(first: Wish, second: Wish) -> bool:
    """Whether the two wishes would publish different images at one path."""
    a, b = first.reference, second.reference
    if not a.is_wildcard and not b.is_wildcard:
        return a.simple_name == b.simple_name  # distinct wishes (duplicates are merged)
    if a.is_wildcard and b.is_wildcard:
        return False  # both follow the registry's tags: the same image for a path
    pattern, pinned = (a, b) if a.is_wildcard else (b, a)
    return (
        pinned.digest is not None
        and pinned.tag is not None
        and (pattern.tag_glob().matches(pinned.tag))
    )


def _collision(first: Wish, second: Wish) -> str:
    path = second.reference.simple_name if not second.reference.is_wildcard else None
    where = path or first.reference.simple_name
    return (
        f"{second.location}: {second.input!r} publishes to {where}, as "
        f"{first.location} ({first.input!r}) does: the path would flip between two images; "
        "keep one of them"
    )


def _too_long(wish: Wish) -> str:
    last = wish.reference.simple_name.rsplit("/", 1)[-1]
    size = len(last.encode())
    if size <= NAME_MAX:
        return ""
    return (
        f"{wish.location}: {wish.input!r}: the public path ends in {size} bytes "
        f"({last[:40]}...), more than a file name may hold ({NAME_MAX})"
    )
