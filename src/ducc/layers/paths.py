"""Resolve directories inside a tree as if the tree were `/` (chroot semantics), with a cache.

A symlink in a parent is followed, absolute targets restart at the tree's root and `..` never
climbs above it, so `lib -> /usr/lib` works and `x -> ../../..` stays inside. The final
component of a name is never resolved here. Results are cached per logical directory; the
caller forgets the cache whenever it removes or replaces a directory or a symlink.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

MAX_SYMLINKS = 40  # as Linux's path walk (ELOOP)


class ResolveError(Exception):
    """A directory cannot be resolved inside the tree; the message says why."""


SeenDirectory = Callable[[str, os.stat_result], None]
MadeDirectory = Callable[[str], None]


class Resolver:
    """Maps logical directory names (normalised, '' = root) to real relative paths.

    Real paths contain no symlinks: every component was checked to be a directory. When
    `create` is set, missing directories are made (0755), as tar extractors make parents.
    `seen` is called once per existing directory met while walking (to save its times),
    `made` for each directory created.
    """

    def __init__(
        self,
        root: str,
        *,
        seen: SeenDirectory | None = None,
        made: MadeDirectory | None = None,
    ) -> None:
        self.root = root
        self._seen = seen
        self._made = made
        self._cache: dict[str, str] = {"": ""}

    def path(self, rel: str) -> str:
        """The absolute path of a real relative path."""
        return f"{self.root}/{rel}" if rel else self.root

    def forget(self) -> None:
        self._cache = {"": ""}

    def learn(self, logical: str, real: str) -> None:
        """`real` is a directory just made (or found) for the entry named `logical`: its
        children resolve without looking at it again."""
        self._cache[logical] = self._cache[real] = real

    def directory(self, logical: str, *, create: bool) -> str | None:
        """The real path of directory `logical`, or None when it does not exist (and
        `create` is off). Raises ResolveError for a non-directory or a symlink loop."""
        cached = self._cache.get(logical)
        if cached is not None:
            return cached
        parts = logical.split("/")
        known = len(parts) - 1
        while known and "/".join(parts[:known]) not in self._cache:
            known -= 1
        real = self._cache["/".join(parts[:known])] if known else ""
        hops = [0]
        for index in range(known, len(parts)):
            step = self._step(real, parts[index], create, hops)
            if step is None:
                return None
            real = self._cache["/".join(parts[: index + 1])] = step
        return real

    def _step(self, base: str, part: str, create: bool, hops: list[int]) -> str | None:
        """Resolve `part` inside the real directory `base`. Any name below a real path is a
        logical name as well, so results are cached under it too."""
        rel = f"{base}/{part}" if base else part
        cached = self._cache.get(rel)
        if cached is not None:
            return cached
        path = self.path(rel)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            if not create:
                return None
            os.mkdir(path, 0o755)
            if self._made is not None:
                self._made(rel)
            real: str | None = rel
        else:
            real = self._existing(base, rel, info, create, hops)
        if real is not None:
            self._cache[rel] = real
        return real

    def _existing(
        self, base: str, rel: str, info: os.stat_result, create: bool, hops: list[int]
    ) -> str | None:
        if stat.S_ISDIR(info.st_mode):
            if self._seen is not None:
                self._seen(rel, info)
            return rel
        if stat.S_ISLNK(info.st_mode):
            hops[0] += 1
            if hops[0] > MAX_SYMLINKS:
                raise ResolveError(f"too many levels of symbolic links at {rel!r}")
            target = os.readlink(self.path(rel))
            return self._follow("" if target.startswith("/") else base, target, create, hops)
        raise ResolveError(f"{rel!r} is not a directory")

    def _follow(self, real: str, target: str, create: bool, hops: list[int]) -> str | None:
        """Walk a symlink target from `real`, component by component, never above root."""
        for part in target.split("/"):
            if not part or part == ".":
                continue
            if part == "..":
                real = real.rpartition("/")[0]
                continue
            step = self._step(real, part, create, hops)
            if step is None:
                return None
            real = step
        return real


_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO must not block


def _entry_path(resolver: Resolver, name: str) -> str | None:
    """The real path of entry `name` (logical, normalised) inside the tree, its parent
    directories resolved there and its last component not followed; None when the parent is
    missing or no directory."""
    logical, _, base = name.rpartition("/")
    try:
        parent = resolver.directory(logical, create=False)
    except ResolveError:
        return None
    if parent is None:
        return None
    return resolver.path(f"{parent}/{base}" if parent else base)


def read_symlink(resolver: Resolver, name: str) -> tuple[str, os.stat_result] | None:
    """The target and `lstat` of the symlink `name` (logical, normalised) inside the tree, or
    None when `name` is no symlink there. The link itself is read, never followed."""
    path = _entry_path(resolver, name)
    if path is None:
        return None
    try:
        info = os.lstat(path)
        return (os.readlink(path), info) if stat.S_ISLNK(info.st_mode) else None
    except OSError:
        return None


def open_file(resolver: Resolver, name: str) -> int | None:
    """A read descriptor of the regular file `name` (logical, normalised) inside the tree, or
    None when there is none: missing, a directory, a symlink (never followed), a device."""
    path = _entry_path(resolver, name)
    if path is None:
        return None
    try:
        fd = os.open(path, _READ)
    except OSError:
        return None
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return fd
    os.close(fd)
    return None


def unresolved_link(lower: Resolver | None, link: str) -> str:
    """Why a hard link to `link` found no target in its own layer nor in the tree below: a
    directory there (never linked to), or nothing at all."""
    path = _entry_path(lower, link) if lower is not None else None
    try:
        if path is not None and stat.S_ISDIR(os.lstat(path).st_mode):
            return f"hard link to a directory ({link!r})"
    except OSError:
        pass
    return f"hard link target {link!r} does not exist in this layer or below"
