"""Log lines stay whole when ducc's events and library (stdlib) records come from many
threads at once: a JSON log consumer must be able to parse every line."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from pathlib import Path

from ducc import log


def test_concurrent_events_and_library_records_never_share_a_line(tmp_path: Path) -> None:
    # Like sys.stderr: every write goes to the file at once (write_through).
    out = io.TextIOWrapper((tmp_path / "log").open("wb", buffering=0), write_through=True)
    root = logging.getLogger()
    saved, root.handlers = root.handlers, []  # basicConfig configures only a bare root
    log.configure(verbosity=2, fmt="json", stream=out)
    ours, library = log.get("test"), logging.getLogger("urllib3.test")

    def chatter(n: int) -> None:
        for i in range(300):
            ours.debug("registry_request", thread=n, i=i)
            library.debug("library line %d %d", n, i)

    threads = [threading.Thread(target=chatter, args=(n,)) for n in range(6)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, as a busy conversion does
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switch)
    root.handlers = saved

    out.close()
    lines = (tmp_path / "log").read_text().splitlines()
    events = [line for line in lines if line.startswith("{")]
    assert len(events) == 6 * 300
    assert all(json.loads(line)["event"] == "registry_request" for line in events)
    assert sum(1 for line in lines if line.startswith("DEBUG:urllib3.test:library")) == 6 * 300
