"""The MCP bridge's side of the wire: reaching the server, running jobs, files in and out.

The server is found once, when ``brushlink mcp`` starts, as the command line finds one: the
``--server`` named, else this machine's running server, else a private in-process server that
lives as long as the MCP session (its models stay loaded between calls). Jobs then run through
the client core's ``HostRunner`` over the websocket, like every bridge's.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from brushlink.plugin.errors import InvalidImage
from brushlink.plugin.frames import to_png
from brushlink.plugin.host import HostRunner
from brushlink.plugin.png import SIGNATURE, read_size
from brushlink.plugin.protocol import Result, Welcome
from brushlink.plugin.request import Job
from brushlink.server.files import read_image_as_png, write_atomic
from brushlink.server.images import encode_rgba, imdecode_rgba
from brushlink.server.inprocess import LocalServer, find_or_start

log = logging.getLogger("brushlink.mcp")


@dataclass
class Saved:
    path: Path
    png: bytes
    seed: int | None
    score: float | None
    width: int
    height: int


class Backend:
    def __init__(self, url: str | None, token: str | None, home: Path | None, out: Path) -> None:
        self.url = url
        self.token = token
        self.home = home
        self.out = out
        self.runner: HostRunner | None = None
        self.local: LocalServer | None = None
        self.where = ""

    def connect(self) -> Welcome:
        """Find or start the server; raises ``ServerUnavailable`` or ``Unauthorized``."""

        def say_local() -> None:
            log.warning("no brushlink server running here; starting one in this process")

        reached = find_or_start(self.url, self.token, self.home, on_local=say_local)
        welcome = reached.client.welcome
        reached.client.close()
        self.local = reached.local
        self.where = "in-process" if reached.local else reached.url
        self.runner = HostRunner(reached.url, reached.token or "", home=self.home)
        assert welcome is not None  # a connected client has been greeted
        return welcome

    def welcome(self) -> Welcome:
        assert self.runner is not None
        return self.runner.welcome()

    def run(self, job: Job) -> Result:
        assert self.runner is not None
        return self.runner.run(job)

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
        if self.local is not None:
            self.local.stop()

    # ------------------------------------------------------------------ files

    def save(self, kind: str, job: Job, result: Result) -> list[Saved]:
        """Every result image written (atomically) into the output folder."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        saved = []
        for image in result.images:
            png = to_png(image.data or b"")
            name = f"{stamp}-{kind}-{job.job_id[:8]}-{image.index}.png"
            path = self.out / name
            write_atomic(path, png)
            saved.append(Saved(path, png, image.seed, image.score, image.width, image.height))
        return saved


def read_input(value: str, what: str) -> bytes:
    """An image given as a file path, a ``data:`` URL or base64, as PNG bytes."""
    text = value.strip()
    if not text.startswith("data:"):
        path = Path(text).expanduser()
        try:
            if len(text) < 4096 and path.is_file():
                return read_image_as_png(path)
        except OSError:
            pass
    data_part = text.partition(",")[2] if text.startswith("data:") else text
    try:
        data = base64.b64decode(data_part, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage(
            f"`{what}` is neither an image file that exists nor base64 image data.", field=what
        ) from None
    if data.startswith(SIGNATURE):
        read_size(data)
        return data
    rgba = imdecode_rgba(data)
    if rgba is None:
        raise InvalidImage(f"`{what}` is not an image brushlink can read.", field=what)
    return encode_rgba(rgba)
