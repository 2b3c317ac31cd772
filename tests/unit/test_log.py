"""Redaction: credentials in URLs, Authorization values, and every secret ducc holds."""

from __future__ import annotations

import base64
import io
import json
import uuid

from ducc import log
from ducc.registry.credentials import Credential


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_userinfo_and_authorization_values_are_redacted() -> None:
    assert log.redact("GET https://u:p@h.test/v2/") == "GET https://***@h.test/v2/"
    assert log.redact("got Bearer abc.def-ghi") == "got Bearer ***"
    assert log.redact("got basic dTpw") == "got basic ***"


def test_hidden_secrets_and_their_base64_are_replaced_anywhere() -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    assert log.redact(f"echo {secret}") == f"echo {secret}"
    log.hide(secret)
    assert log.redact(f"denied for {secret}!") == "denied for ***!"
    assert log.redact(f"denied for {_b64(secret)}") == "denied for ***"


def test_a_credential_hides_its_password_and_basic_pair() -> None:
    password = f"pw-{uuid.uuid4().hex}"
    Credential("reader", password, "test")
    message = f"no access for {_b64('reader:' + password)} ({password})"
    assert log.redact(message) == "no access for *** (***)"
    assert "reader" in log.redact("user reader")  # the username is no secret


def test_short_values_are_not_hidden() -> None:
    log.hide("abc")
    assert log.redact("abc def") == "abc def"


def test_log_events_are_redacted() -> None:
    token = f"tok-{uuid.uuid4().hex}"
    log.hide(token)
    out = io.StringIO()
    log.configure(fmt="json", stream=out)
    log.get("test").warning("registry_said", message=f"bad token {token}", token=token)
    event = json.loads(out.getvalue())
    assert event["message"] == "bad token ***"
    assert event["token"] == "***"
    assert token not in out.getvalue()
