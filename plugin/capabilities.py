"""What each model accepts, as the server declares it in ``welcome.models``.

Every engine describes each of its models with a ``ModelCard``: the kinds it serves and, in
``accepts``, the ranges and names a request may use with it. The server checks every request
against the card of the model it resolves to, in one place, before queueing; a bridge may read
the same cards to show only what a model can do. A field whose range is ``None`` is not used by
that model and is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from . import codec


@dataclass
class Range:
    """Inclusive bounds, except ``low`` when ``low_open`` (``(0, 1]``)."""

    low: float
    high: float
    low_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high

    def words(self) -> str:
        low, high = _num(self.low), _num(self.high)
        return f"in ({low}, {high}]" if self.low_open else f"between {low} and {high}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass
class OptionSpec:
    """One engine-specific setting a request may put in ``options``."""

    type: Literal["number", "integer", "choice", "boolean"]
    range: Range | None = None  # number, integer
    choices: list[str] = field(default_factory=list)  # choice
    default: Any = None
    description: str = ""


@dataclass
class Accepts:
    """The request fields a model uses, and their bounds."""

    candidates: Range = field(default_factory=lambda: Range(1, 1))
    steps: Range | None = None
    guidance: Range | None = None
    strength: Range | None = None
    side: Range | None = None  # output width and height, when the model takes a size
    schedulers: list[str] = field(default_factory=list)
    tile: list[str] = field(default_factory=lambda: ["none"])
    styles: list[str] = field(default_factory=list)
    slots: list[str] = field(default_factory=list)  # image slots the model reads
    needs_prompt: bool = False  # a job with an empty prompt is refused
    addons: list[str] = field(default_factory=list)  # lora, controlnet, vae, embedding
    preprocessors: list[str] = field(default_factory=list)  # for its controls' pictures
    scales: list[int] = field(default_factory=list)  # upscale factors
    options: dict[str, OptionSpec] = field(default_factory=dict)


@dataclass
class AddonCard:
    """Something a checkpoint takes for a job: a LoRA, a ControlNet, a VAE, an embedding."""

    name: str
    type: Literal["lora", "controlnet", "vae", "embedding"]
    family: str = ""  # sd1 | sd2 | sdxl, or "" when the files do not tell
    size_bytes: int | None = None
    description: str = ""


@dataclass
class ModelCard:
    """One model an engine serves, as listed in ``welcome.models`` and ``brushlink models``."""

    name: str
    engine: str
    kinds: list[str]
    family: str = ""
    description: str = ""
    size_bytes: int | None = None
    defaults: dict[str, Any] = field(default_factory=dict)  # e.g. {"width": 512, "steps": 20}
    accepts: Accepts = field(default_factory=Accepts)

    @property
    def styles(self) -> list[str]:
        return self.accepts.styles

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = codec.encode(self)
        return wire

    @classmethod
    def from_wire(cls, data: Any) -> ModelCard:
        return codec.decode(cls, data)
