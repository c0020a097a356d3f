"""What the artist asked for: one dataclass shared by the docker and the scripting API."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .core import errors, protocol

MODES = ("generate", "inpaint", "style")


@dataclass
class JobOptions:
    mode: str = "generate"  # generate | inpaint | style
    prompt: str = ""
    negative_prompt: str = ""
    model: str | None = None  # None: the server's default for the mode
    strength: float | None = None  # generate: set it (< 1) to start from the canvas (img2img)
    seed: int | None = None  # None: random, reported back in the layer name
    steps: int | None = None
    guidance: float | None = None
    candidates: int = 1
    keep: int | None = None
    tile: str = "none"  # none | x | y | xy
    style: str | None = None  # named style, e.g. "sketch"
    reference: str | None = None  # name of a layer whose pixels are the style reference
    width: int | None = None  # without a selection: the size to generate (default: the canvas)
    height: int | None = None
    use_selection: bool = True
    grow: int | None = None  # px the inpaint mask grows; None: 1 % of the selection's diagonal
    feather: int | None = None  # px of mask feathering; None: 2 % of the selection's diagonal
    margin: float | None = None  # context around the selection, fraction of its diagonal
    exclude: list[str] = field(default_factory=list)  # layer names hidden from the server
    priority: int = 0
    engine_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, mode: str, prompt: str = "", **options: Any) -> JobOptions:
        """Options from keyword arguments; an unknown name or mode is an ``InvalidField``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise errors.InvalidField(
                f"Unknown option {', '.join(f'`{n}`' for n in unknown)}; "
                f"known options: {', '.join(sorted(known - {'mode', 'prompt'}))}.",
                field=unknown[0],
            )
        opts = cls(mode=mode, prompt=prompt, **options)
        opts.check()
        return opts

    def check(self) -> None:
        if self.mode not in MODES:
            raise errors.InvalidField(
                f"The mode must be one of {', '.join(MODES)}, not `{self.mode}`.", field="mode"
            )
        if self.tile not in protocol.TILE_MODES:
            raise errors.InvalidField(
                f"`tile` must be one of {', '.join(protocol.TILE_MODES)}.", field="tile"
            )
        if self.candidates < 1:
            raise errors.InvalidField("`candidates` must be 1 or more.", field="candidates")
        for name in ("grow", "feather"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise errors.InvalidField(f"`{name}` must be 0 or more pixels.", field=name)
        if self.margin is not None and not 0 <= self.margin <= 1:
            raise errors.InvalidField("`margin` is a fraction between 0 and 1.", field="margin")

    def label(self) -> str:
        """What the result layers are called after: the prompt, else the style, else the mode."""
        text = " ".join(self.prompt.split()) or self.style or self.reference or self.mode
        return text if len(text) <= 60 else text[:59] + "…"

    def spec(self, width: int, height: int) -> protocol.JobSpec:
        return protocol.JobSpec(
            kind=self.mode,
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            model=self.model or None,
            width=width,
            height=height,
            seed=self.seed,
            steps=self.steps,
            guidance=self.guidance,
            strength=self.strength,
            candidates=self.candidates,
            keep=self.keep,
            tile=self.tile,
            style=self.style or None,
            priority=self.priority,
            options=dict(self.engine_options),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobOptions:
        """Tolerant: fields this version does not know (or of the wrong type) are dropped."""
        opts = cls()
        for f in fields(cls):
            if f.name in data:
                value = data[f.name]
                default = getattr(opts, f.name)
                if default is None or value is None or isinstance(value, type(default)):
                    setattr(opts, f.name, value)
        return opts
