"""ducc's local state in SQLite (WAL): per image what was seen and when, and a history.

The repository's metadata stays the truth about what is published; this state only
schedules work and answers `ducc status`. Deleting it costs re-checks, never a wrong answer,
so a damaged or unreadable database is moved aside (with a warning naming it) and a new one
is filled again by the next checks; where none can be written (a full or read-only state
directory) the state lives in memory for the run. The history keeps its newest entries.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ducc import log
from ducc.errors import StateError

if TYPE_CHECKING:
    from ducc.pipeline.report import ImageResult

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
HISTORY = 10_000  # conversions kept
# SQLite's answers that mean the file itself is bad: it is moved aside and made anew.
_DAMAGED = ("SQLITE_NOTADB", "SQLITE_CORRUPT")
_log = log.get("state")


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
    """One SQLite database under the state directory; safe to share between threads.

    `in_memory` says why the state is not kept on disk this run (None when it is).
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "state.sqlite"
        self.in_memory: str | None = None
        self._lock = threading.Lock()
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return _connect(self.path)
        except (sqlite3.Error, OSError) as exc:
            error: Exception = exc
        if _damaged(self.path, error) and self._move_aside(error):
            try:
                return _connect(self.path)
            except (sqlite3.Error, OSError) as exc:
                error = exc
        return self._memory(error)

    def _move_aside(self, error: Exception) -> bool:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        try:
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
        except OSError:
            return False
        _log.warning(
            "state_damaged",
            path=str(self.path),
            moved_to=str(aside),
            error=_text(error),
            hint="a new state is filled by the next checks; the repository says what is published",
        )
        return True

    def _memory(self, error: Exception) -> sqlite3.Connection:
        """A state for this run only: ducc keeps publishing without a writable state."""
        self.in_memory = f"{self.path}: {_text(error)}"
        _log.warning(
            "state_unavailable",
            path=str(self.path),
            error=_text(error),
            hint="the state is kept in memory for this run; free space or fix the directory",
        )
        db = sqlite3.connect(":memory:", check_same_thread=False)
        db.executescript(SCHEMA)
        return db

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                where = self.in_memory or str(self.path)
                raise StateError(
                    f"state database {where}: {_text(exc)}",
                    hint="move the file aside: ducc makes a new one (nothing is lost that the "
                    "repository does not record)",
                ) from exc

    def _write(self, sql: str, rows: list[tuple[object, ...]]) -> None:
        """Run `sql` for each of `rows` in one transaction. A database that fails a write (its
        disk filled up, its file went bad) is replaced by one in memory, which takes it."""
        with self._lock:
            try:
                with self._db:
                    self._db.executemany(sql, rows)
                return
            except sqlite3.Error as exc:
                if self.in_memory is not None:
                    raise StateError(f"state database in memory: {_text(exc)}") from exc
                error = exc
            self._db.close()
            self._db = self._memory(error)
            with self._db:
                self._db.executemany(sql, rows)

    def get(self, cvmfs_repo: str, image: str) -> ImageState | None:
        with self._reading() as db:
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
        success = None if failed else now
        row = (cvmfs_repo, image, wish, status, digest, now, success, error, next_check)
        self._write(
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
            [(*row, 1 if failed else 0, failed)],
        )

    def schedule(self, cvmfs_repo: str, image: str, next_check: float) -> None:
        self._write(
            "UPDATE images SET next_check = ? WHERE cvmfs_repo = ? AND image = ?",
            [(next_check, cvmfs_repo, image)],
        )

    def record_conversion(self, conversion: Conversion) -> None:
        """Add to the history, which keeps its newest `HISTORY` entries."""
        c = conversion
        self._write(
            """INSERT INTO conversions (cvmfs_repo, image, started, finished, result,
                   digest, bytes, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            [(c.cvmfs_repo, c.image, c.started, c.finished, c.result, c.digest, c.bytes, c.error)],
        )
        self._write(
            "DELETE FROM conversions WHERE id <= (SELECT MAX(id) FROM conversions) - ?",
            [(HISTORY,)],
        )

    def record(self, results: Sequence[ImageResult]) -> None:
        """What each check of a conversion run found, and its conversions (the pipeline's
        `Recorder`)."""
        now = time.time()
        for r in results:
            self.record_check(
                r.cvmfs_repo,
                r.image,
                wish=r.wish,
                status=r.outcome.value,
                digest=r.digest,
                error=r.error,
                now=now,
                next_check=None,
            )
            if r.converted:
                started = now - r.seconds
                self.record_conversion(
                    Conversion(
                        r.cvmfs_repo,
                        r.image,
                        started,
                        now,
                        r.outcome.value,
                        r.digest,
                        r.bytes_downloaded,
                        r.error,
                    )
                )

    def images(self, cvmfs_repo: str | None = None) -> list[ImageState]:
        query = "SELECT * FROM images"
        args: tuple[str, ...] = ()
        if cvmfs_repo is not None:
            query, args = query + " WHERE cvmfs_repo = ?", (cvmfs_repo,)
        with self._reading() as db:
            rows = db.execute(query + " ORDER BY cvmfs_repo, image", args).fetchall()
        return [ImageState(*row) for row in rows]

    def conversions(self, limit: int = 100) -> list[Conversion]:
        with self._reading() as db:
            rows = db.execute(
                """SELECT cvmfs_repo, image, started, finished, result, digest, bytes, error
                   FROM conversions ORDER BY id DESC LIMIT ?""",
                (limit,),
            ).fetchall()
        return [Conversion(*row) for row in rows]

    def forget(self, cvmfs_repo: str, images: list[str]) -> None:
        """Drop images no longer wished for (their history stays)."""
        self._write(
            "DELETE FROM images WHERE cvmfs_repo = ? AND image = ?",
            [(cvmfs_repo, image) for image in images],
        )


def _connect(path: Path) -> sqlite3.Connection:
    """The database at `path`, checked (`quick_check`) and with its tables."""
    db = sqlite3.connect(path, check_same_thread=False, timeout=30)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        verdict = db.execute("PRAGMA quick_check").fetchone()
        if verdict is None or verdict[0] != "ok":
            error = sqlite3.DatabaseError(f"quick_check: {verdict[0] if verdict else 'no answer'}")
            error.sqlite_errorname = "SQLITE_CORRUPT"
            raise error
    except BaseException:
        db.close()
        raise
    return db


def _damaged(path: Path, error: Exception) -> bool:
    """Whether `error` says the file is bad (then it is moved aside), rather than the
    directory or the disk (then it is left alone and the state lives in memory)."""
    name = getattr(error, "sqlite_errorname", "")
    if any(name.startswith(bad) for bad in _DAMAGED):
        return True
    return name == "SQLITE_CANTOPEN" and os.path.lexists(path) and not path.is_file()


def _text(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"
