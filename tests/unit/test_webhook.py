"""Webhook payloads (Docker registry notifications, Harbor) and the shared secret."""

from __future__ import annotations

import json

import pytest

from ducc.errors import InputError
from ducc.service.webhook import PushEvent, authorized, parse_events

REGISTRY = {
    "events": [
        {
            "action": "push",
            "target": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "repository": "team/app",
                "tag": "v2",
                "digest": "sha256:" + "a" * 64,
            },
            "request": {"host": "registry.example:5000"},
        },
        {"action": "push", "target": {"repository": "team/app", "digest": "sha256:" + "b" * 64}},
        {"action": "pull", "target": {"repository": "team/app", "tag": "v1"}},
    ]
}
HARBOR = {
    "type": "PUSH_ARTIFACT",
    "event_data": {
        "resources": [{"tag": "1.0", "resource_url": "harbor.example/proj/app:1.0"}],
        "repository": {"repo_full_name": "proj/app", "namespace": "proj", "name": "app"},
    },
}


def test_registry_notification_keeps_only_tag_pushes() -> None:
    assert parse_events(json.dumps(REGISTRY).encode()) == [
        PushEvent("team/app", "v2", "registry.example:5000")
    ]


def test_harbor_push() -> None:
    assert parse_events(json.dumps(HARBOR).encode()) == [
        PushEvent("proj/app", "1.0", "harbor.example")
    ]


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"type": "DELETE_ARTIFACT"}'])
def test_other_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(InputError, match="webhook body"):
        parse_events(body)


def test_shared_secret_plain_or_bearer() -> None:
    assert authorized("s3cret", "s3cret")
    assert authorized("Bearer s3cret", "s3cret")
    assert not authorized("Bearer wrong", "s3cret")
    assert not authorized(None, "s3cret")
    assert not authorized("", "s3cret")
