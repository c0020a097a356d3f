"""Every check a request gets, in one place, before it is queued.

Step 1, ``check_request``: the header alone. The request's own rules (kind, prompt length, the
server's limits, image slots each kind needs), then the model it resolves to: every field
against the ranges and names the model's card declares (``plugin/capabilities.py``).
Step 2, ``decode_images``: once its binary frames are in, sizes from the PNG headers (before any
decoding), the mask against the image, the engine's own check, then decoding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from brushlink.plugin.capabilities import AddonCard, ModelCard, OptionSpec, Range
from brushlink.plugin.errors import (
    ImageMismatch,
    InvalidField,
    PromptTooLong,
    UnknownKind,
    UnknownModel,
    Unsupported,
)
from brushlink.plugin.frames import REQUEST_SLOTS, Image
from brushlink.plugin.request import KINDS, TILE_MODES, ImageRef, Request

from .config import Limits
from .engines.base import Engine, EngineJob, Sizes
from .engines.registry import EngineRegistry
from .images import check_size, decode_rgba, mask_from_rgba

# Which image slots each kind needs; which others a model reads is on its card.
REQUIRED_SLOTS = {
    "generate": (),
    "inpaint": ("image", "mask"),
    "style": ("image",),
    "rank": (),
    "upscale": ("image",),
}
MAX_SEED = 2**32 - 1
MAX_EDGE_PX = 512  # inpaint grow and feather


def check_request(
    request: Request, refs: list[ImageRef], registry: EngineRegistry, limits: Limits
) -> tuple[Engine, ModelCard]:
    """The engine and card the request runs with, or the first problem as a RequestError."""
    _check_own_rules(request, refs, limits)
    engine, card = registry.resolve(request)
    check_against_card(request, refs, card)
    check_addons(request, card, registry.addons())
    return engine, card


def _range(name: str, value: float | None, allowed: Range, model: str | None = None) -> None:
    if value is not None and value not in allowed:
        whose = f" for the model `{model}`" if model else ""
        raise InvalidField(
            f"`{name}` must be {allowed.words()}{whose}, not {value}.", field=name.split("[")[0]
        )


def _check_own_rules(request: Request, refs: list[ImageRef], limits: Limits) -> None:
    if request.kind not in KINDS:
        raise UnknownKind(
            f"Unknown job kind `{request.kind[:40]}`; use one of {', '.join(KINDS)}.",
            field="kind",
        )
    for name in ("prompt", "negative_prompt"):
        text = getattr(request, name)
        if len(text) > limits.max_prompt_chars:
            what = name.replace("_", " ")
            raise PromptTooLong(
                f"The {what} has {len(text)} characters; the limit is {limits.max_prompt_chars}.",
                field=name,
            )
    _range("width", request.width, Range(8, limits.max_side))
    _range("height", request.height, Range(8, limits.max_side))
    if request.width and request.height and request.width * request.height > limits.max_pixels:
        raise InvalidField(
            f"{request.width}x{request.height} is more than the {limits.max_pixels:,} pixels "
            "allowed.",
            field="width",
        )
    _range("steps", request.steps, Range(1, limits.max_steps))
    _range("strength", request.strength, Range(0, 1))
    _range("guidance", request.guidance, Range(0, 50))
    _range("candidates", request.candidates, Range(1, limits.max_candidates))
    _range("keep", request.keep, Range(1, request.candidates))
    _range("seed", request.seed, Range(0, MAX_SEED))
    _range("priority", request.priority, Range(-100, 100))
    if request.tile not in TILE_MODES:
        raise InvalidField(f"`tile` must be one of {', '.join(TILE_MODES)}.", field="tile")
    _range("inpaint.grow", request.inpaint.grow, Range(0, MAX_EDGE_PX))
    _range("inpaint.feather", request.inpaint.feather, Range(0, MAX_EDGE_PX))
    _range("inpaint.context", request.inpaint.context, Range(0, 4))
    seen = set()
    for ref in refs:
        if ref.slot not in REQUEST_SLOTS:
            raise InvalidField(
                f"Unknown image slot `{ref.slot[:40]}`; use {', '.join(REQUEST_SLOTS)}.",
                field="images",
            )
        if (ref.slot, ref.index) in seen:
            raise InvalidField(f"The image slot `{ref.slot}` is given twice.", field="images")
        if not 0 <= ref.index < 256:
            raise InvalidField("An image `index` must be 0..255.", field="images")
        seen.add((ref.slot, ref.index))
    for i, lora in enumerate(request.loras):
        _range(f"loras[{i}].weight", lora.weight, Range(-4, 4))
    for i, control in enumerate(request.controls):
        where = f"controls[{i}]"
        _range(f"{where}.strength", control.strength, Range(0, 2))
        _range(f"{where}.start", control.start, Range(0, 1))
        _range(f"{where}.end", control.end, Range(0, 1))
        if control.start > control.end:
            raise InvalidField(f"`{where}.start` must not come after its `end`.", field=where)
        if ("control", control.image) not in seen:
            raise InvalidField(
                f"`{where}.image` names control frame #{control.image}, which the submit does "
                "not declare.",
                field=f"{where}.image",
            )
    _range("upscale.scale", request.upscale.scale, Range(1, 8))
    _range("upscale.strength", request.upscale.strength, Range(0, 1))
    slots = {ref.slot for ref in refs}
    for slot in REQUIRED_SLOTS[request.kind]:
        if slot not in slots:
            raise InvalidField(f"A `{request.kind}` job needs an `{slot}` image.", field=slot)
    if request.kind == "rank":
        if "input" not in slots:
            raise InvalidField("A `rank` job needs at least one `input` image.", field="input")
        if not request.prompt.strip():
            raise InvalidField("A `rank` job needs a prompt to rank against.", field="prompt")


def check_against_card(request: Request, refs: list[ImageRef], card: ModelCard) -> None:
    """Every field the model uses, against what its card declares."""
    accepts, name = card.accepts, card.name
    _range("candidates", request.candidates, accepts.candidates, name)
    for field, allowed in (
        ("steps", accepts.steps),
        ("guidance", accepts.guidance),
        ("strength", accepts.strength),
        ("width", accepts.side),
        ("height", accepts.side),
    ):
        if allowed is not None:
            _range(field, getattr(request, field), allowed, name)
    scheduler = request.scheduler
    if scheduler is not None and accepts.schedulers and scheduler not in accepts.schedulers:
        raise InvalidField(
            f"Unknown scheduler `{scheduler[:40]}` for the model `{name}`; use one of "
            f"{', '.join(accepts.schedulers)}.",
            field="scheduler",
        )
    if request.tile not in accepts.tile:
        raise InvalidField(f"The model `{name}` cannot tile (`tile` must be none).", field="tile")
    if request.style is not None and accepts.styles and request.style not in accepts.styles:
        raise InvalidField(
            f"Unknown style `{request.style[:40]}`; the model `{name}` knows "
            f"{', '.join(accepts.styles)}.",
            field="style",
        )
    for ref in refs:
        if ref.slot not in accepts.slots:
            raise Unsupported(
                f"The model `{name}` does not use an `{ref.slot}` image for `{request.kind}` jobs.",
                field=ref.slot,
            )
    if request.kind == "upscale" and request.upscale.scale not in accepts.scales:
        scales = ", ".join(str(x) for x in accepts.scales) or "none"
        raise InvalidField(
            f"The model `{name}` upscales by {scales}, not {request.upscale.scale}.",
            field="upscale.scale",
        )
    for i, control in enumerate(request.controls):
        if control.preprocessor not in accepts.preprocessors:
            known = ", ".join(accepts.preprocessors) or "none"
            raise InvalidField(
                f"Unknown preprocessor `{control.preprocessor[:40]}`; the model `{name}` has "
                f"{known}.",
                field=f"controls[{i}].preprocessor",
            )
    if accepts.needs_prompt and not request.prompt.strip():
        raise InvalidField(f"The model `{name}` needs a prompt.", field="prompt")
    for key, value in request.options.items():
        option = accepts.options.get(key)
        if option is None:
            known = ", ".join(accepts.options) or "none"
            raise InvalidField(
                f"`options.{key[:40]}` is not an option of the model `{name}` (its options: "
                f"{known}).",
                field=f"options.{key[:40]}",
            )
        _check_option(f"options.{key}", value, option)


FAMILY_NAMES = {"sd1": "Stable Diffusion 1.x", "sd2": "Stable Diffusion 2.x", "sdxl": "SDXL"}


def check_addons(request: Request, card: ModelCard, addons: list[AddonCard]) -> None:
    """LoRAs, ControlNets and the VAE: installed, taken by the model, of the model's family."""
    wanted: list[tuple[str, str, str]] = [
        *((f"loras[{i}].name", "lora", lora.name) for i, lora in enumerate(request.loras)),
        *((f"controls[{i}].model", "controlnet", c.model) for i, c in enumerate(request.controls)),
        *([("vae", "vae", request.vae)] if request.vae else []),
    ]
    what = {"lora": "LoRA", "controlnet": "ControlNet", "vae": "VAE"}
    for field, kind, addon_name in wanted:
        if kind not in card.accepts.addons:
            raise Unsupported(
                f"The model `{card.name}` does not take a {what[kind]}.", field=field.split("[")[0]
            )
        found = [a for a in addons if a.type == kind and a.name == addon_name]
        if not found:
            names = ", ".join(sorted(a.name for a in addons if a.type == kind)) or "none"
            raise UnknownModel(
                f"There is no {what[kind]} called `{addon_name[:80]}`. Installed: {names}.",
                field=field,
            )
        family = found[0].family
        if family and card.family and family != card.family:
            raise Unsupported(
                f"The {what[kind]} `{addon_name}` is for {FAMILY_NAMES.get(family, family)}, and "
                f"the model `{card.name}` is {FAMILY_NAMES.get(card.family, card.family)}; "
                "choose one made for the model's family.",
                field=field,
            )


def _check_option(path: str, value: Any, option: OptionSpec) -> None:
    if option.type == "choice":
        if value not in option.choices:
            raise InvalidField(f"`{path}` must be one of {', '.join(option.choices)}.", field=path)
        return
    if option.type == "boolean":
        if not isinstance(value, bool):
            raise InvalidField(f"`{path}` must be true or false.", field=path)
        return
    integer = option.type == "integer"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise InvalidField(
            f"`{path}` must be {'an integer' if integer else 'a number'}.", field=path
        )
    if option.range is not None and value not in option.range:
        raise InvalidField(f"`{path}` must be {option.range.words()}, not {value}.", field=path)


def check_images(engine: Engine, request: Request, card: ModelCard, sizes: Sizes) -> None:
    """Images that must agree (a mask and its image), then what only the engine knows."""
    for slot in ("mask",):
        if slot in sizes and "image" in sizes and sizes[slot] != sizes["image"]:
            (mw, mh), (iw, ih) = sizes[slot], sizes["image"]
            raise ImageMismatch(
                f"The {slot} is {mw}x{mh} but the image is {iw}x{ih}; they must be the same size.",
                field=slot,
            )
    engine.check(request, card, sizes)


def decode_images(
    engine: Engine,
    request: Request,
    card: ModelCard,
    frames: dict[tuple[str, int], Image],
    job_id: str,
    seed: int,
    limits: Limits,
) -> EngineJob:
    """Sizes from PNG headers, the mask against the image, the engine's check, then decoding."""
    sizes: Sizes = {}
    for (slot, _index), data in sorted(frames.items()):
        size = check_size(data, limits.max_pixels, slot)
        if slot == "input":
            sizes.setdefault("input", []).append(size)
        else:
            sizes[slot] = size
    check_images(engine, request, card, sizes)
    decoded = {key: decode_rgba(data, key[0]) for key, data in frames.items()}
    mask: np.ndarray | None = None
    if ("mask", 0) in decoded:
        mask = mask_from_rgba(decoded.pop(("mask", 0)))
    return EngineJob(
        job_id=job_id,
        request=request,
        model=card,
        seed=seed,
        image=decoded.get(("image", 0)),
        mask=mask,
        reference=decoded.get(("reference", 0)),
        inputs=[decoded[k] for k in sorted(k for k in decoded if k[0] == "input")],
        controls={k[1]: decoded[k] for k in decoded if k[0] == "control"},
    )
