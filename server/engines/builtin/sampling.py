"""Sampling the built-in generator: text-to-image, img2img (strength) and masked inpainting.

Works at the model's own small size; the engine resizes in and out. Classifier-free guidance
runs the conditional and unconditional branches in one batch. When the prompt names colours, a
third branch reads those colours alone (``colour_anchor``) and pattern guidance pushes from it
toward the whole prompt: the guidance is split in two, as in Composable Diffusion (Liu et al.,
2022), so the pattern can be pushed harder without overdriving the colours. Inpainting gives
the UNet the masked image and the mask (``unet.condition``) and also blends: after every step
the pixels outside the mask are replaced by the original noised to the current level, and at
the end by the original itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from . import unet as unet_mod
from .clip_model import text_features, tokenize
from .manifest import (
    COLOUR_NAMES,
    DEFAULT_GUIDANCE,
    DEFAULT_PATTERN_GUIDANCE,
    DEFAULT_SCHEDULER,
    DEFAULT_STEPS,
)

SCHEDULERS = {"ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler}  # manifest.SCHEDULER_NAMES


@dataclass
class SampleRequest:
    prompt: str
    seeds: list[int]
    height: int = 32  # pixels at the model's scale, multiples of 8
    width: int = 32
    negative_prompt: str = ""
    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    pattern_guidance: float = DEFAULT_PATTERN_GUIDANCE  # 0: plain classifier-free guidance
    tile: str = "none"
    init: np.ndarray | None = None  # H x W x 3 uint8 at the model's scale (img2img, inpaint)
    strength: float = 1.0  # 1: start from pure noise; 0.3: stay close to ``init``
    mask: np.ndarray | None = None  # H x W float in [0, 1], 1 = regenerate (inpaint)
    scheduler: str = DEFAULT_SCHEDULER


def colour_anchor(prompt: str) -> str | None:
    """The prompt's colours alone, worded as in training ("a red and white texture"), or None
    when it names none of the model's colours (then there is no pattern to separate)."""
    words = re.findall(r"[a-z]+", prompt.lower())
    colours = list(dict.fromkeys(w for w in words if w in COLOUR_NAMES))
    return f"a {' and '.join(colours)} texture" if colours else None


def _make_scheduler(name: str):
    config = {k: v for k, v in unet_mod.SCHEDULER_CONFIG.items() if k != "clip_sample"}
    if name == "ddim":
        config["clip_sample"] = False
    return SCHEDULERS[name](**config)


def _pixels(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 1 x 3 x H x W in [-1, 1]."""
    return torch.from_numpy(image[..., :3].astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]


def _to_model_space(image: np.ndarray) -> torch.Tensor:
    return unet_mod.fold(_pixels(image))


def _mask_to_model_space(mask: np.ndarray) -> torch.Tensor:
    # the same mask in all three colour channels, folded like the image so channels line up
    m = torch.from_numpy(mask.astype(np.float32))[None, None].repeat(1, 3, 1, 1)
    return unet_mod.fold(m)


@torch.inference_mode()
def sample(
    unet,
    clip,
    request: SampleRequest,
    on_step: Callable[[int, int, torch.Tensor], None] | None = None,
) -> np.ndarray:
    """N x H x W x 3 uint8, one image per seed. ``on_step`` may raise to cancel."""
    # 1. text conditioning: [unconditional | conditional | colours alone] parts of one batch;
    # the third only with pattern guidance and a prompt that names colours
    n = len(request.seeds)
    texts = [request.negative_prompt, request.prompt]
    anchor = colour_anchor(request.prompt) if request.pattern_guidance else None
    if anchor is not None:
        texts.append(anchor)
    states, pooled = text_features(clip, tokenize(texts))
    states = torch.cat([states[i : i + 1].expand(n, -1, -1) for i in range(len(texts))])
    pooled = torch.cat([pooled[i : i + 1].expand(n, -1) for i in range(len(texts))])

    # 2. timesteps; img2img and inpaint with strength < 1 skip the noisiest ones
    scheduler = _make_scheduler(request.scheduler)
    scheduler.set_timesteps(request.steps)
    timesteps = scheduler.timesteps
    strength = min(max(request.strength, 0.0), 1.0) if request.init is not None else 1.0
    skip = min(int(round(request.steps * (1.0 - strength))), request.steps - 1)
    timesteps = timesteps[skip:]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(skip * scheduler.order)

    # 3. starting latents: one noise draw per seed, so a seed always gives the same image
    shape = (3 * unet_mod.FOLD**2, request.height // unet_mod.FOLD, request.width // unet_mod.FOLD)
    noise = torch.stack(
        [torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in request.seeds]
    )
    init = _to_model_space(request.init).expand(n, -1, -1, -1) if request.init is not None else None
    mask = _mask_to_model_space(request.mask) if request.mask is not None else None
    # what the UNet reads besides the noise: the image around the mask, and the mask
    if request.mask is not None and request.init is not None:
        mask_px = torch.from_numpy(request.mask.astype(np.float32))[None, None]
        context = unet_mod.condition(_pixels(request.init), mask_px, (1, 3, *mask_px.shape[2:]))
    else:
        context = unet_mod.condition(None, None, (1, 3, request.height, request.width))
    context = context.expand(len(texts) * n, -1, -1, -1)
    if init is not None and strength < 1.0:
        latents = scheduler.add_noise(init, noise, timesteps[:1].repeat(n))
    else:
        latents = noise * scheduler.init_noise_sigma

    # 4. denoising loop, with the convolutions padded for the tiling asked for
    unet_mod.set_tiling(unet, request.tile)
    try:
        for i, t in enumerate(timesteps):
            model_in = scheduler.scale_model_input(torch.cat([latents] * len(texts)), t)
            model_in = torch.cat([model_in, context], dim=1)
            out = unet(model_in, t, encoder_hidden_states=states, class_labels=pooled).sample
            uncond, cond, *colours_only = out.chunk(len(texts))
            guided = uncond + request.guidance * (cond - uncond)
            if colours_only:
                guided = guided + request.pattern_guidance * (cond - colours_only[0])
            latents = scheduler.step(guided, t, latents).prev_sample
            if mask is not None and init is not None:
                if i + 1 < len(timesteps):
                    known = scheduler.add_noise(init, noise, timesteps[i + 1 : i + 2].repeat(n))
                else:
                    known = init
                latents = mask * latents + (1 - mask) * known
            if on_step:
                on_step(i + 1, len(timesteps), latents)
    finally:
        unet_mod.set_tiling(unet, "none")

    # 5. back to pixels
    pixels = unet_mod.unfold(latents).clamp(-1, 1)
    return ((pixels.permute(0, 2, 3, 1).numpy() + 1.0) * 127.5).round().astype(np.uint8)


def latents_to_rgb(latents: torch.Tensor) -> np.ndarray:
    """The current latents as a cheap preview (first image), H x W x 3 uint8."""
    pixels = unet_mod.unfold(latents[:1]).clamp(-1, 1)[0]
    return ((pixels.permute(1, 2, 0).numpy() + 1.0) * 127.5).round().astype(np.uint8)
