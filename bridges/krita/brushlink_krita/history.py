"""The document's results: thumbnails with prompt, seed and model, and the exact pixels of each,
kept inside the document (annotations, saved in the .kra) so any of them can be applied again.

An artist who applies an earlier result expects that picture, not a new draw from its seed
(a seed repeats a picture only on the same server, model and device), so the full pixels are
kept: zlib-compressed B, G, R, A bytes, one annotation per result
(``brushlink/history/<id>``), beside one small index (``brushlink/history``) holding every
entry's settings and a PNG thumbnail. The history is bounded: the newest ``MAX_ENTRIES``
results and at most ``MAX_BYTES`` of compressed pixels; the oldest go first.

Compressing a large result takes a while, so it happens on a worker thread; until it is
stored, the pixels are held in memory and ``apply_again`` uses them from there.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from PyQt5.QtCore import QByteArray

from . import layers, runner
from .core import errors
from .images import thumbnail_png
from .selection import Box

INDEX = "brushlink/history"
PREFIX = "brushlink/history/"
MAX_ENTRIES = 24
MAX_BYTES = 96 * 1024 * 1024  # compressed pixels kept in one document
THUMB_SIDE = 96
_HEADER = struct.Struct(">4sII")
_MAGIC = b"BLH1"

_pending: dict[str, bytes] = {}  # id -> raw pixels still being compressed
_lock = threading.Lock()
listeners: list[Callable[[object], None]] = []  # told (the document) when its history grows


@dataclass
class Entry:
    id: str
    label: str  # what the layer was called after (the prompt, the style, ...)
    kind: str
    prompt: str = ""
    seed: int | None = None
    model: str = ""
    box: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # x, y, width, height
    time: float = 0.0
    thumb: str = ""  # base64 PNG, at most THUMB_SIDE pixels on a side
    size: int = 0  # bytes of the stored pixels

    @property
    def layer_name(self) -> str:
        return layers.layer_name(self.label, self.seed)

    def thumbnail_png(self) -> bytes:
        return base64.b64decode(self.thumb) if self.thumb else b""

    def lines(self) -> str:
        """Two short lines for a list: the prompt, then seed and model."""
        first = self.prompt or self.label
        first = first if len(first) <= 40 else first[:39] + "…"
        second = " · ".join(
            x for x in (None if self.seed is None else str(self.seed), self.model) if x
        )
        return f"{first}\n{second}" if second else first

    def words(self) -> str:
        seed = "" if self.seed is None else f" · seed {self.seed}"
        model = f" · {self.model}" if self.model else ""
        return f"{self.prompt or self.label}{seed}{model}"


def entries(document) -> list[Entry]:
    """The document's history, newest first."""
    if document is None or INDEX not in document.annotationTypes():
        return []
    try:
        data = json.loads(bytes(document.annotation(INDEX)).decode("utf-8"))
        known = set(Entry.__dataclass_fields__)
        found = [Entry(**{k: v for k, v in item.items() if k in known}) for item in data]
    except (ValueError, TypeError, AttributeError):
        return []
    return found


def _write_index(document, found: list[Entry]) -> None:
    data = json.dumps([asdict(e) for e in found]).encode("utf-8")
    document.setAnnotation(INDEX, "brushlink: results", QByteArray(data))


def record(document, job, model: str, box: Box, seed: int | None, bgra: bytes) -> Entry:
    """Add a result (its pixels ``bgra`` cover ``box``) to the document's history."""
    entry = Entry(
        id=uuid.uuid4().hex[:12],
        label=job.label(),
        kind=job.kind,
        prompt=job.request.prompt,
        seed=seed,
        model=model or job.request.model or "",
        box=[box.x, box.y, box.width, box.height],
        time=time.time(),
        thumb=base64.b64encode(thumbnail_png(bgra, box.width, box.height, THUMB_SIDE)).decode(),
    )
    with _lock:
        _pending[entry.id] = bgra
    _write_index(document, [entry, *entries(document)])
    runner.MAIN.hold()

    def compress() -> None:
        packed = _HEADER.pack(_MAGIC, box.width, box.height) + zlib.compress(bgra, 3)
        runner.MAIN.deliver(lambda: _store(document, entry.id, packed))

    threading.Thread(target=compress, name="brushlink-history", daemon=True).start()
    for listener in list(listeners):
        listener(document)
    return entry


def _store(document, entry_id: str, packed: bytes) -> None:
    runner.MAIN.release()
    try:
        found = entries(document)
        for entry in found:
            if entry.id == entry_id:
                entry.size = len(packed)
                document.setAnnotation(
                    PREFIX + entry_id, "brushlink: a result's pixels", QByteArray(packed)
                )
        _write_index(document, _bounded(document, found))
    except RuntimeError:  # the document was closed meanwhile: nothing to keep
        pass
    finally:
        with _lock:
            _pending.pop(entry_id, None)


def _bounded(document, found: list[Entry]) -> list[Entry]:
    """The newest entries within the limits; the others' pixels are removed."""
    kept, total = [], 0
    for entry in found:
        total += entry.size
        if len(kept) < MAX_ENTRIES and total <= MAX_BYTES:
            kept.append(entry)
        elif PREFIX + entry.id in document.annotationTypes():
            document.removeAnnotation(PREFIX + entry.id)
    return kept


def pixels(document, entry: Entry) -> bytes:
    """The exact pixels of a result (B, G, R, A over its box)."""
    with _lock:
        held = _pending.get(entry.id)
    if held is not None:
        return held
    name = PREFIX + entry.id
    if name not in document.annotationTypes():
        raise errors.InvalidField(
            f"The pixels of `{entry.layer_name}` are no longer kept.", field="history"
        )
    packed = bytes(document.annotation(name))
    magic, width, height = _HEADER.unpack_from(packed)
    data = zlib.decompress(packed[_HEADER.size :])
    if magic != _MAGIC or len(data) != width * height * 4:
        raise errors.InvalidImage(f"The stored pixels of `{entry.layer_name}` are damaged.")
    return data


def apply_again(document, entry: Entry | str, above=None):
    """A result of the history as a new layer, where it was, in one undo step."""
    if isinstance(entry, str):
        match = [e for e in entries(document) if e.id == entry]
        if not match:
            raise errors.InvalidField(f"No result `{entry}` in this document.", field="history")
        entry = match[0]
    x, y, width, height = entry.box
    box = Box(x, y, width, height)
    node = layers.paint_layer(document, entry.layer_name, box, pixels(document, entry))
    layers.add_node(document, node, above)
    return node


def clear(document) -> None:
    for entry in entries(document):
        if PREFIX + entry.id in document.annotationTypes():
            document.removeAnnotation(PREFIX + entry.id)
    if INDEX in document.annotationTypes():
        document.removeAnnotation(INDEX)
