"""Signals become Interrupted where it is safe: never inside a shielded block."""

from __future__ import annotations

import os
import signal

import pytest

from ducc.errors import Interrupted
from ducc.signals import Interrupts


def test_signal_outside_a_shield_raises_at_once() -> None:
    interrupts = Interrupts()
    with interrupts.installed(), pytest.raises(Interrupted, match="SIGTERM"):
        os.kill(os.getpid(), signal.SIGTERM)


def test_shield_holds_the_signal_until_check() -> None:
    interrupts = Interrupts()
    reached = False
    with interrupts.installed():
        with interrupts.shielded():
            os.kill(os.getpid(), signal.SIGINT)
            reached = True
        assert reached
        with pytest.raises(Interrupted, match="SIGINT"):
            interrupts.check()
        interrupts.check()  # raised once only: cleanup code may run on


def test_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with Interrupts().installed():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
