"""Summarise crash trials (the JSON lines `DUCC_CRASH_RECORD` collects) as Markdown tables:
trials per publisher, where the kills landed, the faults injected, the outcomes.

    python bench/crash_summary.py trials.jsonl
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def table(title: str, counts: dict[str, Counter[str]], publishers: list[str]) -> list[str]:
    rows = [f"| {title} | " + " | ".join(publishers) + " |", "|---" * (len(publishers) + 1) + "|"]
    for key in sorted({k for c in counts.values() for k in c}):
        cells = [str(counts[p].get(key, 0)) for p in publishers]
        rows.append(f"| {key} | " + " | ".join(cells) + " |")
    return rows


def summary(trials: list[dict[str, Any]]) -> str:
    publishers = sorted({t["publisher"] for t in trials})
    by: dict[str, dict[str, Counter[str]]] = {
        what: {p: Counter() for p in publishers}
        for what in ("trials", "phase", "faults", "outcome")
    }
    for t in trials:
        p = t["publisher"]
        by["trials"][p]["trials"] += 1
        by["trials"][p]["killed (ducc and its children)"] += t["killed"] and t["everything"]
        by["trials"][p]["killed (ducc only)"] += t["killed"] and not t["everything"]
        by["trials"][p]["run ended before the kill"] += not t["killed"]
        by["phase"][p][t["phase"]] += 1
        faults = ", ".join(f"{k.removeprefix('FAKE_CVMFS_')}={v}" for k, v in t["faults"].items())
        by["faults"][p][faults or "none"] += 1
        outcome = "violations" if t["violations"] else "all invariants held"
        by["outcome"][p][outcome] += 1
    parts = [
        table("trials", by["trials"], publishers),
        table("kill landed in", by["phase"], publishers),
        table("faults injected", by["faults"], publishers),
        table("outcome", by["outcome"], publishers),
    ]
    return "\n\n".join("\n".join(part) for part in parts) + "\n"


if __name__ == "__main__":
    sys.stdout.write(summary(load(Path(sys.argv[1]))))
