"""The watch loop: filesystem events and scans find files, the settler decides when they count,
worker threads process them.

Events come from a watchdog ``Observer`` on the inbox. Events can be missed (a network share, an
overflowing event buffer, files that were there before the start), so a scan at start-up and a
periodic rescan find the same files again; a file is never dispatched twice because only one
dispatch per path is in flight and a processed input has left the folder.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from .journal import JOURNAL_DIR, Journal
from .outputs import remove_stale_temps
from .process import DONE_DIR, FAILED_DIR, Outcome, Processor
from .recipe import (
    RECIPE_FILE,
    SIDECAR_SUFFIXES,
    Recipe,
    RecipeError,
    is_sidecar,
    load_recipe,
)
from .runner import ServerGone, Stopped
from .settle import Settler, State, is_ignored


@dataclass
class Summary:
    done: int = 0
    failed: int = 0
    errors: int = 0  # unexpected problems; those inputs stay in the inbox
    waiting: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    server_gone: str | None = None

    def line(self) -> str:
        text = f"summary: {self.done} done, {self.failed} failed, {self.waiting} left waiting"
        if self.errors:
            text += f", {self.errors} errors (left in the inbox)"
        if self.server_gone:
            text += f" (stopped: {self.server_gone})"
        return text


class _Events(FileSystemEventHandler):
    def __init__(self, found: queue.SimpleQueue[Path]) -> None:
        self.found = found

    def on_any_event(self, event: FileSystemEvent) -> None:
        for attr in ("src_path", "dest_path"):
            raw = getattr(event, attr, "")
            if raw:
                self.found.put(Path(raw.decode() if isinstance(raw, bytes) else raw))


class HotFolder:
    def __init__(
        self,
        inbox: Path,
        processor: Processor,
        *,
        concurrency: int = 2,
        settle_s: float = 2.0,
        rescan_s: float = 10.0,
        log: Callable[[str], None] = print,
        on_stopping: Callable[[], None] | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.inbox = inbox.resolve()
        self.on_stopping = on_stopping  # wakes workers waiting for the server
        self.on_stop = on_stop  # ends the jobs still running after the grace period
        self.processor = processor
        self.concurrency = max(1, concurrency)
        self.settler = Settler(settle_s)
        self.rescan_s = rescan_s
        self.log = log
        self.stop_event = threading.Event()
        self._wake = threading.Event()  # a worker finished: dispatch the next file now
        self._found: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self._todo: queue.Queue[Path | None] = queue.Queue()
        self._results: queue.SimpleQueue[tuple[Path, Outcome | BaseException | None]] = (
            queue.SimpleQueue()
        )
        self._candidates: dict[Path, float] = {}  # path -> when it first settled (0: not yet)
        self._in_flight: set[Path] = set()
        self._warned: set[Path] = set()
        self._recipes: dict[Path, tuple[int, Recipe | None]] = {}

    # ----------------------------------------------------------------- finding files

    def _recipe_folders(self) -> list[Path]:
        if not self.inbox.is_dir():
            return []
        return sorted(p for p in self.inbox.iterdir() if p.is_dir() and not is_ignored(p))

    def _recipe(self, folder: Path) -> Recipe | None:
        """The folder's recipe, parsed again only when recipe.toml changes (None if broken)."""
        try:
            mtime = (folder / RECIPE_FILE).stat().st_mtime_ns
        except OSError:
            return None
        cached = self._recipes.get(folder)
        if cached is None or cached[0] != mtime:
            try:
                recipe: Recipe | None = load_recipe(folder)
            except RecipeError:
                recipe = None  # its inputs fail with the error when they are processed
            cached = self._recipes[folder] = (mtime, recipe)
        return cached[1]

    def tidy(self) -> None:
        """Leftovers of a process killed mid-step (ours only, never a user's file): temporaries of
        atomic writes, journal entries of inputs that had already moved."""
        for folder in self._recipe_folders():
            Journal(folder).drop_orphans()
            for sub in (folder / JOURNAL_DIR, folder / DONE_DIR, folder / FAILED_DIR):
                remove_stale_temps(sub)
            remove_stale_temps(self.processor.outbox / folder.name)

    def scan(self) -> None:
        for folder in self._recipe_folders():
            if not (folder / RECIPE_FILE).is_file():
                if folder not in self._warned:
                    self._warned.add(folder)
                    self.log(
                        f"note     {folder.name}/ has no {RECIPE_FILE}; its files are left alone"
                    )
                continue
            for path in sorted(folder.iterdir()):
                self._consider(path)

    def _consider(self, path: Path) -> None:
        if path.parent.parent != self.inbox:
            if path.parent == self.inbox and path.is_dir():
                for child in sorted(path.iterdir()):  # a recipe folder moved in whole
                    self._consider(child)
            return
        if path.name == RECIPE_FILE and path.is_file():
            for child in sorted(path.parent.iterdir()):  # files that waited for their recipe
                if child.name != RECIPE_FILE:
                    self._consider(child)
            return
        if path in self._candidates or path in self._in_flight:
            return
        if is_ignored(path) or is_sidecar(path) or is_ignored(path.parent):
            return
        if not (path.parent / RECIPE_FILE).is_file() or not path.is_file():
            return
        recipe = self._recipe(path.parent)
        if recipe is not None and recipe.reference_path() == path.resolve():
            return  # the recipe's own style reference
        self._candidates[path] = 0.0

    # ----------------------------------------------------------------- deciding

    def _ready(self, path: Path, now: float) -> bool:
        """Settled, and so are the sidecars that travel with it."""
        state = self.settler.observe(path)
        if state is State.GONE:
            self._candidates.pop(path, None)
            return False
        if state is not State.SETTLED:
            self._candidates[path] = 0.0
            return False
        first = self._candidates[path] = self._candidates[path] or now
        stem = path.name[: -len(path.suffix)] if path.suffix else path.name
        for suffix in SIDECAR_SUFFIXES:
            sidecar = path.with_name(stem + suffix)
            if sidecar.exists() and self.settler.observe(sidecar) is not State.SETTLED:
                return False
        # An inpaint input whose mask is still on its way gets the patience of an unfinished file.
        mask = path.with_name(stem + ".mask.png")
        if not mask.exists() and now - first < self.settler.incomplete_s:
            recipe = self._recipe(path.parent)
            return recipe is None or recipe.kind != "inpaint"
        return True

    def _dispatch_ready(self) -> None:
        now = time.monotonic()
        for path in list(self._candidates):
            if len(self._in_flight) >= self.concurrency:
                return
            if self._ready(path, now):
                del self._candidates[path]
                stem = path.name[: -len(path.suffix)] if path.suffix else path.name
                for name in (path.name, *(stem + suffix for suffix in SIDECAR_SUFFIXES)):
                    self.settler.forget(path.with_name(name))
                self._in_flight.add(path)
                self._todo.put(path)

    # ----------------------------------------------------------------- workers

    def _worker(self) -> None:
        while True:
            path = self._todo.get()
            if path is None:
                return
            try:
                result: Outcome | BaseException | None = self.processor.process(path)
            except BaseException as exc:  # the loop logs it; a worker never dies
                result = exc
            self._results.put((path, result))
            self._wake.set()

    def _collect(self, summary: Summary) -> None:
        while True:
            try:
                path, result = self._results.get_nowait()
            except queue.Empty:
                return
            self._in_flight.discard(path)
            name = f"{path.parent.name}/{path.name}"
            if result is None:
                self.log(f"gone     {name} was removed before it was processed")
            elif isinstance(result, Stopped):
                self.log(f"stopped  {name}: it stays in the inbox and is done on the next start")
            elif isinstance(result, ServerGone):
                summary.server_gone = str(result)
                self.stop()
            elif isinstance(result, BaseException):
                summary.errors += 1
                self.log(f"error    {name}: {result!r}; it stays in the inbox and is tried again")
            elif result.ok:
                summary.done += 1
                summary.outcomes.append(result)
                outs = ", ".join(p.name for p in result.outputs)
                self.log(f"done     {name} -> {outs} ({result.seconds:.2f} s)")
            else:
                summary.failed += 1
                summary.outcomes.append(result)
                why = (result.error or "").split("Why: ", 1)[-1].split("\n", 1)[0]
                self.log(f"failed   {name}: {why}")

    # ----------------------------------------------------------------- the loop

    def run(self, once: bool = False) -> Summary:
        """Watch until ``stop_event`` is set; with ``once``, until what was there is processed."""
        summary = Summary()
        workers = [
            threading.Thread(target=self._worker, name=f"hotfolder-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for worker in workers:
            worker.start()
        observer = Observer()
        self.inbox.mkdir(parents=True, exist_ok=True)
        observer.schedule(_Events(self._found), str(self.inbox), recursive=True)
        observer.start()
        try:
            self.tidy()
            self.scan()
            next_scan = time.monotonic() + self.rescan_s
            while not self.stop_event.is_set():
                self._drain_events()
                if time.monotonic() >= next_scan:
                    self.scan()
                    next_scan = time.monotonic() + self.rescan_s
                self._collect(summary)  # first, so a finished worker's slot is free
                self._dispatch_ready()
                if once and not self._candidates and not self._in_flight:
                    break
                self._wake.wait(0.1)
                self._wake.clear()
        finally:
            # watchdog's inotify thread may log a harmless error when stopped mid-read.
            logging.getLogger("watchdog.observers.inotify").setLevel(logging.CRITICAL)
            observer.stop()
            if self.on_stopping:
                self.on_stopping()
            self._finish_in_flight(summary)
            if self.on_stop:
                self.on_stop()
            for _ in workers:
                self._todo.put(None)
            observer.join(timeout=5)
        summary.waiting = len(self._candidates) + len(self._in_flight)
        return summary

    def _drain_events(self) -> None:
        while True:
            try:
                path = self._found.get_nowait()
            except queue.Empty:
                return
            self._consider(path)

    def stop(self) -> None:
        self.stop_event.set()
        self._wake.set()

    def _finish_in_flight(self, summary: Summary, grace_s: float = 10.0) -> None:
        """On stop, give running jobs a moment; what is left is safe in the journal."""
        deadline = time.monotonic() + grace_s
        while self._in_flight and time.monotonic() < deadline:
            self._collect(summary)
            time.sleep(0.05)
        self._collect(summary)
