"""A1111 requests -> brushlink jobs, and brushlink results -> A1111 answers.

A1111 field                          brushlink Request
prompt, negative_prompt              prompt, negative_prompt
seed (-1: random)                    seed (the facade draws it, so a batch's seeds follow)
steps, cfg_scale                     steps, guidance
width, height                        width, height (img2img: the init image is fitted)
sampler_name | sampler_index         scheduler (see samplers.py)
tiling                               tile = "xy"
batch_size                           candidates (several jobs when the model draws one)
n_iter                               that many jobs, seeds following on
denoising_strength                   strength
override_settings.sd_model_checkpoint, else the facade's model   model
img2img without a mask               kind "style", with the prompt
img2img with a mask                  kind "inpaint"; mask_blur -> inpaint.feather,
                                     inpaint_full_res(_padding) -> inpaint.context,
                                     inpainting_mask_invert -> the mask inverted
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

from brushlink.plugin.capabilities import ModelCard
from brushlink.plugin.errors import BrushlinkError, InvalidField
from brushlink.plugin.frames import to_png
from brushlink.plugin.protocol import Result
from brushlink.plugin.request import InpaintParams, Job, Request

from ..config import Limits
from ..engines.registry import EngineRegistry
from ..validate import MAX_EDGE_PX, MAX_SEED
from . import samplers
from .codec import to_base64
from .schema import Img2Img, Txt2Img

VERSION = "brushlink"


@dataclass
class Plan:
    """The jobs for one A1111 request, and what its answer reports."""

    label: str
    body: Txt2Img
    jobs: list[Job]
    card: ModelCard | None
    scheduler: str | None
    strength: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def card_for(registry: EngineRegistry, request: Request) -> ModelCard | None:
    """The model a request will run with, for splitting batches and naming schedulers; a model
    that does not resolve is left for the App's own checks to refuse."""
    try:
        return registry.resolve(request)[1]
    except BrushlinkError:
        return None


def model_for(
    body: Txt2Img, kind: str, default: str | None, registry: EngineRegistry
) -> str | None:
    """The request's own checkpoint, else the facade's model when it does this kind."""
    named = body.override_settings.get("sd_model_checkpoint")
    if isinstance(named, str) and named:
        return strip_hash(named)
    if default is not None:
        cards = [m for m in registry.models() if m.name == default]
        if cards and kind in cards[0].kinds:
            return default
    return None


def strip_hash(title: str) -> str:
    """A1111 titles read ``name [hash]``; brushlink names have no hash."""
    name = title.strip()
    if name.endswith("]") and " [" in name:
        name = name[: name.rindex(" [")]
    return name


def plan(
    label: str,
    body: Txt2Img,
    base: Request,
    registry: EngineRegistry,
    limits: Limits,
    images: dict[str, bytes],
) -> Plan:
    """Split batch_size x n_iter into jobs the model can draw, with seeds that follow on."""
    card = card_for(registry, base)
    base.scheduler = samplers.choose(body.sampler, body.scheduler, card)  # or SamplerNotFound
    per_job = body.batch_size
    if card is None or per_job > card.accepts.candidates.high:
        per_job = 1
    count = body.n_iter * (body.batch_size // per_job)
    if count > limits.max_queued_per_client:
        raise InvalidField(
            f"`batch_size` x `n_iter` asks for {count} jobs; the A1111 door runs at most "
            f"{limits.max_queued_per_client} at once.",
            field="n_iter",
        )
    first = body.seed if body.seed >= 0 else random.randrange(MAX_SEED + 1)
    jobs = []
    for i in range(count):
        request = Request.from_wire(base.to_wire())
        request.candidates = per_job
        request.seed = (first + i * per_job) % (MAX_SEED + 1)
        jobs.append(Job(request, image=images.get("image"), mask=images.get("mask")))
    return Plan(label, body, jobs, card, base.scheduler, base.strength)


def txt2img(body: Txt2Img, model: str | None, registry: EngineRegistry, limits: Limits) -> Plan:
    request = Request(
        kind="generate",
        prompt=body.prompt,
        negative_prompt=body.negative_prompt,
        model=model,
        width=body.width,
        height=body.height,
        steps=body.steps,
        guidance=body.cfg_scale,
        tile="xy" if body.tiling else "none",
    )
    return plan("txt2img", body, request, registry, limits, {})


def img2img(
    body: Img2Img,
    model: str | None,
    image: bytes,
    mask: bytes | None,
    context: float | None,
    registry: EngineRegistry,
    limits: Limits,
) -> Plan:
    feather = None if body.mask_blur is None else min(body.mask_blur, MAX_EDGE_PX)
    request = Request(
        kind="inpaint" if mask is not None else "style",
        prompt=body.prompt,
        negative_prompt=body.negative_prompt,
        model=model,
        steps=body.steps,
        guidance=body.cfg_scale,
        strength=body.denoising_strength,
        tile="xy" if body.tiling else "none",
        inpaint=InpaintParams(feather=feather, context=context),
    )
    images = {"image": image} if mask is None else {"image": image, "mask": mask}
    found = plan("img2img", body, request, registry, limits, images)
    if mask is not None:
        found.extra = {"Mask blur": body.mask_blur, "Masked content": body.inpainting_fill}
    return found


# --------------------------------------------------------------------------- answers


def _setting(plan: Plan, field_name: str, card_key: str) -> Any:
    value = getattr(plan.jobs[0].request, field_name) if plan.jobs else None
    if value is None and plan.card is not None:
        value = plan.card.defaults.get(card_key)
    return value


def infotext(plan: Plan, seed: int | None, width: int, height: int) -> str:
    """The ``parameters`` text A1111 writes into its PNGs (and png-info reads back)."""
    body = plan.body
    lines = [body.prompt]
    if body.negative_prompt:
        lines.append(f"Negative prompt: {body.negative_prompt}")
    pairs: dict[str, Any] = {
        "Steps": _setting(plan, "steps", "steps"),
        "Sampler": body.sampler or plan.scheduler or _setting(plan, "scheduler", "scheduler"),
        "CFG scale": _setting(plan, "guidance", "guidance"),
        "Seed": seed,
        "Size": f"{width}x{height}",
        "Model": plan.card.name if plan.card else plan.jobs[0].request.model,
    }
    if plan.label == "img2img":
        pairs["Denoising strength"] = _setting(plan, "strength", "strength")
    pairs.update(plan.extra)
    pairs["Version"] = VERSION
    lines.append(", ".join(f"{k}: {v}" for k, v in pairs.items() if v is not None))
    return "\n".join(lines)


def generation_answer(
    plan: Plan, outcomes: list[Result | BrushlinkError], interrupted: bool, raw: dict[str, Any]
) -> dict[str, Any]:
    """``{"images", "parameters", "info"}`` as A1111 answers txt2img and img2img."""
    body = plan.body
    images, seeds, texts, scores = [], [], [], []
    width = height = 0
    for outcome in outcomes:
        if not isinstance(outcome, Result):
            continue
        for image in outcome.images:
            width, height = image.width, image.height
            text = infotext(plan, image.seed, image.width, image.height)
            if body.send_images:
                images.append(to_base64(to_png(image.data or b""), text))
            seeds.append(image.seed)
            texts.append(text)
            scores.append(image.score)
    model = plan.card.name if plan.card else None
    info = {
        "prompt": body.prompt,
        "all_prompts": [body.prompt] * len(seeds),
        "negative_prompt": body.negative_prompt,
        "all_negative_prompts": [body.negative_prompt] * len(seeds),
        "seed": seeds[0] if seeds else None,
        "all_seeds": seeds,
        "subseed": seeds[0] if seeds else None,
        "all_subseeds": seeds,
        "subseed_strength": 0,
        "width": width,
        "height": height,
        "sampler_name": body.sampler or plan.scheduler,
        "cfg_scale": _setting(plan, "guidance", "guidance"),
        "steps": _setting(plan, "steps", "steps"),
        "batch_size": body.batch_size,
        "restore_faces": False,
        "face_restoration_model": None,
        "sd_model_name": model,
        "sd_model_hash": None,
        "sd_vae_name": None,
        "sd_vae_hash": None,
        "seed_resize_from_w": -1,
        "seed_resize_from_h": -1,
        "denoising_strength": plan.strength if plan.label == "img2img" else None,
        "extra_generation_params": {"brushlink scheduler": plan.scheduler, **plan.extra},
        "index_of_first_image": 0,
        "infotexts": texts,
        "styles": [],
        "job_timestamp": time.strftime("%Y%m%d%H%M%S"),
        "clip_skip": 1,
        "is_using_inpainting_conditioning": False,
        "version": VERSION,
        "brushlink": {"scores": scores, "interrupted": interrupted},
    }
    parameters = dict(raw)
    if not raw.get("include_init_images"):
        for key in ("init_images", "mask"):
            if key in parameters:
                parameters[key] = None
    return {"images": images, "parameters": parameters, "info": json.dumps(info)}


def parse_infotext(text: str) -> dict[str, Any]:
    """A1111's ``parameters`` text back into fields (what png-info answers)."""
    lines = text.strip().split("\n")
    found: dict[str, Any] = {}
    settings = lines.pop() if lines and ": " in lines[-1] and "," in lines[-1] else ""
    prompt, negative = [], []
    for line in lines:
        if line.startswith("Negative prompt:"):
            negative.append(line.partition(":")[2].strip())
        elif negative:
            negative.append(line)
        else:
            prompt.append(line)
    found["Prompt"] = "\n".join(prompt)
    found["Negative prompt"] = "\n".join(negative)
    for pair in settings.split(", "):
        key, colon, value = pair.partition(": ")
        if colon:
            found[key.strip()] = value.strip()
    return found
