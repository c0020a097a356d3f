"""The ``builtin`` engine: the small text-to-texture model and CLIP that ship inside brushlink.

Kinds:

* ``generate`` — ``candidates`` N drawn with seeds seed, seed+1, ... in one batch (with pattern
  guidance, ``options.pattern_guidance``, when the prompt names colours), ranked by the
  built-in CLIP, the best ``keep`` K returned with their scores; ``tile`` x / y / xy pads the
  model's convolutions circularly and the upscale wraps around too, so tiles stay seamless.
* ``inpaint`` — the region around the mask (``kit.regions``) regenerated at the model's size
  with masked blending, scaled back and pasted through the feathered mask.
* ``style`` — img2img: the image at the model's size, noised to ``strength`` and denoised toward
  the prompt, then scaled back to the image's size (its alpha is kept; a mask limits it).

The model works at about 32 x 32 pixels (``work_size``) and results are scaled to the requested
size (default 512 x 512) with bicubic interpolation. Construction is cheap: weights load on the
first job and stay loaded.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import cv2
import numpy as np

from brushlink.plugin.capabilities import Accepts, ModelCard, OptionSpec, Range
from brushlink.plugin.request import TILE_MODES

from ..base import Engine, EngineJob, EngineOutput, EngineResult, JobContext
from ..kit.candidates import candidate_seeds, rank
from ..kit.regions import crop, find_region, limit_to_mask, paste, unchanged
from ..kit.steps import StepReporter
from . import manifest

MODEL_NAME = "builtin"
DEFAULT_SIZE = 512
STYLE_STRENGTH = 0.6
PREVIEW_EVERY = 4
WORK_AREA = 32 * 32  # pixels the model works at, whatever the aspect ratio

CARD_ACCEPTS = Accepts(
    candidates=Range(1, 16),
    steps=Range(1, 100),
    guidance=Range(0, 30),
    strength=Range(0, 1, low_open=True),
    side=Range(8, 8192),
    schedulers=list(manifest.SCHEDULER_NAMES),
    tile=list(TILE_MODES),
    slots=["image", "mask"],
    options={
        "pattern_guidance": OptionSpec(
            "number",
            Range(0, 30),
            default=manifest.DEFAULT_PATTERN_GUIDANCE,
            description="How hard the pattern is pushed beyond the prompt's colours "
            "(0: plain classifier-free guidance).",
        )
    },
)


def work_size(width: int, height: int) -> tuple[int, int]:
    """The model's working size for an output size: about 32 x 32 pixels, multiples of 8."""
    scale = math.sqrt(WORK_AREA / max(1, width * height))

    def side(v: int) -> int:
        return int(min(64, max(16, round(v * scale / 8) * 8)))

    return side(width), side(height)


def upscale(rgb: np.ndarray, width: int, height: int, tile: str = "none") -> np.ndarray:
    """Bicubic resize that wraps around on the tiled axes, so a seamless tile stays seamless.

    Tiled axes are padded with the opposite edge, the others with their own edge; the resize
    then maps output pixel centres exactly onto the source grid.
    """
    h, w = rgb.shape[:2]
    pad = 4
    padded = np.pad(rgb, ((pad, pad), (0, 0), (0, 0)), mode="wrap" if "y" in tile else "edge")
    padded = np.pad(padded, ((0, 0), (pad, pad), (0, 0)), mode="wrap" if "x" in tile else "edge")
    sx, sy = width / w, height / h
    matrix = np.array(
        [[1 / sx, 0, 0.5 / sx - 0.5 + pad], [0, 1 / sy, 0.5 / sy - 0.5 + pad]], dtype=np.float64
    )
    out = cv2.warpAffine(
        padded.astype(np.float32),
        matrix,
        (width, height),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def downscale(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def _rgba(rgb: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    a = np.full(rgb.shape[:2], 255, np.uint8) if alpha is None else alpha
    return np.dstack([rgb, a])


def _visible_rgb(rgba: np.ndarray) -> np.ndarray:
    """RGB with transparent pixels shown over mid gray (what the model should see)."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * alpha + 128.0 * (1.0 - alpha)
    return np.rint(rgb).astype(np.uint8)


class BuiltinEngine(Engine):
    name = "builtin"

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._clip: Any = None
        self._unet: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Any, device: str, built: list[Engine] | None = None) -> Any:
        return cls(device)

    # ------------------------------------------------------------------ what it serves

    def models(self) -> list[ModelCard]:
        clip, unet = manifest.CLIP_WEIGHTS, manifest.UNET_WEIGHTS
        if not (clip.is_file() and unet.is_file()):
            return []
        return [
            ModelCard(
                name=MODEL_NAME,
                engine=self.name,
                kinds=["generate", "inpaint", "style"],
                family="builtin",
                size_bytes=clip.stat().st_size + unet.stat().st_size,
                description="Small text-to-texture model trained by brushlink on its own "
                "procedural patterns (checkerboard, stripes, dots, bricks, tiles, hexagons, "
                "waves, wood, marble, clouds, gradients in named colours); ranked by its CLIP.",
                defaults={
                    "width": DEFAULT_SIZE,
                    "height": DEFAULT_SIZE,
                    "steps": manifest.DEFAULT_STEPS,
                    "guidance": manifest.DEFAULT_GUIDANCE,
                    "pattern_guidance": manifest.DEFAULT_PATTERN_GUIDANCE,
                    "scheduler": manifest.DEFAULT_SCHEDULER,
                    "strength": STYLE_STRENGTH,
                },
                accepts=CARD_ACCEPTS,
            )
        ]

    # ------------------------------------------------------------------ loading

    def _models(self) -> tuple[Any, Any]:
        """The CLIP (shared with the rank engine) and the UNet, loaded on first use."""
        with self._lock:
            if self._unet is None:
                from .clip_model import load_builtin_clip
                from .unet import load_unet

                self._clip = load_builtin_clip(self.device)
                self._unet = load_unet(self.device)
            return self._clip, self._unet

    def warm_models(self) -> list[str]:
        return [MODEL_NAME] if self._unet is not None else []

    def unload(self) -> None:
        with self._lock:
            self._unet = None
            self._clip = None

    # ------------------------------------------------------------------ run

    def run(self, job: EngineJob, ctx: JobContext) -> EngineResult:
        ctx.check_cancelled()
        started = time.perf_counter()
        # 1. load (or reuse) the models
        clip, unet = self._models()
        # 2. draw the candidates
        if job.request.kind == "generate":
            result = self._generate(job, ctx, clip, unet)
        elif job.request.kind == "inpaint":
            result = self._inpaint(job, ctx, clip, unet)
        else:
            result = self._style(job, ctx, clip, unet)
        result.metadata.setdefault("model", MODEL_NAME)
        result.metadata["engine_s"] = round(time.perf_counter() - started, 4)
        return result

    def _sample(
        self, job: EngineJob, ctx: JobContext, clip: Any, unet: Any, **sizes: Any
    ) -> tuple[list[np.ndarray], list[int]]:
        from .sampling import SampleRequest, latents_to_rgb, sample

        request = job.request
        seeds = candidate_seeds(job.seed, request.candidates)
        options = request.options
        req = SampleRequest(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            seeds=seeds,
            steps=request.steps or manifest.DEFAULT_STEPS,
            guidance=request.guidance
            if request.guidance is not None
            else manifest.DEFAULT_GUIDANCE,
            pattern_guidance=float(
                options.get("pattern_guidance", manifest.DEFAULT_PATTERN_GUIDANCE)
            ),
            scheduler=request.scheduler or manifest.DEFAULT_SCHEDULER,
            **sizes,
        )
        report = StepReporter(ctx, req.steps, PREVIEW_EVERY, lambda z: _rgba(latents_to_rgb(z)))
        report.start()
        images = sample(unet, clip.model, req, lambda step, total, z: report(step, z, total))
        return list(images), seeds

    # ------------------------------------------------------------------ generate

    def _generate(self, job: EngineJob, ctx: JobContext, clip: Any, unet: Any) -> EngineResult:
        request = job.request
        width, height = request.width or DEFAULT_SIZE, request.height or DEFAULT_SIZE
        gw, gh = work_size(width, height)
        small, seeds = self._sample(job, ctx, clip, unet, width=gw, height=gh, tile=request.tile)
        outputs = [_rgba(upscale(im, width, height, request.tile)) for im in small]
        result = rank(request, outputs, seeds, clip.score, judged=small)
        result.metadata["work_size"] = [gw, gh]
        return result

    # ------------------------------------------------------------------ inpaint

    def _inpaint(self, job: EngineJob, ctx: JobContext, clip: Any, unet: Any) -> EngineResult:
        request, image, mask = job.request, job.image, job.mask
        assert image is not None and mask is not None  # the card requires both
        # 1. the region around the mask, and the weight it is pasted back with
        region = find_region(
            mask,
            request.inpaint,
        )
        if region is None:
            empty = unchanged(image, request.inpaint.output)
            return EngineResult([EngineOutput(empty, seed=job.seed)], {"regions": 0})
        box = region.box
        gw, gh = work_size(box.width, box.height)
        small_rgb = downscale(_visible_rgb(crop(image, box)), gw, gh)
        # a pixel partly covered at full size is regenerated at the model's size
        covered = (region.weight > 0).astype(np.uint8) * 255
        small_mask = cv2.resize(covered, (gw, gh), interpolation=cv2.INTER_AREA) > 0
        # 2. regenerate it at the model's size
        small, seeds = self._sample(
            job,
            ctx,
            clip,
            unet,
            width=gw,
            height=gh,
            init=small_rgb,
            mask=small_mask.astype(np.float32),
            strength=request.strength if request.strength is not None else 1.0,
        )
        # 3. scale back and paste through the feathered mask
        outputs = [
            paste(image, region, _rgba(upscale(im, box.width, box.height)), request.inpaint.output)
            for im in small
        ]
        result = rank(request, outputs, seeds, clip.score, judged=small)
        result.metadata.update(
            {"crop": [box.x, box.y, box.width, box.height], "work_size": [gw, gh]}
        )
        return result

    # ------------------------------------------------------------------ style

    def _style(self, job: EngineJob, ctx: JobContext, clip: Any, unet: Any) -> EngineResult:
        request, image = job.request, job.image
        assert image is not None  # the card requires it
        h, w = image.shape[:2]
        gw, gh = work_size(w, h)
        small, seeds = self._sample(
            job,
            ctx,
            clip,
            unet,
            width=gw,
            height=gh,
            init=downscale(_visible_rgb(image), gw, gh),
            strength=request.strength if request.strength is not None else STYLE_STRENGTH,
            tile=request.tile,
        )
        outputs = [
            limit_to_mask(
                image,
                job.mask,
                _rgba(upscale(im, w, h, request.tile), image[..., 3]),
                request.inpaint.output,
            )
            for im in small
        ]
        result = rank(request, outputs, seeds, clip.score, judged=small)
        result.metadata["work_size"] = [gw, gh]
        return result
