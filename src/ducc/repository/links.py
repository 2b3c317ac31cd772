"""Public paths: relative symlinks from `<registry>/<repository>:<tag>` to flat trees.

With several platforms, each gets `.multiarch/<arch>[:<variant>]/...` and the public path
becomes a CernVM-FS variant symlink resolved by each client's `CVMFS_ARCH`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ducc.errors import PublishError
from ducc.files import sibling_name
from ducc.oci.platform import Platform, platform_of_label
from ducc.oci.reference import Reference
from ducc.repository.layout import MULTIARCH, Layout, relative_link

DEFAULT_ARCH = "amd64"
# DUCC's alias links under .multiarch: the name clients may set -> the directory it means.
ARCH_ALIASES = {
    "aarch64": ("arm64", "arm64:v8"),
    "x86_64": ("amd64",),
    "x86-64": ("amd64",),
    "i386": ("386",),
    "armhf": ("arm:v7", "arm"),
    "armel": ("arm:v6",),
}


def replace_symlink(link: Path, target: str) -> None:
    """Point `link` at `target` atomically; never replace a real file or directory."""
    if link.exists() and not link.is_symlink():
        raise PublishError(f"refusing to replace {link}: it is not a symlink")
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.parent / sibling_name(link.name, f".tmp-{secrets.token_hex(4)}")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def link_public(layout: Layout, ref: Reference, flat_dir: Path) -> Path:
    link = layout.public_path(ref)
    replace_symlink(link, relative_link(link, flat_dir))
    return link


def link_platform(layout: Layout, label: str, ref: Reference, flat_dir: Path) -> Path:
    link = layout.multiarch_path(label, ref)
    replace_symlink(link, relative_link(link, flat_dir))
    return link


def platform_label(layout: Layout, platform: Platform) -> str:
    """The `.multiarch` directory name of `platform`: the one the repository already has (DUCC
    spelled `arm64:v8` and `arm` where ducc says `arm64` and `arm:v7`, and clients and alias
    links use those), else ducc's label."""
    top = layout.root / MULTIARCH
    own = top / platform.label
    if (own.is_dir() and not own.is_symlink()) or not top.is_dir():
        return platform.label
    for directory in sorted(top.iterdir()):
        real = directory.is_dir() and not directory.is_symlink()
        if real and platform_of_label(directory.name) == platform:
            return directory.name
    return platform.label


def link_variant(layout: Layout, ref: Reference, default_label: str = DEFAULT_ARCH) -> Path:
    """The public path as `../…/.multiarch/$(CVMFS_ARCH:-amd64)/<registry>/<repo>:<tag>`."""
    link = layout.public_path(ref)
    up = os.path.relpath(layout.root, link.parent)
    target = f"{up}/{MULTIARCH}/$(CVMFS_ARCH:-{default_label})/{ref.simple_name}"
    replace_symlink(link, target)
    return link


def link_arch_aliases(layout: Layout) -> None:
    """`.multiarch/aarch64 -> arm64` and friends, where the target exists and the alias
    is not a real directory (DUCC creates the same aliases)."""
    top = layout.root / MULTIARCH
    for alias, candidates in ARCH_ALIASES.items():
        path = top / alias
        if path.exists() and not path.is_symlink():
            continue
        target = next((c for c in candidates if (top / c).is_dir()), None)
        if target is not None and (not path.is_symlink() or os.readlink(path) != target):
            replace_symlink(path, target)
