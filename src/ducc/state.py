"""ducc's local state in SQLite (WAL): per image what was seen and when, and a history.

The repository's metadata stays the truth about what is published; this state only
schedules work and answers `ducc status`. Deleting it costs re-checks, never a wrong answer.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    cvmfs_repo   TEXT NOT NULL,
    image        TEXT NOT NULL,
    wish         TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL DEFAULT 'pending',
    digest       TEXT,
    last_check   REAL,
    last_success REAL,
    last_error   TEXT,
    next_check   REAL,
    failures     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (cvmfs_repo, image)
);
CREATE TABLE IF NOT EXISTS conversions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    cvmfs_repo TEXT NOT NULL,
    image      TEXT NOT NULL,
    started    REAL NOT NULL,
    finished   REAL NOT NULL,
    result     TEXT NOT NULL,
    digest     TEXT,
    bytes      INTEGER NOT NULL DEFAULT 0,
    error      TEXT
);
CREATE INDEX IF NOT EXISTS conversions_image ON conversions (cvmfs_repo, image);
"""


def default_state_dir() -> Path:
    """`/var/lib/ducc` as root, else `$XDG_STATE_HOME/ducc` (`~/.local/state/ducc`)."""
    if os.geteuid() == 0:
        return Path("/var/lib/ducc")
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "ducc"


@dataclass(frozen=True, slots=True)
class ImageState:
    cvmfs_repo: str
    image: str
    wish: str
    status: str
    digest: str | None
    last_check: float | None
    last_success: float | None
    last_error: str | None
    next_check: float | None
    failures: int


@dataclass(frozen=True, slots=True)
class Conversion:
    cvmfs_repo: str
    image: str
    started: float
    finished: float
    result: str
    digest: str | None
    bytes: int
    error: str | None

    @property
    def duration(self) -> float:
        return self.finished - self.started


class State:
    """One SQLite database under the state directory; safe to share between threads."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "state.sqlite"
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._db:
            yield self._db

    def get(self, cvmfs_repo: str, image: str) -> ImageState | None:
        with self._tx() as db:
            row = db.execute(
                "SELECT * FROM images WHERE cvmfs_repo = ? AND image = ?", (cvmfs_repo, image)
            ).fetchone()
        return ImageState(*row) if row else None

    def record_check(
        self,
        cvmfs_repo: str,
        image: str,
        *,
        wish: str,
        status: str,
        digest: str | None,
        error: str | None,
        now: float,
        next_check: float | None,
    ) -> None:
        """Store the outcome of one check; a failure counts up, a success resets the count."""
        failed = error is not None
        with self._tx() as db:
            db.execute(
                """INSERT INTO images (cvmfs_repo, image, wish, status, digest, last_check,
                       last_success, last_error, next_check, failures)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (cvmfs_repo, image) DO UPDATE SET
                       wish = excluded.wish, status = excluded.status,
                       digest = COALESCE(excluded.digest, digest),
                       last_check = excluded.last_check,
                       last_success = COALESCE(excluded.last_success, last_success),
                       last_error = excluded.last_error, next_check = excluded.next_check,
                       failures = CASE WHEN ? THEN failures + 1 ELSE 0 END""",
                (
                    cvmfs_repo,
                    image,
                    wish,
                    status,
                    digest,
                    now,
                    None if failed else now,
                    error,
                    next_check,
                    1 if failed else 0,
                    failed,
                ),
            )

    def schedule(self, cvmfs_repo: str, image: str, next_check: float) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE images SET next_check = ? WHERE cvmfs_repo = ? AND image = ?",
                (next_check, cvmfs_repo, image),
            )

    def record_conversion(self, conversion: Conversion) -> None:
        with self._tx() as db:
            db.execute(
                """INSERT INTO conversions (cvmfs_repo, image, started, finished, result,
                       digest, bytes, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    conversion.cvmfs_repo,
                    conversion.image,
                    conversion.started,
                    conversion.finished,
                    conversion.result,
                    conversion.digest,
                    conversion.bytes,
                    conversion.error,
                ),
            )

    def images(self, cvmfs_repo: str | None = None) -> list[ImageState]:
        query = "SELECT * FROM images"
        args: tuple[str, ...] = ()
        if cvmfs_repo is not None:
            query, args = query + " WHERE cvmfs_repo = ?", (cvmfs_repo,)
        with self._tx() as db:
            rows = db.execute(query + " ORDER BY cvmfs_repo, image", args).fetchall()
        return [ImageState(*row) for row in rows]

    def conversions(self, limit: int = 100) -> list[Conversion]:
        with self._tx() as db:
            rows = db.execute(
                """SELECT cvmfs_repo, image, started, finished, result, digest, bytes, error
                   FROM conversions ORDER BY id DESC LIMIT ?""",
                (limit,),
            ).fetchall()
        return [Conversion(*row) for row in rows]

    def forget(self, cvmfs_repo: str, images: list[str]) -> None:
        """Drop images no longer wished for (their history stays)."""
        with self._tx() as db:
            db.executemany(
                "DELETE FROM images WHERE cvmfs_repo = ? AND image = ?",
                [(cvmfs_repo, image) for image in images],
            )
