"""systemd's notification protocol (`sd_notify`): READY, WATCHDOG and STATUS messages.

Does nothing unless `NOTIFY_SOCKET` is set (a unit with `Type=notify`).
"""

from __future__ import annotations

import os
import socket

from ducc import log

_log = log.get("sdnotify")


def notify(message: str) -> bool:
    """Send `message` (e.g. `READY=1\\nSTATUS=...`); True when it was delivered."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        _log.warning("sd_notify_failed", error=str(exc))
        return False
    return True


def watchdog_interval() -> float | None:
    """Half the watchdog timeout systemd expects pings within, or None without a watchdog."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None
