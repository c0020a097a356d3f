"""Which checkpoint and which depth ControlNet a job uses, from what the server offers.

Pure Python over the server's ``welcome`` (its model cards and ``addons``); no ``bpy``.

* A ControlNet named in the panel (or by keyword) must be installed and made for the
  checkpoint's family; with no checkpoint named, the first checkpoint of its family is used.
* With none named, the first checkpoint (the named one, else every checkpoint that takes
  ControlNets and the `depth` preprocessor, in the server's order) that has a ControlNet of its
  family installed wins, and of those ControlNets the first with "depth" in its name (a depth
  ControlNet is what a depth picture is for), else the first.
"""

from __future__ import annotations

from dataclasses import dataclass

from brushlink.plugin.capabilities import ModelCard
from brushlink.plugin.protocol import Welcome

FAMILIES = {"sd1": "Stable Diffusion 1.x", "sd2": "Stable Diffusion 2.x", "sdxl": "SDXL"}


class NoGuidance(ValueError):
    """No depth ControlNet fits: the sentence says what to install."""


@dataclass
class Guidance:
    model: str | None  # the checkpoint (None: the server's default, when no ControlNet is used)
    controlnet: str | None  # None: no ControlNet fits


def _guided(card: ModelCard, kind: str) -> bool:
    accepts = card.accepts
    return (
        kind in card.kinds and "controlnet" in accepts.addons and "depth" in accepts.preprocessors
    )


def choose(welcome: Welcome, kind: str, model: str, controlnet: str) -> Guidance:
    """The checkpoint and depth ControlNet for a ``kind`` job (``model``, ``controlnet``: the
    artist's choice, empty for "any"). Raises NoGuidance only for a choice that cannot work."""
    nets = [a for a in welcome.addons if a.type == "controlnet"]
    cards = {card.name: card for card in welcome.models}
    if model and model not in cards:
        raise NoGuidance(f"The server has no model “{model}” (see `brushlink models`).")
    candidates = [cards[model]] if model else [c for c in welcome.models if _guided(c, kind)]
    if controlnet:
        net = next((a for a in nets if a.name == controlnet), None)
        if net is None:
            names = ", ".join(a.name for a in nets) or "none"
            raise NoGuidance(f"The server has no ControlNet “{controlnet}” (installed: {names}).")
        fitting = [c for c in candidates if c.family == net.family and _guided(c, kind)]
        if not fitting:
            family = FAMILIES.get(net.family, net.family or "an unknown family")
            which = f"the model “{model}”" if model else "no installed model"
            raise NoGuidance(
                f"The ControlNet “{controlnet}” is for {family}, and {which} can use it."
            )
        return Guidance(fitting[0].name, net.name)
    for card in candidates:
        if not _guided(card, kind):
            continue
        mine = [a for a in nets if a.family == card.family]
        if mine:
            depth = [a for a in mine if "depth" in a.name.lower()]
            return Guidance(card.name, (depth or mine)[0].name)
    return Guidance(model or None, None)


def missing(welcome: Welcome, model: str) -> str:
    """The sentence for "no ControlNet fits", naming what to install."""
    cards = {card.name: card for card in welcome.models}
    card = cards.get(model) if model else None
    family = FAMILIES.get(card.family, card.family) if card is not None else ""
    for_whom = f" for “{model}” ({family})" if card is not None else ""
    return (
        f"No depth ControlNet is installed{for_whom}: put one in the server's "
        "models/controlnet/ folder (see docs/guided.md) and press Refresh."
    )
