"""`ducc unpack IMAGE DEST`: one image's flat root filesystem, written into a directory."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ducc.cli.common import open_registries, platform_option
from ducc.cli.group import cli
from ducc.cli.limits import limit_options, limits_of
from ducc.oci.platform import Platform
from ducc.oci.reference import parse_reference
from ducc.pipeline.unpack import UnpackedImage, unpack_image


@cli.command()
@click.argument("image")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--platform",
    callback=platform_option,
    metavar="OS/ARCH[/VARIANT]",
    help="The platform picked from an index (default linux/amd64).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was unpacked as JSON.")
@limit_options
def unpack(image: str, dest: Path, platform: Platform | None, as_json: bool, **kw: int) -> None:
    """Pull IMAGE and write its flat root filesystem into DEST (new or empty).

    Layers stream from the registry once each, verified (blob digest, diff_id) and applied
    with OCI whiteout semantics; a hostile or broken layer leaves DEST as it was.
    """
    ref = parse_reference(image)
    with open_registries() as registries:
        result = unpack_image(registries, ref, dest, platform=platform, limits=limits_of(kw))
    summary = _summary(str(ref), dest, result)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    stats = result.stats
    click.echo(
        f"{ref} ({result.image.platform}): {len(stats.layers)} layers, "
        f"{stats.entries} entries, {stats.bytes} bytes -> {dest}"
    )


def _summary(image: str, dest: Path, result: UnpackedImage) -> dict[str, object]:
    return {
        "image": image,
        "platform": str(result.image.platform),
        "manifest": str(result.image.manifest.digest),
        "config": str(result.image.config.digest),
        "dest": str(dest),
        "entries": result.stats.entries,
        "bytes": result.stats.bytes,
        "layers": [
            {"digest": str(layer.digests.blob), "diff_id": str(layer.digests.diff_id)}
            for layer in result.stats.layers
        ],
    }
