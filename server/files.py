"""Image files on disk for the command line: any common format in, PNG bytes out; atomic writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from brushlink.plugin.errors import InvalidImage
from brushlink.plugin.png import SIGNATURE

from .images import encode_rgba, imdecode_rgba


def read_image_as_png(path: Path) -> bytes:
    """PNG files are sent as they are (the server checks them); others are converted."""
    data = path.read_bytes()
    if data.startswith(SIGNATURE):
        return data
    rgba = imdecode_rgba(data)
    if rgba is None:
        raise InvalidImage(f"{path} is not an image OpenCV can read.")
    return encode_rgba(rgba)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
