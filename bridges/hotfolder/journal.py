"""Restart safety: what was already done for an input when the process died.

For each input being worked on, a small JSON entry lives in ``INBOX/<recipe>/.brushlink/``
(hidden, so the watcher ignores it). Its ``state`` walks forward, each step written atomically:

    started   the output name is reserved (``out_stem``); outputs may be partly written
    written   every output and the ``<stem>.json`` sidecar are durable in the outbox
    failed    the input failed; ``error`` holds the reason
    (``dest`` is set once the name in done/ or failed/ is chosen)

Then the input moves and the entry is removed. After a crash an input whose entry says
``written`` only moves (no second job); ``started`` runs again under the same ``out_stem``, so
its outputs are replaced rather than duplicated; ``failed`` writes its error note and moves.
An entry whose size or modification time no longer match the file (someone dropped a new
file under the same name) is stale and ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .outputs import fsync_dir, write_atomic

JOURNAL_DIR = ".brushlink"


@dataclass
class Entry:
    input: str  # file name inside the recipe folder
    size: int
    mtime_ns: int
    out_stem: str
    state: str = "started"  # started | written | failed
    outputs: list[str] = field(default_factory=list)
    error: str | None = None
    dest: str | None = None  # name chosen inside done/ or failed/
    inode: int = 0  # 0 in journals written before inodes were noted

    def matches(self, path: Path) -> bool:
        """Whether ``path`` is still the file this entry was made for (not a replacement
        renamed over it while it was processed)."""
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            return False
        same_inode = not self.inode or st.st_ino == self.inode
        return same_inode and st.st_size == self.size and st.st_mtime_ns == self.mtime_ns


class Journal:
    """The entries of one recipe folder."""

    def __init__(self, recipe_folder: Path) -> None:
        self.folder = recipe_folder / JOURNAL_DIR

    def _path(self, input_name: str) -> Path:
        return self.folder / f"{input_name}.json"

    def load(self, input_name: str) -> Entry | None:
        try:
            data = json.loads(self._path(input_name).read_text(encoding="utf-8"))
            return Entry(**data)
        except (OSError, ValueError, TypeError):
            return None

    def save(self, entry: Entry) -> None:
        data = json.dumps(asdict(entry), indent=1).encode()
        write_atomic(self._path(entry.input), data)

    def remove(self, input_name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(input_name))
        fsync_dir(self.folder)

    def entries(self) -> list[Entry]:
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.glob("[!.]*.json")):  # not write_atomic's temporaries
            entry = self.load(path.name[: -len(".json")])
            if entry is not None:
                found.append(entry)
        return found

    def drop_orphans(self) -> None:
        """Remove entries whose input has left the folder (a crash between the move and the
        entry's removal). Only safe when no input of this folder is in flight: at start-up."""
        for entry in self.entries():
            if not (self.folder.parent / entry.input).exists():
                self.remove(entry.input)

    def reserved_stems(self) -> set[str]:
        return {e.out_stem for e in self.entries()}
