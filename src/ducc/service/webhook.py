"""Registry webhooks: push events from the Docker registry's notifications and from Harbor,
accepted only with the shared secret, turned into `PushEvent`s for the loop to schedule.

Docker registry (`notifications.endpoints[].headers: {Authorization: [Bearer <secret>]}`):
`{"events": [{"action": "push", "target": {"repository", "tag", ...}, "request": {"host"}}]}`.
Harbor (webhook policy with auth header `<secret>`): `{"type": "PUSH_ARTIFACT",
"event_data": {"repository": {"repo_full_name"}, "resources": [{"tag", "resource_url"}]}}`.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ducc import log
from ducc.errors import InputError

MAX_BODY = 1 << 20
_log = log.get("webhook")


@dataclass(frozen=True, slots=True)
class PushEvent:
    """A manifest pushed to `host/repository` (host as the registry saw it, if known)."""

    repository: str
    tag: str | None
    host: str | None = None


def parse_events(body: bytes) -> list[PushEvent]:
    """Push events in a Docker registry notification or a Harbor webhook; others ignored."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise InputError(f"webhook body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InputError("webhook body is not a JSON object")
    if isinstance(doc.get("events"), list):
        return [e for item in doc["events"] if (e := _registry_event(item)) is not None]
    if doc.get("type") in {"PUSH_ARTIFACT", "pushImage"}:
        return _harbor_events(doc.get("event_data"))
    raise InputError("webhook body is neither a registry notification nor a Harbor event")


def _registry_event(item: Any) -> PushEvent | None:
    if not isinstance(item, dict) or item.get("action") != "push":
        return None
    target = _object(item.get("target"))
    repository, tag = target.get("repository"), target.get("tag")
    if not isinstance(repository, str) or not isinstance(tag, str):
        return None  # a blob push, or a manifest pushed by digest only
    host = _object(item.get("request")).get("host")
    return PushEvent(repository, tag, host if isinstance(host, str) else None)


def _harbor_events(data: Any) -> list[PushEvent]:
    if not isinstance(data, dict):
        return []
    name = _object(data.get("repository")).get("repo_full_name")
    if not isinstance(name, str):
        return []
    events = []
    for resource in data.get("resources") or []:
        if not isinstance(resource, dict) or not isinstance(resource.get("tag"), str):
            continue
        url = resource.get("resource_url")
        host = url.split("/", 1)[0] if isinstance(url, str) and "/" in url else None
        events.append(PushEvent(name, resource["tag"], host))
    return events


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def authorized(header: str | None, secret: str) -> bool:
    """The shared secret, sent as-is (Harbor) or as `Bearer <secret>` (registry)."""
    if not header:
        return False
    given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else header
    return hmac.compare_digest(given.encode(), secret.encode())


class WebhookServer:
    """Serves POST requests on a thread; `on_push` schedules and returns what it matched."""

    def __init__(
        self, host: str, port: int, secret: str, on_push: Callable[[list[PushEvent]], list[str]]
    ) -> None:
        if not secret:
            raise InputError("a webhook needs a shared secret (--webhook-secret-file)")
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                server.handle(self)

            def log_message(self, *_args: object) -> None:
                pass

        self.secret = secret
        self.on_push = on_push
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.address = self.httpd.server_address

    def start(self) -> WebhookServer:
        threading.Thread(target=self.httpd.serve_forever, name="webhook", daemon=True).start()
        host, port = self.address[0], self.address[1]
        _log.info("webhook_listening", address=f"{host!s}:{port}")
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        if not authorized(request.headers.get("Authorization"), self.secret):
            _log.warning("webhook_refused", reason="bad or missing shared secret")
            return _reply(request, 401, {"error": "unauthorized"})
        length = request.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_BODY:
            return _reply(request, 413 if length.isdigit() else 411, {"error": "bad length"})
        try:
            events = parse_events(request.rfile.read(int(length)))
        except InputError as exc:
            return _reply(request, 400, {"error": exc.message})
        scheduled = self.on_push(events)
        _log.info("webhook_received", events=len(events), scheduled=len(scheduled))
        return _reply(request, 202, {"scheduled": scheduled})


def _reply(request: BaseHTTPRequestHandler, status: int, doc: dict[str, Any]) -> None:
    body = json.dumps(doc).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)
