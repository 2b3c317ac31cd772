"""The fault proxy itself: it forwards faithfully, spoils exactly what its rules select, and
counts every request (so the fault suite's bounds mean something)."""

from __future__ import annotations

import hashlib
import http.client

import pytest
import requests
import urllib3

from tests.support.ducc import unique
from tests.support.faultproxy import Fault, FaultProxy, Rule, kind_of
from tests.support.images import file, make_image, make_layer
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.integration

LAYER = make_layer([file("a", b"x" * 5000)], compression="none")
IMAGE = make_image([LAYER])


@pytest.fixture
def blob_url(registry: LocalRegistry, proxy: FaultProxy) -> str:
    name = unique("proxy/app")
    registry.pusher().image(name, "1", IMAGE)
    return f"{proxy.url}/v2/{name}/blobs/{LAYER.digest}"


def test_without_rules_the_answer_is_the_registry_s(proxy: FaultProxy, blob_url: str) -> None:
    response = requests.get(blob_url, timeout=10)
    assert response.status_code == 200
    assert response.content == LAYER.blob
    ranged = requests.get(blob_url, headers={"Range": "bytes=100-"}, timeout=10)
    assert (ranged.status_code, ranged.content) == (206, LAYER.blob[100:])
    assert [(s.method, s.kind, s.range) for s in proxy.seen] == [
        ("GET", "blob", None),
        ("GET", "blob", "bytes=100-"),
    ]


def test_a_rule_spoils_only_its_first_matches(proxy: FaultProxy, blob_url: str) -> None:
    proxy.add(Rule(Fault.STATUS, "GET", r"/blobs/", status=503, times=2, retry_after=1))
    statuses = [requests.get(blob_url, timeout=10).status_code for _ in range(3)]
    head = requests.head(blob_url, timeout=10)
    assert statuses == [503, 503, 200]
    assert head.status_code == 200  # another method: untouched
    assert proxy.count(kind="blob", method="GET") == 3
    assert proxy.faults_fired() == 2


def test_a_flipped_body_keeps_its_length_and_changes_its_digest(
    proxy: FaultProxy, blob_url: str
) -> None:
    proxy.add(Rule(Fault.FLIP, "GET", r"/blobs/"))
    body = requests.get(blob_url, timeout=10).content
    assert len(body) == len(LAYER.blob)
    assert "sha256:" + hashlib.sha256(body).hexdigest() != LAYER.digest
    assert sum(a != b for a, b in zip(body, LAYER.blob, strict=True)) == 1


@pytest.mark.parametrize(("fault", "delta"), [(Fault.LONG_LENGTH, 7), (Fault.SHORT_LENGTH, -7)])
def test_a_wrong_content_length_is_announced(
    proxy: FaultProxy, blob_url: str, fault: Fault, delta: int
) -> None:
    proxy.add(Rule(fault, "GET", r"/blobs/", keep=7))
    with requests.get(blob_url, stream=True, timeout=10) as response:
        assert int(response.headers["Content-Length"]) == len(LAYER.blob) + delta


@pytest.mark.parametrize("fault", [Fault.RESET, Fault.TRUNCATE])
def test_a_broken_body_ends_early(proxy: FaultProxy, blob_url: str, fault: Fault) -> None:
    proxy.add(Rule(fault, "GET", r"/blobs/", keep=1000))
    with requests.get(blob_url, stream=True, timeout=10) as response:
        assert int(response.headers["Content-Length"]) == len(LAYER.blob)
        got: list[bytes] = []
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            got.extend(response.iter_content(100))
    assert b"".join(got) == LAYER.blob[:1000]


def test_a_dropped_request_gets_no_answer(proxy: FaultProxy, blob_url: str) -> None:
    proxy.add(Rule(Fault.DROP, "GET", r"/blobs/"))
    with pytest.raises(requests.ConnectionError):
        requests.get(blob_url, timeout=10)
    assert [s.status for s in proxy.seen] == [0]


def test_a_stall_outlasts_the_read_timeout(proxy: FaultProxy, blob_url: str) -> None:
    proxy.add(Rule(Fault.STALL, "GET", r"/blobs/", keep=10, stall=5))
    with requests.get(blob_url, stream=True, timeout=(2, 0.3)) as response:
        assert response.raw.read(10) == LAYER.blob[:10]
        with pytest.raises(urllib3.exceptions.ReadTimeoutError):
            response.raw.read(100)
    assert proxy.faults_fired() == 1  # counted while it stalls, not once it ends


def test_paths_are_sorted_into_kinds() -> None:
    assert kind_of("/v2/") == "base"
    assert kind_of("/v2/a/b/manifests/1") == "manifest"
    assert kind_of("/v2/a/b/blobs/sha256:00") == "blob"
    assert kind_of("/v2/a/b/tags/list") == "tags"
    assert kind_of("/v2/_catalog") == "other"


def test_a_head_answer_keeps_its_length_and_no_body(proxy: FaultProxy, blob_url: str) -> None:
    host, _, port = proxy.host.partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("HEAD", blob_url.split(proxy.host, 1)[1])
    response = connection.getresponse()
    assert (response.status, response.getheader("Content-Length")) == (200, str(len(LAYER.blob)))
    assert response.read() == b""
    connection.close()
