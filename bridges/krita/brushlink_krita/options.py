"""What the artist asked for: the request tree, plus only what Krita itself knows.

``KritaJob`` holds a ``Request`` (``core.request``, the same tree the server and every engine
read) and the Krita-only choices beside it: which layer is the style reference, which layers to
hide from the server, whether to work on the selection, and which layers guide the picture as
ControlNet controls. The docker and the scripting API build one; ``selection.py`` turns it into
the job sent to the server (a control layer becomes a ``Control`` and its picture a ``control``
frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .core import codec, errors, request

KINDS = ("generate", "inpaint", "style", "upscale")
# What the docker calls each preprocessor the server offers (`accepts.preprocessors`).
CONTROL_TYPES = {
    "lineart": "line art",
    "scribble": "scribble",
    "canny": "canny",
    "depth": "depth",
    "tile": "tile",
    "none": "none",
}
# Line-like controls are read as the artist sees the layer alone: lines on white paper.
LINE_TYPES = ("lineart", "scribble", "canny")


@dataclass
class ControlLayer:
    """A layer that guides the picture through a ControlNet."""

    layer: str  # the layer's name
    model: str = ""  # a ControlNet from `welcome.addons`
    preprocessor: str = "none"  # lineart | scribble | canny | depth | tile | none
    strength: float = 1.0
    start: float = 0.0  # the share of the steps it guides: from start to end
    end: float = 1.0
    enabled: bool = True  # a switched-off control stays listed with the document

    def control(self, index: int) -> request.Control:
        return request.Control(
            model=self.model,
            image=index,
            preprocessor=self.preprocessor,
            strength=self.strength,
            start=self.start,
            end=self.end,
        )


@dataclass
class KritaJob:
    request: request.Request = field(default_factory=request.Request)
    reference: str | None = None  # name of a layer whose pixels are the style reference
    exclude: list[str] = field(default_factory=list)  # layer names hidden from the server
    use_selection: bool = True  # False: the whole canvas even with a selection
    controls: list[ControlLayer] = field(default_factory=list)  # layers guiding the picture
    use_controls: bool = True  # False: the controls stay listed but are not sent

    @property
    def kind(self) -> str:
        return self.request.kind

    @classmethod
    def build(cls, kind: str, prompt: str = "", **settings: Any) -> KritaJob:
        """From keyword arguments: request fields by their names (``model``, ``strength``,
        ``seed``, ``inpaint={"grow": 4}``, ``loras=[{"name": ..., "weight": ...}]``,
        ``upscale={"scale": 4}``, ``options={...}``) and Krita's own (``reference``,
        ``exclude``, ``use_selection``, ``controls=[{"layer": "Sketch", "model": ...,
        "preprocessor": "lineart", "strength": 0.8}]``). An unknown name or a wrong type is an
        ``InvalidField`` naming it."""
        own = {f.name for f in fields(cls)} - {"request"}
        mine = {k: settings.pop(k) for k in list(settings) if k in own}
        wire = {**settings, "kind": kind, "prompt": prompt}
        job = codec.decode(cls, mine, strict=True)
        job.request = request.Request.from_wire(wire, strict=True)
        job.check()
        return job

    def check(self) -> None:
        if self.kind not in KINDS:
            raise errors.InvalidField(
                f"The kind must be one of {', '.join(KINDS)}, not `{self.kind}`.", field="kind"
            )
        for i, control in enumerate(self.controls):
            if self.use_controls and control.enabled and not control.model:
                raise errors.InvalidField(
                    f"The control layer `{control.layer}` needs a ControlNet (`model`).",
                    field=f"controls[{i}].model",
                )

    def active_controls(self) -> list[ControlLayer]:
        """The controls sent with the job: switched on and guiding at all (strength above 0)."""
        if self.kind == "upscale" or not self.use_controls:
            return []
        return [c for c in self.controls if c.enabled and c.strength > 0]

    def label(self) -> str:
        """What the result layers are called after: the prompt, else the style, else the kind."""
        if self.kind == "upscale":
            return f"upscale ×{self.request.upscale.scale}"
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
