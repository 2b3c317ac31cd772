"""Public symlinks: relative, atomic, never replacing a real file; variant links for arches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ducc.errors import PublishError
from ducc.oci.digest import Digest
from ducc.oci.reference import parse_reference
from ducc.repository.layout import Layout
from ducc.repository.links import link_arch_aliases, link_platform, link_public, link_variant

REF = parse_reference("https://registry.hub.docker.com/library/centos:centos7")


def test_public_link_is_relative_and_resolves(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    flat = layout.flat_dir(Digest.of(b"config"))
    flat.mkdir(parents=True)
    link = link_public(layout, REF, flat)
    assert link == tmp_path / "registry.hub.docker.com/library/centos:centos7"
    assert os.readlink(link) == f"../../.flat/{flat.parent.name}/{flat.name}"
    assert link.resolve() == flat.resolve()


def test_public_link_moves_atomically_to_a_new_flat(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    old, new = (layout.flat_dir(Digest.of(x)) for x in (b"a", b"b"))
    old.mkdir(parents=True)
    new.mkdir(parents=True)
    link_public(layout, REF, old)
    link = link_public(layout, REF, new)
    assert link.resolve() == new.resolve()
    assert [p.name for p in link.parent.iterdir()] == ["centos:centos7"]


def test_never_replaces_a_real_directory(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.public_path(REF).mkdir(parents=True)
    with pytest.raises(PublishError, match="not a symlink"):
        link_public(layout, REF, tmp_path / "x")


def test_variant_link_text_and_platform_links(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    flat = layout.flat_dir(Digest.of(b"arm"))
    flat.mkdir(parents=True)
    arm = link_platform(layout, "arm64", REF, flat)
    assert arm.resolve() == flat.resolve()
    link = link_variant(layout, REF)
    assert os.readlink(link) == (
        "../../.multiarch/$(CVMFS_ARCH:-amd64)/registry.hub.docker.com/library/centos:centos7"
    )
    link_arch_aliases(layout)
    assert os.readlink(tmp_path / ".multiarch/aarch64") == "arm64"
    assert not (tmp_path / ".multiarch/x86_64").is_symlink()  # no amd64 tree to alias
