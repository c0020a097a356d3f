"""Durable file operations: a reader never sees half a file, and nothing is overwritten by accident.

``write_atomic`` writes a temporary file in the same folder, flushes and fsyncs it, renames it
over the final name with ``os.replace`` (atomic on POSIX and Windows) and fsyncs the folder so
the rename itself survives a power cut. ``move_durably`` moves an input the same way, and
``free_name`` picks a name that is not taken (``coffee~2.png``) so that done/ and failed/ never
overwrite an earlier file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

TEMP_PREFIX = ".brushlink-tmp-"


def fsync_dir(folder: Path) -> None:
    """Make a rename or create inside ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a directory; NTFS journals the rename itself
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either nothing/the old file or all of it.

    ``mode`` caps the permissions (the umask applies too): an output is never more readable
    than its input."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{path.name}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode & 0o666)
        with open(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def move_durably(src: Path, dest: Path) -> None:
    """Move ``src`` to ``dest`` (same file system: inbox/x -> inbox/done/x), never over another
    file, and fsync both folders.

    A hard link then an unlink refuses an existing ``dest`` atomically (a plain rename would
    replace it on POSIX). If a crash came between the two, ``dest`` is already this very file
    and only the unlink is left to do.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except FileExistsError:
        if not os.path.samefile(src, dest):
            raise
        os.unlink(src)
    except OSError:  # a file system without hard links (FAT, some shares): check, then rename
        if dest.exists():
            raise FileExistsError(f"{dest} already exists") from None
        os.rename(src, dest)
    else:
        os.unlink(src)
    fsync_dir(dest.parent)
    if src.parent != dest.parent:
        fsync_dir(src.parent)


def free_name(
    folder: Path,
    stem: str,
    suffixes: Iterable[str],
    taken: Callable[[str], bool] | None = None,
) -> str:
    """The first of ``stem``, ``stem~2``, ``stem~3`` ... for which no ``folder/<name><suffix>`` exists.

    ``suffixes`` lists every file the caller will create with that name (``.png``,
    ``.error.txt``); ``taken`` adds names reserved elsewhere (jobs still running).
    """
    suffixes = list(suffixes)
    n = 1
    while True:
        name = stem if n == 1 else f"{stem}~{n}"
        busy = any((folder / f"{name}{s}").exists() for s in suffixes)
        if not busy and not (taken and taken(name)):
            return name
        n += 1


def remove_stale_temps(folder: Path) -> None:
    """Remove ``write_atomic`` temporaries a killed process left behind (only ours, by prefix)."""
    if not folder.is_dir():
        return
    for path in folder.glob(f"{TEMP_PREFIX}*"):
        with contextlib.suppress(OSError):
            path.unlink()
