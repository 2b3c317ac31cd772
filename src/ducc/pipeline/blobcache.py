"""Layer blobs downloaded for one conversion: fetched concurrently, verified, then opened
as many times as the products need (the literal layer, a chain, the flat tree).

Files are named by digest and written by `download_blob` (temp, verify, rename), so a file
here is always complete and correct; they are removed once the image is converted. Each
ducc process downloads into a scratch directory of its own (`run-<pid>-<random>/`), so
processes sharing a state directory never remove each other's blobs. What a killed run left
(its scratch directory) goes when a run finds no other ducc using the cache; nothing else
in the directory is ever touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ducc import log
from ducc.files import remove_entry
from ducc.layers.limits import Limits
from ducc.layers.stream import READ_AHEAD_BYTES, LayerStream
from ducc.metrics import METRICS
from ducc.oci.digest import HEX_LENGTHS, Digest
from ducc.oci.model import Descriptor
from ducc.progress import BARS, Advance, CountingReader
from ducc.registry.blobs import download_blob
from ducc.registry.client import RegistryClient

_log = log.get("blobcache")
LOCK = ".lock"
SCRATCH_PREFIX = "run-"


@dataclass(frozen=True, slots=True)
class CachedLayer:
    """A verified blob on local disk and what its decompressed stream must hash to."""

    name: str
    path: Path
    media_type: str
    size: int
    diff_id: Digest
    limits: Limits
    progress: Advance | None = None

    def open(self) -> LayerStream:
        # The blob was verified when it was downloaded; the diff_id is checked on every pass.
        raw = self.path.open("rb")
        return LayerStream(
            CountingReader(raw, self.progress) if self.progress else raw,
            self.media_type,
            size=self.size,
            diff_id=self.diff_id,
            name=self.name,
            # The tar reader refuses per entry; the stream's cap is the backstop behind it.
            max_bytes=self.limits.max_bytes + READ_AHEAD_BYTES,
        )


class BlobCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._scratch: Path | None = None  # this process's, while `in_use`

    @contextlib.contextmanager
    def in_use(self) -> Iterator[None]:
        """Hold the cache for a run (a shared lock on `.lock`) and give this process its own
        scratch directory. A run that finds itself alone first removes everything else
        here: no other ducc is using it, so it is left over."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # another ducc downloads here: its files are not leftovers
            else:
                self._remove_leftovers()
            fcntl.flock(fd, fcntl.LOCK_SH)
            scratch = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=self.directory)
            self._scratch = Path(scratch)
            try:
                yield
            finally:
                self._scratch = None
                remove_entry(Path(scratch))
        finally:
            os.close(fd)

    def _remove_leftovers(self) -> None:
        """Only scratch directories (`run-<pid>-*`) and blob directories (`sha256/`, ...)
        are ducc's: a downloads directory that holds other files too (DUCC's
        `--downloads-dir /tmp`) loses none of them."""
        ours = [self.directory / algorithm for algorithm in HEX_LENGTHS]
        ours += self.directory.glob(f"{SCRATCH_PREFIX}*")
        for entry in ours:
            if entry.exists() or entry.is_symlink():
                _log.info("blob_cache_leftover_removed", path=str(entry))
                remove_entry(entry)

    def path(self, digest: Digest) -> Path:
        """Where this process keeps the blob (outside `in_use`: the shared directory, as
        tools that inspect a cache expect)."""
        top = self._scratch if self._scratch is not None else self.directory
        return top / digest.algorithm / digest.hex

    def fetch(
        self,
        client: RegistryClient,
        repository: str,
        descriptors: Sequence[Descriptor],
        *,
        concurrency: int,
    ) -> int:
        """Download the blobs not yet here, several at once; return the bytes downloaded."""
        missing = {d.digest: d for d in descriptors if not self.path(d.digest).is_file()}

        def one(descriptor: Descriptor) -> int:
            _log.info("blob_download", digest=str(descriptor.digest), size=descriptor.size)
            label = f"download {descriptor.digest.hex[:12]}"
            with BARS.task(label, descriptor.size) as advance:
                download_blob(client, repository, descriptor, self.path(descriptor.digest), advance)
            METRICS.inc("ducc_bytes_downloaded_total", descriptor.size)
            return descriptor.size

        if not missing:
            return 0
        workers = max(1, min(concurrency, len(missing)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="download") as pool:
            return sum(pool.map(one, missing.values()))

    def discard(self, digests: Sequence[Digest]) -> None:
        for digest in digests:
            self.path(digest).unlink(missing_ok=True)
