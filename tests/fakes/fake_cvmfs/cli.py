"""Entry point: pick the verb, hold the state lock, log the call, map errors to exit codes."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Sequence

from .commands import abort, list_repositories, mkfs, publish, rmfs, transaction, unmount_all
from .errors import UNKNOWN_COMMAND, FakeError
from .ingest import ingest
from .overlay import overlay
from .report import Report
from .state import Config, locked

Command = Callable[[Report, Sequence[str]], None]
VERBS: dict[str, Command] = {
    "mkfs": mkfs,
    "rmfs": rmfs,
    "list": list_repositories,
    "transaction": transaction,
    "publish": publish,
    "abort": abort,
    "ingest": ingest,
    "overlay": overlay,
    "unmount-all": unmount_all,
}
UNLOCKED = frozenset({"unmount-all"})  # cleanup must work even if a caller hangs on the lock


def main(argv: Sequence[str]) -> int:
    os.umask(0o022)
    try:
        config = Config.from_env(os.environ)
    except FakeError as error:
        print(error.message, file=sys.stderr)
        return error.code
    report = Report(config, ["cvmfs_server", *argv[1:]])
    verb = argv[1] if len(argv) > 1 else ""
    if verb in UNLOCKED:
        return _run(report, verb, argv[2:])
    with locked(config) as acquired:
        report.locked = acquired
        return _run(report, verb, argv[2:])


def help_text(report: Report, args: Sequence[str]) -> None:
    """The command list, as `cvmfs_server help` starts it (`overlay` only on newer servers)."""
    print("CernVM-FS Server Tool (fake)\n\nSupported Commands:")
    for verb in known(report):
        print(f"  {verb}")


VERBS["help"] = help_text


def known(report: Report) -> list[str]:
    """`overlay` exists only where FAKE_CVMFS_OVERLAY=1 (a server newer than 2.12)."""
    newer = report.config.env.get("FAKE_CVMFS_OVERLAY", "") == "1"
    return [v for v in VERBS if newer or v != "overlay"]


def _run(report: Report, verb: str, args: Sequence[str]) -> int:
    code, error = 0, None
    try:
        if verb not in known(report):
            raise FakeError(f"NOTE: Unrecognized command: {verb}", UNKNOWN_COMMAND)
        VERBS[verb](report, args)
    except FakeError as failure:
        code, error = failure.code, failure.message
        print(failure.message, file=sys.stderr)
    except OSError as failure:  # the machine said no (permissions, a busy mount, ...)
        code, error = 1, f"cvmfs_server {verb}: {failure}"
        print(error, file=sys.stderr)
    except Exception as failure:  # a bug in the fake: say so loudly, still log the call
        code, error = 70, f"internal error in the fake cvmfs_server: {failure!r}"
        traceback.print_exc()
    report.record(code, error)
    return code
