"""`ducc convert --repair`: find the damaged products of the wished images and rebuild them.

Before converting, each wished image the repository records (its own record and those of
its platforms) is checked as `verify --deep` checks it: the record and what it names, then
the content of its layers, chains and flat tree. A damaged layer loses its completion mark
(`layers.json`), so the conversion ingests it again over the old tree (swapped in whole); a
damaged chain or flat tree is removed and built again; a damaged record is written again by
the image's final step. Each damaged image is converted again, whatever its registry says.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ducc import log
from ducc.oci.reference import Reference
from ducc.publish.base import Publisher
from ducc.repository.deepcheck import Damage, DeepCheck, image_products
from ducc.repository.layout import METADATA, MULTIARCH, Layout
from ducc.repository.metadata import LAYERS_FILE, MANIFEST_FILE
from ducc.repository.verify import record_problems

_log = log.get("repair")


def repair_images(publisher: Publisher, refs: Sequence[Reference]) -> set[str]:
    """Remove what is damaged of `refs`' products; the names of the images to convert again."""
    layout = Layout(publisher.root)
    check = DeepCheck()
    damaged: set[str] = set()
    removals: dict[Path, None] = {}
    for ref in refs:
        for record in _records(layout, ref):
            problems = record_problems(layout, record)
            products = image_products(layout, record)
            damages = check.image(products) if products is not None else []
            if not problems and not damages:
                continue
            damaged.add(ref.simple_name)
            removals.update(dict.fromkeys(_removal(d) for d in damages))
            _log.warning(
                "image_damaged",
                image=str(ref),
                problems=problems,
                damages=[str(d) for d in damages],
            )
    if removals:
        _log.info("damaged_products_removed", paths=[layout.relative(p) for p in removals])
        publisher.delete(list(removals))
    return damaged


def _records(layout: Layout, ref: Reference) -> list[Path]:
    """The image's record and its platforms' records, those that exist."""
    own = layout.metadata_dir(ref)
    platforms = sorted((layout.root / METADATA / MULTIARCH).glob(f"*/{ref.simple_name}"))
    return [r for r in (own, *platforms) if (r / MANIFEST_FILE).is_file()]


def _removal(damage: Damage) -> Path:
    """What to remove so that the conversion builds the product again."""
    if damage.kind == "layer":
        return damage.product / METADATA / LAYERS_FILE
    return damage.product
