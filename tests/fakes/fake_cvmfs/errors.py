"""The one error the fake raises: a message for stderr and the exit code to leave with."""

from __future__ import annotations

import errno

USAGE = 2
ALREADY_IN_TRANSACTION = errno.EEXIST  # 17, as `cvmfs_publish transaction` returns
LEASE_BUSY = errno.EBUSY  # 16
LEASE_NO_ENTRY = errno.ENOENT  # 2
LEASE_NO_DIR = errno.ENOTDIR  # 20
NOT_IN_TRANSACTION = errno.EINVAL  # 22: `abort` without a transaction
UNHEALTHY = 1  # a transaction while a template transaction is open: no writable mount
UNKNOWN_COMMAND = 3  # "NOTE: Unrecognized command"


class FakeError(Exception):
    """A failed command: `message` goes to stderr, the process exits with `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
