"""What the artist asked for: the request tree, plus only what Krita itself knows.

``KritaJob`` holds a ``Request`` (``core.request``, the same tree the server and every engine
read) and the Krita-only choices beside it: which layer is the style reference, which layers to
hide from the server, and whether to work on the selection. The docker and the scripting API
build one; ``selection.py`` turns it into the job sent to the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .core import codec, errors, request

KINDS = ("generate", "inpaint", "style")


@dataclass
class KritaJob:
    request: request.Request = field(default_factory=request.Request)
    reference: str | None = None  # name of a layer whose pixels are the style reference
    exclude: list[str] = field(default_factory=list)  # layer names hidden from the server
    use_selection: bool = True  # False: the whole canvas even with a selection

    @property
    def kind(self) -> str:
        return self.request.kind

    @classmethod
    def build(cls, kind: str, prompt: str = "", **settings: Any) -> KritaJob:
        """From keyword arguments: request fields by their names (``model``, ``strength``,
        ``seed``, ``inpaint={"grow": 4}``, ``options={...}``) and Krita's own (``reference``,
        ``exclude``, ``use_selection``). An unknown name or a wrong type is an
        ``InvalidField`` naming it."""
        own = {f.name for f in fields(cls)} - {"request"}
        mine = {k: settings.pop(k) for k in list(settings) if k in own}
        wire = {**settings, "kind": kind, "prompt": prompt}
        job = cls(request.Request.from_wire(wire, strict=True), **mine)
        job.check()
        return job

    def check(self) -> None:
        if self.kind not in KINDS:
            raise errors.InvalidField(
                f"The kind must be one of {', '.join(KINDS)}, not `{self.kind}`.", field="kind"
            )

    def label(self) -> str:
        """What the result layers are called after: the prompt, else the style, else the kind."""
        text = " ".join(self.request.prompt.split()) or self.request.style or self.reference
        text = text or self.kind
        return text if len(text) <= 60 else text[:59] + "…"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = codec.encode(self)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> KritaJob | None:
        """Tolerant of what other versions saved: None when it cannot be read at all."""
        try:
            return codec.decode(cls, data)
        except errors.InvalidField:
            return None
