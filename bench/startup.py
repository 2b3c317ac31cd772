"""Start-up time: `ducc --version`, `ducc --help` and `ducc check RECIPE`, each in a fresh
process, next to the interpreter's own start (`python -c pass`, `python -S -c pass`).

Run: .venv/bin/python bench/startup.py [-n RUNS] [--before DIR] [--recipe FILE]
Every command runs RUNS times, the commands taking turns so that a busy moment of the
machine spreads over all of them; each row gives the median and the fastest run in ms and
the ratio of the median to `python -c pass` and to the 150 ms target. `ducc` runs as
`python -m ducc` with PYTHONPATH set to this tree's `src` (with `--before DIR`, also to the
`src` of another source tree, e.g. `git archive <commit> | tar -x -C DIR`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 150.0


@dataclass(frozen=True)
class Case:
    label: str
    argv: list[str]
    env: dict[str, str]


def ducc_cases(tree: Path, name: str, recipe: Path) -> list[Case]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    base = [sys.executable, "-m", "ducc"]
    commands = (["--version"], ["--help"], ["check", str(recipe)])
    return [Case(f"ducc {' '.join(c[:1])} ({name})", [*base, *c], env) for c in commands]


def timed(case: Case) -> float:
    """Milliseconds from start to exit; a failing command stops the benchmark."""
    started = time.perf_counter()
    proc = subprocess.run(case.argv, env=case.env, capture_output=True, check=False)
    elapsed = (time.perf_counter() - started) * 1000
    if proc.returncode != 0:
        raise SystemExit(f"{case.label} failed ({proc.returncode}): {proc.stderr.decode()}")
    return elapsed


def compile_tree(tree: Path) -> None:
    """Bytecode for the tree's modules, as an installed ducc has it (pip compiles at install;
    where PYTHONDONTWRITEBYTECODE is set, an editable tree would be compiled on every run)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "src")], check=True)


def measure(cases: list[Case], runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {case.label: [] for case in cases}
    for case in cases:  # one warm-up run each: the page cache
        timed(case)
    for _ in range(runs):
        for case in cases:
            times[case.label].append(timed(case))
    return times


def report(times: dict[str, list[float]]) -> None:
    floor = statistics.median(times["python -c pass"])
    print("| command | median ms | min ms | x `python -c pass` | x 150 ms target |")
    print("|---|---:|---:|---:|---:|")
    for label, values in times.items():
        median = statistics.median(values)
        print(
            f"| `{label}` | {median:.1f} | {min(values):.1f} | {median / floor:.1f} "
            f"| {median / TARGET_MS:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=20)
    parser.add_argument("--before", type=Path, help="another source tree to compare with")
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes/unpacked.cern.ch.yaml")
    args = parser.parse_args()
    cases = [
        Case("python -S -c pass", [sys.executable, "-S", "-c", "pass"], dict(os.environ)),
        Case("python -c pass", [sys.executable, "-c", "pass"], dict(os.environ)),
    ]
    if args.before is not None:
        compile_tree(args.before.resolve())
        cases += ducc_cases(args.before.resolve(), "before", args.recipe.resolve())
    compile_tree(ROOT)
    cases += ducc_cases(ROOT, "this tree", args.recipe.resolve())
    print(f"{args.runs} runs each, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    report(measure(cases, args.runs))


if __name__ == "__main__":
    main()
