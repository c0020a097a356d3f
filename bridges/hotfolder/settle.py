"""When does a dropped file count? Once it has settled.

A copy over the network, a browser download or a slow export writes a file in pieces. A file
counts only when its size and modification time have not changed for ``settle_s`` seconds and
it can be opened for reading. An image that still looks unfinished (a PNG without its ``IEND``
chunk, a JPEG without its end marker) gets ``incomplete_s`` more patience before it is handed
on, where it will fail as truncated: a writer that stalls for a moment is not mistaken for a
broken file.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

# Names that editors, browsers, sync tools and operating systems use for work in progress.
_IGNORED_SUFFIXES = (
    ".part",
    ".partial",
    ".crdownload",
    ".download",
    ".tmp",
    ".temp",
    ".swp",
    ".lock",
    "~",
)
_IGNORED_NAMES = {"thumbs.db", "desktop.ini", "icon\r"}


def is_ignored(path: Path) -> bool:
    """Hidden, temporary and system files never count as inputs."""
    name = path.name
    lower = name.lower()
    if name.startswith((".", "~$", "~")) or lower in _IGNORED_NAMES:
        return True
    if lower.endswith(_IGNORED_SUFFIXES):
        return True
    try:
        attrs = getattr(os.stat(path), "st_file_attributes", 0)
    except OSError:
        return False
    return bool(attrs & getattr(stat, "FILE_ATTRIBUTE_HIDDEN", 0))


def looks_complete(path: Path) -> bool:
    """A cheap check of the file's last bytes for the formats that have an end marker."""
    suffix = path.suffix.lower()
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64))
            tail = fh.read()
    except OSError:
        return False
    if suffix == ".png":
        return tail.endswith(b"IEND\xaeB`\x82")
    if suffix in (".jpg", ".jpeg"):
        return tail.rstrip(b"\x00").endswith(b"\xff\xd9")
    return size > 0


class State(Enum):
    WAITING = "waiting"
    SETTLED = "settled"
    GONE = "gone"


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float


class Settler:
    """Remembers what each file looked like and when it last changed."""

    def __init__(
        self,
        settle_s: float = 2.0,
        incomplete_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settle_s = settle_s
        self.incomplete_s = incomplete_s if incomplete_s is not None else 5 * settle_s
        self._clock = clock
        self._seen: dict[Path, _Seen] = {}

    def observe(self, path: Path) -> State:
        """Look at ``path`` now; SETTLED once it has been still long enough and opens."""
        try:
            st = os.stat(path)
        except OSError:
            self._seen.pop(path, None)
            return State.GONE
        if not stat.S_ISREG(st.st_mode):
            return State.GONE
        now = self._clock()
        seen = self._seen.get(path)
        if seen is None or seen.size != st.st_size or seen.mtime_ns != st.st_mtime_ns:
            self._seen[path] = _Seen(st.st_size, st.st_mtime_ns, now)
            return State.WAITING
        still = now - seen.since
        if still < self.settle_s:
            return State.WAITING
        if not _opens(path):
            return State.WAITING
        if still < self.incomplete_s and not looks_complete(path):
            return State.WAITING
        return State.SETTLED

    def next_check_in(self, path: Path) -> float:
        """Seconds until ``path`` could next change state (for the watcher's sleep)."""
        seen = self._seen.get(path)
        if seen is None:
            return self.settle_s
        left = seen.since + self.settle_s - self._clock()
        return max(0.05, min(left, self.settle_s))

    def forget(self, path: Path) -> None:
        self._seen.pop(path, None)


def _opens(path: Path) -> bool:
    # On Windows a file another program still holds open for writing cannot be opened.
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError:
        return False
    return True
