"""`ducc loop`: keep repositories in step with recipes for months, unattended.

Each image is checked on its own schedule (interval with jitter, exponential backoff while
it fails; a failing image never stops the others); wildcards are expanded again every
interval; the recipes are re-read when a file changes or on SIGHUP (a broken recipe keeps
the last good one; a storm of SIGHUPs is one reload); webhooks make pushed images due at
once. SIGTERM finishes or aborts the current transaction and the loop ends, from any phase
within seconds. Signals only set flags (`ducc.interrupts.INTERRUPTS`), which the loop reads.
systemd is told READY, WATCHDOG and STATUS.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ducc import log
from ducc.errors import AnotherDuccRunning, DuccError, Interrupted, RecipeInvalid
from ducc.interrupts import INTERRUPTS
from ducc.metrics import METRICS
from ducc.oci.reference import Reference
from ducc.pipeline.convert import Converter, by_repo
from ducc.pipeline.report import ConvertReport, Outcome, Target, refused_result
from ducc.recipe.model import CvmfsRepo
from ducc.recipe.options import RecipeOptions
from ducc.recipe.parser import load_wishlist
from ducc.service import prometheus, sdnotify
from ducc.service.schedule import Schedule, key_of
from ducc.service.state import State
from ducc.service.webhook import PushEvent

_log = log.get("daemon")


@dataclass(frozen=True, slots=True)
class LoopOptions:
    interval: float = 600.0
    jitter: float = 0.1
    max_backoff: float = 6 * 3600.0
    recipe_poll: float = 5.0  # how often recipe files are checked for changes
    metrics_textfile: Path | None = None


def _fingerprint(paths: list[str]) -> tuple[tuple[int, int, int], ...]:
    """What tells a changed recipe file: inode, size, mtime (missing files count too)."""
    found = []
    for path in paths:
        try:
            info = os.stat(path)
            found.append((info.st_ino, info.st_size, info.st_mtime_ns))
        except OSError:
            found.append((0, -1, 0))
    return tuple(found)


class Daemon:
    def __init__(
        self,
        recipes: list[str],
        converter: Converter,
        options: LoopOptions,
        recipe_options: RecipeOptions | None = None,
        state: State | None = None,
    ) -> None:
        self.recipes = recipes
        self.converter = converter
        self.state = state  # also the converter's recorder, when given
        self.options = options
        self.recipe_options = recipe_options or RecipeOptions()
        # A broken recipe at start is the user's error; a refused entry only fails itself.
        self.wishlist = load_wishlist(recipes, self.recipe_options)
        self.fingerprint = _fingerprint(recipes)
        self.schedule = Schedule(
            options.interval, jitter=options.jitter, max_backoff=options.max_backoff
        )
        self.wake = threading.Event()
        self.reload_requested = False
        self.next_expansion = 0.0
        self.cycles = 0
        self.last_beat = time.monotonic()

    # --- outside events (the webhook thread; SIGHUP sets `INTERRUPTS.hangup`) -------------

    def on_push(self, events: list[PushEvent]) -> list[str]:
        """Make the wished images these pushes touch due now; wildcards are expanded again."""
        now = time.time()
        hits: list[Target] = []
        for event in events:
            hits += self.schedule.trigger(functools.partial(_matches, event=event), now)
            for wish in self.wishlist.wishes:
                ref = wish.reference
                new_tag = event.tag is not None and ref.is_wildcard
                if (
                    new_tag
                    and _same_repository(ref, event)
                    and ref.tag_glob().matches(event.tag or "")
                ):
                    target = Target(ref.with_tag(event.tag or ""), wish)
                    self.schedule.add(target, now)
                    hits.append(target)
        if hits:
            self.wake.set()
        return sorted({str(t.reference) for t in hits})

    # --- the loop --------------------------------------------------------------------

    def run(self, *, max_cycles: int | None = None) -> None:
        """Loop until interrupted (`Interrupted` from SIGTERM/SIGINT) or `max_cycles`; the
        caller installs `INTERRUPTS` with SIGHUP."""
        stop_beating = self._start_watchdog()
        try:
            while max_cycles is None or self.cycles < max_cycles:
                self.cycle()
                if self.cycles == 1:
                    sdnotify.notify("READY=1")
                self._sleep()
        finally:
            stop_beating()
            sdnotify.notify("STOPPING=1")

    def cycle(self) -> None:
        self._maybe_reload()
        now = time.time()
        if now >= self.next_expansion:
            self._expand(now)
        due = self.schedule.due(now)
        for repo, targets in _group(due).items():
            self._process(repo, targets)
        self.cycles += 1
        self.last_beat = time.monotonic()
        self._report()

    def _sleep(self) -> None:
        candidates = [self.next_expansion, time.time() + self.options.recipe_poll]
        wakeup = self.schedule.next_wakeup()
        if wakeup is not None:
            candidates.append(wakeup)
        timeout = max(0.0, min(candidates) - time.time())
        INTERRUPTS.wait(self.wake, timeout)
        self.wake.clear()

    def _maybe_reload(self) -> None:
        current = _fingerprint(self.recipes)
        if INTERRUPTS.take_hangup():
            self.reload_requested = True
        if not self.reload_requested and current == self.fingerprint:
            return
        self.reload_requested = False
        self.fingerprint = current
        try:
            wishlist = load_wishlist(self.recipes, self.recipe_options)
        except RecipeInvalid as exc:
            _log.error(
                "recipe_reload_failed", problems=exc.problems, keeping="the last good recipe"
            )
            return
        self.wishlist = wishlist
        self.next_expansion = 0.0
        _log.info("recipe_reloaded", wishes=len(wishlist.wishes))

    def _expand(self, now: float) -> None:
        self.converter.record([refused_result(r) for r in self.wishlist.refused])
        targets: list[Target] = []
        for wishes in by_repo(self.wishlist.wishes).values():
            found, failures = self.converter.expand(wishes)
            self.converter.record(failures)
            targets += found
        dropped = self.schedule.set_targets(targets, now)
        if dropped and self.state is not None:
            for repo, image in dropped:
                self.state.forget(repo, [image])
        self.next_expansion = now + self.options.interval
        _log.info("wishes_expanded", images=len(targets), dropped=len(dropped))

    def _process(self, repo: CvmfsRepo, targets: list[Target]) -> None:
        """Check and convert `targets`; whatever happens, each gets its next check time."""
        report = ConvertReport()
        INTERRUPTS.check()
        try:
            self.converter.process(repo, targets, report)
        except Interrupted:
            raise
        except AnotherDuccRunning as exc:
            _log.warning("repository_busy", repo=str(repo), error=exc.message)
            self._reschedule(targets, "busy", failed=False)
            return
        except DuccError as exc:  # the repository as a whole: cvmfs_server, a transaction
            _log.error("repository_failed", repo=str(repo), error=exc.message)
            self._reschedule(targets, Outcome.FAILED.value, failed=True)
            return
        finally:
            self.last_beat = time.monotonic()
        results = {(r.cvmfs_repo, r.image): r for r in report.results}
        now = time.time()
        counts: Counter[str] = Counter()
        for target in targets:
            result = results.get(key_of(target))
            status = result.outcome.value if result else Outcome.FAILED.value
            failed = result is None or (result.outcome == Outcome.FAILED)
            self._done(target, status, failed=failed, now=now)
            counts[status] += 1
        _log.info("images_checked", repo=str(repo), **dict(sorted(counts.items())))

    def _reschedule(self, targets: list[Target], status: str, *, failed: bool) -> None:
        now = time.time()
        for target in targets:
            self._done(target, status, failed=failed, now=now)

    def _done(self, target: Target, status: str, *, failed: bool, now: float) -> None:
        next_check = self.schedule.done(key_of(target), status, failed=failed, now=now)
        state = self.state
        if state is not None and next_check is not None:
            repo, image = key_of(target)
            state.schedule(repo, image, next_check)

    def _report(self) -> None:
        counts = self.schedule.statuses()
        METRICS.reset_gauge("ducc_images")
        for status, count in counts.items():
            METRICS.set("ducc_images", count, state=status)
        if self.options.metrics_textfile is not None:
            self.options.metrics_textfile.parent.mkdir(parents=True, exist_ok=True)
            prometheus.write_textfile(self.options.metrics_textfile)
        failing = counts.get(Outcome.FAILED.value, 0)
        sdnotify.notify(
            f"STATUS={len(self.schedule)} images, {failing} failing, cycle {self.cycles}"
        )

    def _start_watchdog(self) -> Callable[[], None]:
        """Ping systemd's watchdog while the loop makes progress (a hung loop stops pinging)."""
        interval = sdnotify.watchdog_interval()
        stop = threading.Event()
        if interval is None:
            return stop.set

        def beat() -> None:
            while not stop.wait(interval):
                if time.monotonic() - self.last_beat < 4 * interval:
                    sdnotify.notify("WATCHDOG=1")

        threading.Thread(target=beat, name="watchdog", daemon=True).start()
        return stop.set


def _same_repository(ref: Reference, event: PushEvent) -> bool:
    """Whether a push to `event`'s repository (and host, when the event names one) is `ref`'s."""
    if event.repository not in {ref.repository, ref.repository.removeprefix("library/")}:
        return False
    return event.host is None or event.host in {ref.registry, ref.api_host}


def _matches(target: Target, event: PushEvent) -> bool:
    same_tag = event.tag is None or target.reference.tag == event.tag
    return same_tag and _same_repository(target.reference, event)


def _group(targets: list[Target]) -> dict[CvmfsRepo, list[Target]]:
    groups: dict[CvmfsRepo, list[Target]] = {}
    for target in targets:
        groups.setdefault(target.wish.cvmfs_repo, []).append(target)
    return groups
