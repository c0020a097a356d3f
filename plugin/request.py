"""The request: one tree of dataclasses from the bridge to the engine.

    Request                      what to make (kind, prompt, sizes, sampling, ranking, model)
    ├── inpaint: InpaintParams   how a masked region is grown, feathered, given context, returned
    ├── loras: [LoraRef]         LoRAs applied for this job only, each with a weight
    ├── controls: [Control]      ControlNets, each with its image (a `control` frame)
    ├── vae: str                 another VAE for this job
    ├── upscale: UpscaleParams   the factor and the optional refine pass of an `upscale` job
    └── options: {...}           settings only one engine knows (its model card declares them)

A bridge fills in a ``Request`` (only what the artist chose; every field has a default) and
puts it in a ``Job`` with the images that travel beside it as binary frames. The server decodes
the same ``Request`` (``codec.decode``), checks it against the model's card and hands it to the
engine unchanged. Adding a field means adding it here, to the engine that uses it, and to
docs/protocol.md.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from . import codec
from .frames import Image, Pixels, encode_frame, image_size, to_png

KINDS = ("generate", "inpaint", "style", "rank", "upscale")
TILE_MODES = ("none", "x", "y", "xy")

InpaintOutput = Literal["composite", "layer"]


def new_job_id() -> str:
    return str(uuid.uuid4())


@dataclass
class InpaintParams:
    """How the region under a mask is regenerated. The server owns all of this: a bridge sends
    the artist's own (soft) mask and never grows or feathers it itself.

    ``grow`` widens what is regenerated past the mask's edge (a selected object's halo);
    ``feather`` is the width of the blend ramp just inside the grown edge, so pixels beyond the
    grown mask are never touched; ``context`` is how much of the surroundings the model sees,
    as a fraction of the masked region's size on every side.
    """

    grow: int | None = None  # px; None: 1 % of the region's diagonal, at least 4
    feather: int | None = None  # px; None: 2 % of the region's diagonal, at least 4
    context: float | None = None  # fraction of the region's size; None: the engine's default
    # "composite": the picture with the region replaced (exact elsewhere); "layer": only the
    # new pixels, with alpha = the blend weight, to lay over the original (Krita's layers)
    output: InpaintOutput = "composite"


@dataclass
class LoraRef:
    """A LoRA from the server's `welcome.addons`, and how strongly it applies (0: not at all)."""

    name: str
    weight: float = 1.0


@dataclass
class Control:
    """A ControlNet guiding the job with a picture: a sketch, edges, a depth pass."""

    model: str  # a ControlNet from `welcome.addons`
    image: int = 0  # index of the `control` image frame holding its picture
    preprocessor: str = "none"  # what the server makes of the picture first (canny, ...)
    strength: float = 1.0  # 0: the picture is exactly the unguided one
    start: float = 0.0  # the share of the steps it guides: from start to end
    end: float = 1.0


@dataclass
class UpscaleParams:
    """An `upscale` job: the factor, and an optional refine pass with a checkpoint."""

    scale: int = 2
    refine: str | None = None  # a checkpoint that redraws the upscaled picture tile by tile
    strength: float = 0.3  # how far the refine pass may move from the upscaled picture


@dataclass
class Request:
    """What to make. ``None`` means "the model's default" (see its card in ``welcome``)."""

    kind: str = "generate"  # generate | inpaint | style | rank
    prompt: str = ""
    negative_prompt: str = ""
    model: str | None = None  # a name from `welcome.models`; None: the server's default
    width: int | None = None  # output size; None: the input image's size or the model's
    height: int | None = None
    seed: int | None = None  # None: the server draws one and reports it
    steps: int | None = None
    guidance: float | None = None
    strength: float | None = None  # how far from the input image, in [0, 1]
    candidates: int = 1  # drawn, then ranked by CLIP
    keep: int | None = None  # how many of the ranked candidates come back (None: all)
    tile: str = "none"  # seamless tiling: none | x | y | xy
    style: str | None = None  # a named style (the model's `styles`)
    scheduler: str | None = None
    priority: int = 0  # higher runs first; ties run in arrival order
    inpaint: InpaintParams = field(default_factory=InpaintParams)
    loras: list[LoraRef] = field(default_factory=list)
    controls: list[Control] = field(default_factory=list)
    vae: str | None = None  # a VAE from `welcome.addons`; None: the checkpoint's own
    upscale: UpscaleParams = field(default_factory=UpscaleParams)
    options: dict[str, Any] = field(default_factory=dict)  # declared by the model's card

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = codec.encode(self)
        return wire

    @classmethod
    def from_wire(cls, data: Any, *, strict: bool = False) -> Request:
        return codec.decode(cls, data, strict=strict)


@dataclass
class ImageRef:
    """Names one binary frame of a job: its slot and its index within the slot."""

    slot: str
    index: int = 0


@dataclass
class Job:
    """A request and the images that travel with it, under the id the client chose.

    Images are PNG files (any PNG: 8 or 16 bit, grey, RGB, RGBA) or raw ``Pixels``, which the
    client sends as they are where the server takes them (a loopback link) and as PNG
    elsewhere. The mask is white (or opaque, when it has transparency) where the picture is to
    change; grey values make it soft.
    """

    request: Request
    image: Image | None = None  # the canvas crop or source image
    mask: Image | None = None
    reference: Image | None = None  # style reference
    inputs: list[Image] = field(default_factory=list)  # images to rank
    controls: list[Image] = field(default_factory=list)  # the request's controls' pictures
    job_id: str = field(default_factory=new_job_id)

    def slots(self) -> list[tuple[str, int, Image]]:
        """(slot, index, bytes) of every image, in the order the frames are sent."""
        found = [
            (slot, 0, data)
            for slot, data in (
                ("image", self.image),
                ("mask", self.mask),
                ("reference", self.reference),
            )
            if data is not None
        ]
        found += [("input", i, data) for i, data in enumerate(self.inputs)]
        found += [("control", i, data) for i, data in enumerate(self.controls)]
        return found

    def image_refs(self) -> list[ImageRef]:
        return [ImageRef(slot, index) for slot, index, _ in self.slots()]

    def as_sent(self, raw: tuple[str, ...] = (), limit: int | None = None) -> Job:
        """This job with every image as it will travel (see ``frames``), encoded once."""

        def sent(image: Image | None) -> Image | None:
            return None if image is None else as_sent(image, raw, limit)

        return replace(
            self,
            image=sent(self.image),
            mask=sent(self.mask),
            reference=sent(self.reference),
            inputs=[as_sent(x, raw, limit) for x in self.inputs],
            controls=[as_sent(x, raw, limit) for x in self.controls],
        )

    def frames(self, raw: tuple[str, ...] = (), limit: int | None = None) -> list[bytes]:
        """The binary frames that follow the submit message, in order. Raw pixels travel as
        they are when their layout is in ``raw`` (what the server takes on this link) and they
        fit in ``limit`` bytes, as PNG otherwise."""
        return [
            encode_frame(self.job_id, slot, index, as_sent(image, raw, limit))
            for slot, index, image in self.slots()
        ]


def as_sent(image: Image, raw: tuple[str, ...], limit: int | None = None) -> Image:
    """``image`` as it may travel: raw pixels the link does not take become a PNG file."""
    fits = isinstance(image, Pixels) and (limit is None or image_size(image) + 64 <= limit)
    if isinstance(image, Pixels) and image.layout in raw and fits:
        return image
    return to_png(image)
