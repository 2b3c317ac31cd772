"""The poller: HEAD only, GET only where the header is missing, every outcome reported."""

from __future__ import annotations

import pytest
import responses

from ducc.errors import AuthError, ManifestError, NotFound
from ducc.oci.digest import Digest
from ducc.oci.reference import Reference, parse_reference
from ducc.pipeline.poller import PollStatus, poll
from tests.support.fake_registry import FakeRegistry, error_body
from tests.support.images import file, make_image, make_layer
from tests.unit.conftest import MakeRegistries

OLD = make_image([make_layer([file("v", "1")])])
NEW = make_image([make_layer([file("v", "2")])])


def ref(tag: str) -> Reference:
    return parse_reference(f"registry.test/team/app:{tag}")


def test_every_outcome_from_head_requests_alone(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps, auth="bearer")
    fake.image("team/app", "same", OLD)
    fake.image("team/app", "moved", NEW)
    fake.image("team/app", "fresh", NEW)
    fake.missing("team/app", "gone")
    fake.missing("team/app", "never")
    recorded = {
        "same": Digest.parse(OLD.digest),
        "moved": Digest.parse(OLD.digest),
        "gone": Digest.parse(OLD.digest),
    }
    images = [ref(t) for t in ("same", "moved", "fresh", "gone", "never")]
    results = poll(make_registries(), images, lambda r: recorded.get(r.tag or ""), concurrency=4)
    assert [(r.reference.tag, r.status) for r in results] == [
        ("same", PollStatus.UNCHANGED),
        ("moved", PollStatus.CHANGED),
        ("fresh", PollStatus.NEW),
        ("gone", PollStatus.VANISHED),
        ("never", PollStatus.FAILED),
    ]
    moved = results[1]
    assert (str(moved.old), str(moved.new)) == (OLD.digest, NEW.digest)
    assert isinstance(results[4].error, NotFound)
    assert not fake.calls("GET", "/manifests/")
    assert len(fake.calls("HEAD")) == 5
    assert len(fake.token_requests) == 1


def test_get_where_the_registry_omits_the_digest_header(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps)
    fake.manifest("team/app", "v1", b"", OLD.manifest_type, digest_header=False, method="HEAD")
    fake.manifest("team/app", "v1", OLD.manifest, OLD.manifest_type, digest_header=False)
    (result,) = poll(make_registries(), [ref("v1")], lambda _r: Digest.parse(OLD.digest))
    assert result.status is PollStatus.UNCHANGED
    assert len(fake.calls("GET", "/manifests/v1")) == 1


@pytest.mark.parametrize(("status", "code"), [(401, "UNAUTHORIZED"), (403, "DENIED"), (500, None)])
def test_ambiguous_answers_fail_instead_of_vanishing(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, status: int, code: str | None
) -> None:
    fake = FakeRegistry(rsps)
    url = f"{fake.base}/v2/team/app/manifests/v1"
    rsps.add("HEAD", url, status=status, body=error_body(code) if code else b"")
    (result,) = poll(
        make_registries(retry_attempts=1), [ref("v1")], lambda _r: Digest.parse(OLD.digest)
    )
    assert result.status is PollStatus.FAILED
    assert result.old is not None
    assert result.new is None
    if status != 500:
        assert isinstance(result.error, AuthError)


def test_digest_pinned_reference_is_checked_by_digest(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps)
    fake.image("team/app", None, OLD)
    pinned = parse_reference(f"registry.test/team/app@{OLD.digest}")
    (result,) = poll(make_registries(), [pinned], lambda _r: None)
    assert (result.status, str(result.new)) == (PollStatus.NEW, OLD.digest)
    (call,) = fake.calls("HEAD")
    assert (call.request.url or "").endswith(f"/manifests/{OLD.digest}")


def test_an_unreadable_record_fails_only_that_image(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps).image("team/app", "v1", OLD)

    def recorded(r: Reference) -> Digest | None:
        if r.tag == "broken":
            raise ManifestError("manifest.json is not valid JSON")
        return Digest.parse(OLD.digest)

    results = poll(make_registries(), [ref("broken"), ref("v1")], recorded, concurrency=2)
    assert [r.status for r in results] == [PollStatus.FAILED, PollStatus.UNCHANGED]
    assert "not valid JSON" in str(results[0].error)
