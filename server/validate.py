"""Request validation: everything a job needs is checked here, before it is queued.

Step 1, ``check_spec``: the header alone (kind, ranges, prompt length, model, image slots).
Step 2, ``prepare``: once its binary frames are in, image sizes (from headers, before decoding),
decoding, mask/image agreement, then the engine's own ``check``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from brushlink.plugin.errors import (
    ImageMismatch,
    InvalidField,
    PromptTooLong,
    UnknownKind,
)
from brushlink.plugin.frames import REQUEST_SLOTS
from brushlink.plugin.protocol import KINDS, TILE_MODES, ImageRef, JobSpec

from .config import Limits
from .engines.base import Engine, EngineJob, ModelInfo
from .engines.registry import EngineRegistry
from .images import check_size, decode_rgba, mask_from_rgba

# Which image slots each kind needs; others are optional.
REQUIRED_SLOTS = {"generate": (), "inpaint": ("image", "mask"), "style": ("image",), "rank": ()}


@dataclass
class CheckedSpec:
    spec: JobSpec
    engine: Engine
    model: ModelInfo
    refs: list[ImageRef]


def _range(spec: JobSpec, name: str, low: float, high: float) -> None:
    value = getattr(spec, name)
    if value is not None and not low <= value <= high:
        raise InvalidField(f"`{name}` must be between {low} and {high}, not {value}.", field=name)


def check_spec(
    spec: JobSpec, refs: list[ImageRef], registry: EngineRegistry, limits: Limits
) -> CheckedSpec:
    if spec.kind not in KINDS:
        raise UnknownKind(
            f"Unknown job kind `{spec.kind[:40]}`; use one of {', '.join(KINDS)}.", field="kind"
        )
    if len(spec.prompt) > limits.max_prompt_chars:
        raise PromptTooLong(
            f"The prompt has {len(spec.prompt)} characters; the limit is {limits.max_prompt_chars}.",
            field="prompt",
        )
    if len(spec.negative_prompt) > limits.max_prompt_chars:
        raise PromptTooLong(
            f"The negative prompt has {len(spec.negative_prompt)} characters; "
            f"the limit is {limits.max_prompt_chars}.",
            field="negative_prompt",
        )
    _range(spec, "width", 8, limits.max_side)
    _range(spec, "height", 8, limits.max_side)
    if spec.width and spec.height and spec.width * spec.height > limits.max_pixels:
        raise InvalidField(
            f"{spec.width}x{spec.height} is more than the {limits.max_pixels:,} pixels allowed.",
            field="width",
        )
    _range(spec, "steps", 1, limits.max_steps)
    _range(spec, "strength", 0.0, 1.0)
    _range(spec, "guidance", 0.0, 50.0)
    _range(spec, "candidates", 1, limits.max_candidates)
    _range(spec, "keep", 1, spec.candidates)
    _range(spec, "seed", 0, 2**32 - 1)
    _range(spec, "priority", -100, 100)
    if spec.tile not in TILE_MODES:
        raise InvalidField(f"`tile` must be one of {', '.join(TILE_MODES)}.", field="tile")
    seen = set()
    for ref in refs:
        if ref.slot not in REQUEST_SLOTS:
            raise InvalidField(
                f"Unknown image slot `{ref.slot[:40]}`; use {', '.join(REQUEST_SLOTS)}.",
                field="images",
            )
        if (ref.slot, ref.index) in seen:
            raise InvalidField(f"The image slot `{ref.slot}` is given twice.", field="images")
        seen.add((ref.slot, ref.index))
    slots = {ref.slot for ref in refs}
    for slot in REQUIRED_SLOTS[spec.kind]:
        if slot not in slots:
            raise InvalidField(f"A `{spec.kind}` job needs an `{slot}` image.", field=slot)
    if spec.kind == "rank":
        if "input" not in slots:
            raise InvalidField("A `rank` job needs at least one `input` image.", field="input")
        if not spec.prompt.strip():
            raise InvalidField("A `rank` job needs a prompt to rank against.", field="prompt")
    engine, model = registry.resolve(spec.model, spec.kind, style=spec.style, prompt=spec.prompt)
    return CheckedSpec(spec, engine, model, refs)


def prepare(
    checked: CheckedSpec, frames: dict[tuple[str, int], bytes], job_id: str, limits: Limits
) -> EngineJob:
    """Check sizes from PNG headers, decode, and hand the job to the engine's own check."""
    sizes: dict[str, object] = {}
    for (slot, _index), data in frames.items():
        size = check_size(data, limits.max_pixels, slot)
        if slot == "input":
            sizes.setdefault("input", []).append(size)  # type: ignore[union-attr]
        else:
            sizes[slot] = size
    if "mask" in sizes and "image" in sizes and sizes["mask"] != sizes["image"]:
        (mw, mh), (iw, ih) = sizes["mask"], sizes["image"]  # type: ignore[misc]
        raise ImageMismatch(
            f"The mask is {mw}x{mh} but the image is {iw}x{ih}; they must be the same size.",
            field="mask",
        )
    checked.engine.check(checked.spec, checked.model, sizes)
    decoded = {key: decode_rgba(data, key[0]) for key, data in frames.items()}
    spec = checked.spec
    mask: np.ndarray | None = None
    if ("mask", 0) in decoded:
        mask = mask_from_rgba(decoded[("mask", 0)])
    seed = spec.seed if spec.seed is not None else random.randrange(2**32)
    return EngineJob(
        job_id=job_id,
        spec=spec,
        model=checked.model,
        seed=seed,
        image=decoded.get(("image", 0)),
        mask=mask,
        reference=decoded.get(("reference", 0)),
        inputs=[decoded[k] for k in sorted(k for k in decoded if k[0] == "input")],
    )
