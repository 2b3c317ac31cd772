"""The registry fault suite as a table: one row per fault, its outcome and its requests.

Run: .venv/bin/python bench/faults.py
Runs `pytest -s` on tests/integration/test_registry_faults.py (the parametrized fault test),
collects the line each case prints, and prints a Markdown table: what was injected, what
ducc made of it, the targeted requests the proxy saw against the bound, and all requests.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/integration/test_registry_faults.py"
COMMAND = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", TEST]
COMMAND += ["-k", "test_fault_converts_after_retries_or_fails_that_image_cleanly"]
MARK = "FAULT-CASE "


def short(outcome: str) -> str:
    """The error without the registry address and with digests cut to 12 digits."""
    text = re.sub(r"127\.0\.0\.1:\d+: ", "", outcome)
    text = re.sub(r"127\.0\.0\.1:\d+/[\w./-]+@", "", text)
    text = re.sub(r"/v2/[\w./-]+?/(blobs|manifests)/", r"/v2/<repo>/\1/", text)
    text = re.sub(r"sha256:([0-9a-f]{12})[0-9a-f]{52}", r"sha256:\1…", text)
    return re.sub(r"\s+", " ", text).replace("|", "/").strip()


def row(case: dict[str, Any]) -> str:
    cells = [
        case["case"],
        case["what"],
        short(case["outcome"]),
        f"{case['requests']} / {case['bound']}",
        str(case["total"]),
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> int:
    done = subprocess.run(COMMAND, cwd=ROOT, capture_output=True, text=True, check=False)
    cases = [json.loads(line[len(MARK) :]) for line in done.stdout.splitlines() if MARK in line]
    print("| fault | injected | ducc's outcome | targeted requests / bound | all requests |")
    print("|---|---|---|---|---|")
    for case in cases:
        print(row(case))
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    print(f"\n{len(cases)} faults; pytest: {summary}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
