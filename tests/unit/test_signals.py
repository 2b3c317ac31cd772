"""Signals only set flags; work stops where it checks them, never inside a shielded block."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from ducc.errors import Interrupted
from ducc.interrupts import Interrupts
from ducc.service.signals import installed


def test_a_signal_is_noted_and_raised_where_work_checks() -> None:
    interrupts = Interrupts()
    with installed(interrupts):
        os.kill(os.getpid(), signal.SIGTERM)  # the handler returns: nothing is raised here
        assert interrupts.stopping
        with pytest.raises(Interrupted, match="SIGTERM"):
            interrupts.check()
        interrupts.check()  # raised once per thread: cleanup code may run on


def test_shield_holds_the_signal_until_check() -> None:
    interrupts = Interrupts()
    with installed(interrupts):
        with interrupts.shielded():
            os.kill(os.getpid(), signal.SIGINT)
            interrupts.check()  # shielded: nothing happens
        with pytest.raises(Interrupted, match="SIGINT"):
            interrupts.check()


def test_every_worker_thread_stops_at_its_next_check() -> None:
    interrupts = Interrupts()
    raised: list[str] = []

    def work() -> None:
        try:
            interrupts.sleep(30)
        except Interrupted:
            raised.append(threading.current_thread().name)

    with installed(interrupts):
        workers = [threading.Thread(target=work, name=f"w{n}") for n in range(3)]
        for worker in workers:
            worker.start()
        os.kill(os.getpid(), signal.SIGTERM)
        for worker in workers:
            worker.join(timeout=10)
    assert sorted(raised) == ["w0", "w1", "w2"]  # not 30 s later: within a slice


def test_a_long_sleep_ends_soon_after_sigterm() -> None:
    interrupts = Interrupts()
    with installed(interrupts):
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
        started = time.monotonic()
        with pytest.raises(Interrupted):
            interrupts.sleep(60)
    assert time.monotonic() - started < 10  # a back-off of a minute does not hold a stop


def test_a_storm_of_sighups_is_one_reload_and_wakes_a_wait() -> None:
    interrupts = Interrupts()
    wake = threading.Event()
    with installed(interrupts, hangup=True):
        for _ in range(5000):
            os.kill(os.getpid(), signal.SIGHUP)
        assert interrupts.wait(wake, 30) is False  # returned at once: a reload is due
        assert interrupts.take_hangup()
        assert not interrupts.take_hangup()  # 5000 signals, one reload


def test_handlers_are_restored_and_sighup_is_not_left_deadly() -> None:
    before = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    with installed(Interrupts(), hangup=True):
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
    # A SIGHUP while ducc cleans up must not kill it with the default action.
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    os.kill(os.getpid(), signal.SIGHUP)
