"""Chain names: DUCC's formula over compressed blob digests, and which chains ducc built."""

from __future__ import annotations

import hashlib

from ducc.oci.digest import Digest, chain_ids
from ducc.repository.chains import LayerFacts, cvmfs_ducc_chain_ids, ducc_chains

A, B, C, D = (f"{n}" * 64 for n in "abcd")


def test_ducc_chain_ids_follow_get_chain_ids() -> None:
    blobs = [Digest("sha256", A), Digest("sha256", B)]
    first = hashlib.sha256(f"sha256:{A}".encode()).hexdigest()
    second = hashlib.sha256(f"sha256:{first} sha256:{B}".encode()).hexdigest()
    assert [c.hex for c in cvmfs_ducc_chain_ids(blobs)] == [first, second]


def _facts(blob: str, diff_id: str, *configs: str) -> LayerFacts:
    return LayerFacts(blob, diff_id, frozenset(configs))


def test_only_chains_over_diff_ids_of_images_that_share_the_layers_are_ducc_s() -> None:
    # Image X: layers a, b, c; image Y: a, d. Blob hex == diff_id hex here for brevity.
    layers = [
        _facts(A, A, "x", "y"),
        _facts(B, B, "x"),
        _facts(C, C, "x"),
        _facts(D, D, "y"),
    ]
    x = [c.hex for c in chain_ids([Digest("sha256", h) for h in (A, B, C)])]
    y = [c.hex for c in chain_ids([Digest("sha256", h) for h in (A, D)])]
    theirs = [c.hex for c in cvmfs_ducc_chain_ids([Digest("sha256", h) for h in (A, B, C)])]
    stranger = hashlib.sha256(b"a chain of unknown origin").hexdigest()
    never_together = chain_ids([Digest("sha256", h) for h in (A, D, B)])[-1].hex
    present = {*x, *y, *theirs, stranger, never_together}
    assert ducc_chains(present, layers) == {*x, *y}


def test_a_chain_whose_lower_chain_is_gone_is_not_recognised() -> None:
    layers = [_facts(A, A, "x"), _facts(B, B, "x")]
    top = chain_ids([Digest("sha256", A), Digest("sha256", B)])[-1].hex
    assert ducc_chains({top}, layers) == set()
