"""Manifests from a registry: HEAD for the digest, GET verified, and platform resolution.

`resolve` turns a concrete reference into the images to build: one per selected platform,
each with its verified manifest and parsed config. Manifests fetched by digest are checked
against it; a `Docker-Content-Digest` header is checked against the body when present.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ducc import log
from ducc.errors import DigestMismatch, ManifestError, NoMatchingPlatform, SizeMismatch
from ducc.oci.digest import Digest, digest_problem
from ducc.oci.model import (
    MANIFEST_ACCEPT,
    MANIFEST_TYPES,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    Descriptor,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    check_config_descriptor,
    check_config_matches,
    parse_config,
    parse_manifest,
)
from ducc.oci.platform import DEFAULT_PLATFORM, Platform
from ducc.oci.reference import Reference
from ducc.registry.blobs import read_blob
from ducc.registry.client import RegistryClient

_ATTESTATION = "attestation-manifest"


@dataclass(frozen=True, slots=True)
class ResolvedImage:
    """One runnable image a reference resolved to, on one platform."""

    reference: Reference
    platform: Platform
    manifest: ImageManifest
    config: ImageConfig
    index: ImageIndex | None = None

    @property
    def digest(self) -> Digest:
        """What the reference points at: the index digest when there is one."""
        return self.index.digest if self.index is not None else self.manifest.digest


def manifest_path(repository: str, reference: str | Digest) -> str:
    return f"/v2/{repository}/manifests/{reference}"


def head_digest(client: RegistryClient, ref: Reference) -> Digest | None:
    """The digest the registry reports for `ref` without a GET; None when it sends none."""
    fetched = client.fetch(
        "HEAD",
        manifest_path(ref.repository, ref.pull_reference),
        repository=ref.repository,
        limit=0,
        headers={"Accept": MANIFEST_ACCEPT},
    )
    return _header_digest(fetched.headers.get("Docker-Content-Digest"), client, ref)


def _header_digest(value: str | None, client: RegistryClient, ref: Reference) -> Digest | None:
    if not value:
        return None
    problem = digest_problem(value.strip())
    if problem:
        log.get("registry").warning(
            "bad_digest_header", registry=client.api_host, image=str(ref), problem=problem
        )
        return None
    return Digest.parse(value.strip())


def get_manifest(
    client: RegistryClient,
    repository: str,
    reference: str | Digest,
    *,
    expected: Digest | None = None,
) -> ImageManifest | ImageIndex:
    """GET a manifest or index (counted against pull limits), verified and parsed."""
    if expected is None and isinstance(reference, Digest):
        expected = reference
    fetched = client.fetch(
        "GET",
        manifest_path(repository, reference),
        repository=repository,
        limit=MAX_MANIFEST_BYTES,
        headers={"Accept": MANIFEST_ACCEPT},
        counted=True,
    )
    what = f"manifest {client.api_host}/{repository}@{reference}"
    if expected is not None:
        _verify(fetched.body, expected, what)
    claimed = fetched.headers.get("Docker-Content-Digest", "").strip()
    if claimed and digest_problem(claimed) is None:
        _verify(fetched.body, Digest.parse(claimed), f"{what} (Docker-Content-Digest)")
    with _naming(what):
        return parse_manifest(fetched.body, fetched.headers.get("Content-Type"))


@contextlib.contextmanager
def _naming(what: str) -> Iterator[None]:
    """Put the document's name in front of a `ManifestError` raised while reading it, so a
    user learns which image the registry got wrong."""
    try:
        yield
    except ManifestError as exc:
        raise ManifestError(f"{what}: {exc.message}", hint=exc.hint) from None


def _verify(raw: bytes, expected: Digest, what: str) -> None:
    actual = Digest.of(raw, expected.algorithm)
    if actual != expected:
        raise DigestMismatch(what, str(expected), str(actual))


def fetch_config(client: RegistryClient, repository: str, manifest: ImageManifest) -> ImageConfig:
    """The manifest's config, refused by its descriptor (a Helm chart, an artifact) before
    any byte of it is fetched."""
    with _naming(f"config {client.api_host}/{repository}@{manifest.config.digest}"):
        check_config_descriptor(manifest)
        raw = read_blob(client, repository, manifest.config, limit=MAX_CONFIG_BYTES)
        config = parse_config(raw, manifest.config.digest)
        check_config_matches(manifest, config)
    return config


def resolve(
    client: RegistryClient,
    ref: Reference,
    *,
    platform: Platform | None = None,
    multi_arch: bool = False,
    pinned: Digest | None = None,
) -> list[ResolvedImage]:
    """The images `ref` names: the index's entry for `platform` (default linux/amd64), or
    every platform of that OS with `multi_arch`. A single manifest must match an explicitly
    requested platform. `pinned` (the digest a HEAD reported) is fetched by digest, so a tag
    moved meanwhile cannot swap in another manifest than the one reported."""
    expected = ref.digest or pinned
    top = get_manifest(client, ref.repository, expected or ref.pull_reference, expected=expected)
    if isinstance(top, ImageManifest):
        image = _complete(client, ref, top, None, None)
        if platform is not None and image.platform != platform:
            raise NoMatchingPlatform(
                f"{ref}: the image is for {image.platform}, not {platform}",
                hint="drop --platform, or pick an image built for that platform",
            )
        return [image]
    wanted = platform or DEFAULT_PLATFORM
    images = []
    for descriptor in select_manifests(top, wanted, multi_arch=multi_arch, name=str(ref)):
        child = get_manifest(client, ref.repository, descriptor.digest)
        if not isinstance(child, ImageManifest):
            raise ManifestError(f"{ref}: index entry {descriptor.digest} is itself an index")
        if len(child.raw) != descriptor.size:
            raise SizeMismatch(f"manifest {descriptor.digest}", descriptor.size, len(child.raw))
        images.append(_complete(client, ref, child, top, descriptor.platform))
    return images


def _complete(
    client: RegistryClient,
    ref: Reference,
    manifest: ImageManifest,
    index: ImageIndex | None,
    platform: Platform | None,
) -> ResolvedImage:
    config = fetch_config(client, ref.repository, manifest)
    if platform is not None:
        _check_platform(ref, manifest, config, platform)
    return ResolvedImage(ref, platform or config.platform, manifest, config, index)


def _check_platform(
    ref: Reference, manifest: ImageManifest, config: ImageConfig, listed: Platform
) -> None:
    """Refuse an index entry whose config is built for another OS or architecture than the
    index says: publishing it under `.multiarch/<arch>` would hand worker nodes binaries they
    cannot run. A differing variant only warns (older images often record none)."""
    actual = config.platform
    if (actual.os, actual.architecture) != (listed.os, listed.architecture):
        raise ManifestError(
            f"{ref}: index entry {manifest.digest} is listed for {listed}, "
            f"but its config {config.digest} is for {actual}",
            hint="the image's index is wrong; ask its maintainers to rebuild it",
        )
    if actual.variant and actual.variant != listed.variant:
        log.get("registry").warning(
            "platform_variant_differs",
            image=str(ref),
            manifest=str(manifest.digest),
            index=str(listed),
            config=str(actual),
        )


def select_manifests(
    index: ImageIndex, platform: Platform, *, multi_arch: bool = False, name: str = "image"
) -> list[Descriptor]:
    """The index entries to build: the first one for `platform`, or with `multi_arch` the
    first entry per architecture of `platform.os`. Attestations and unknown types are skipped."""
    usable = [d for d in index.manifests if _runnable(d)]
    if multi_arch:
        chosen: dict[str, Descriptor] = {}
        for entry in usable:
            if entry.platform is not None and entry.platform.os == platform.os:
                chosen.setdefault(entry.platform.label, entry)
        found = list(chosen.values())
    else:
        found = [d for d in usable if d.platform == platform][:1]
    if not found:
        raise NoMatchingPlatform(
            f"{name}: the index has no manifest for {platform.os if multi_arch else platform} "
            f"(it has: {_available(usable) or 'none'})",
            hint="choose one of those with --platform os/arch[/variant]",
        )
    return found


def _runnable(descriptor: Descriptor) -> bool:
    return (
        descriptor.media_type in MANIFEST_TYPES
        and descriptor.platform is not None
        and not descriptor.platform.is_unknown
        and descriptor.annotation("vnd.docker.reference.type") != _ATTESTATION
    )


def _available(entries: Sequence[Descriptor]) -> str:
    return ", ".join(sorted({str(d.platform) for d in entries if d.platform is not None}))
