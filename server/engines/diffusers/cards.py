"""What a checkpoint accepts, as its card in ``welcome.models`` says."""

from __future__ import annotations

from brushlink.plugin.capabilities import Accepts, ModelCard, Range
from brushlink.plugin.request import TILE_MODES

from .addons import ADDON_KINDS
from .controls import PREPROCESSORS
from .schedulers import SCHEDULERS
from .store import Checkpoint

STYLE_STRENGTH = 0.6


def _turbo(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in ("turbo", "lightning", "hyper"))


def checkpoint_card(ckpt: Checkpoint, engine: str) -> ModelCard:
    found = ckpt.detected
    kinds = ["inpaint"] if found.inpaint else ["generate", "inpaint", "style"]
    turbo = _turbo(ckpt.name)
    what = {"sd1": "Stable Diffusion 1.x", "sd2": "Stable Diffusion 2.x", "sdxl": "SDXL"}
    description = what[found.family] + (" inpainting" if found.inpaint else "")
    description += f" ({'diffusers folder' if ckpt.path.is_dir() else 'single file'})"
    return ModelCard(
        name=ckpt.name,
        engine=engine,
        kinds=kinds,
        family=found.family,
        size_bytes=ckpt.size_bytes,
        description=description,
        defaults={
            "width": found.native_size,
            "height": found.native_size,
            "steps": 4 if turbo else 25,
            "guidance": 0.0 if turbo else 7.5,
            "strength": STYLE_STRENGTH,
        },
        accepts=Accepts(
            candidates=Range(1, 16),
            steps=Range(1, 200),
            guidance=Range(0, 50),
            strength=Range(0, 1, low_open=True),
            side=Range(8, 8192),
            schedulers=list(SCHEDULERS),
            tile=list(TILE_MODES),
            slots=["image", "mask", "reference", "control"],
            addons=list(ADDON_KINDS),
            preprocessors=list(PREPROCESSORS),
        ),
    )
