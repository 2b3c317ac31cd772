"""The /proc sampler the load tests rely on counts what the kernel says."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace

from tests.support.procstat import Sample, Sampler, slope, summarize

CHILD = """
import os, socket, sys, threading, time
files = [open(os.devnull) for _ in range(20)]
sockets = [socket.socket() for _ in range(3)]
blob = bytearray(64 * 1024 * 1024)
for i in range(0, len(blob), 4096):
    blob[i] = 1
threads = [threading.Thread(target=time.sleep, args=(10,), daemon=True) for _ in range(5)]
for t in threads:
    t.start()
print("ready", flush=True)
time.sleep(10)  # then it ends on its own (the parent is killed first)
"""


def test_slope_of_a_line_and_window_medians() -> None:
    assert slope([0, 1, 2, 3], [5, 7, 9, 11]) == 2
    # Descriptors: 8 files at rest, 9 from t=50 on, a burst of 4 more every third second, and
    # from t=80 on 3 sockets besides.
    samples = [
        Sample(float(t), 100 + t, 100 + t, 2, 8 + (t > 50) + 4 * (t % 3 == 0) + 3 * (t >= 80), 1)
        for t in range(101)
    ]
    samples = [replace(s, sockets=3 * (s.at >= 80)) for s in samples]
    summary = summarize(samples, window=10)
    assert summary.rss_slope_per_min == 60
    assert (summary.first_rss, summary.last_rss) == (105, 195)
    assert (summary.first_fds, summary.last_fds, summary.peak_fds) == (8, 12, 16)
    assert (summary.first_files_floor, summary.last_files_floor, summary.peak_sockets) == (8, 9, 3)


def test_sampler_sees_memory_threads_and_descriptors_of_a_child_tree() -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {CHILD!r}])",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline() == "ready\n"
        with Sampler(parent.pid, interval=0.05) as sampler:
            time.sleep(0.5)
        summary = sampler.summary()
    finally:
        parent.kill()
        parent.wait()
    assert summary.peak_processes == 2
    assert summary.peak_rss > 64 * 1024 * 1024
    assert summary.peak_threads >= 1 + 6
    assert summary.peak_fds >= 20 + 3 + 3
    assert summary.peak_sockets >= 3
