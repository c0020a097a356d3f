"""The ``builtin`` engine: the small text-to-texture model and CLIP that ship inside brushlink.

Kinds:

* ``generate`` — ``candidates`` N drawn with seeds seed, seed+1, ... in one batch (with pattern
  guidance, ``options.pattern_guidance``, when the prompt names colours), ranked by the
  built-in CLIP, the best ``keep`` K returned with their scores; ``tile`` x / y / xy pads the
  model's convolutions circularly and the upscale wraps around too, so tiles stay seamless.
* ``inpaint`` — crop around the mask with context, regenerate it at the model's size with masked
  blending, scale back and paste through the mask: pixels outside the mask are untouched.
* ``style`` — img2img: the image at the model's size, noised to ``strength`` and denoised toward
  the prompt, then scaled back to the image's size (its alpha is kept).

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

from brushlink.plugin.errors import ImageMismatch, InvalidField, Unsupported
from brushlink.plugin.protocol import TILE_MODES, JobSpec

from .base import Engine, EngineJob, EngineOutput, EngineResult, JobContext, ModelInfo

MODEL_NAME = "builtin"
DEFAULT_SIZE = 512
STYLE_STRENGTH = 0.6
MAX_CANDIDATES = 16
MAX_STEPS = 100
MAX_GUIDANCE = 30.0
PREVIEW_EVERY = 4
WORK_AREA = 32 * 32  # pixels the model works at, whatever the aspect ratio


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
    if rgba.shape[2] == 3:
        return rgba
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * alpha + 128.0 * (1.0 - alpha)
    return np.rint(rgb).astype(np.uint8)


def mask_box(mask: np.ndarray, context: float = 0.5) -> tuple[int, int, int, int]:
    """The mask's bounding box grown by ``context`` x its size (at least 16 px), in the image."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    margin = max(16, int(context * max(x1 - x0, y1 - y0)))
    return max(0, x0 - margin), max(0, y0 - margin), min(w, x1 + margin), min(h, y1 + margin)


def pattern_guidance(spec: JobSpec) -> float:
    """``options.pattern_guidance``: how hard the pattern is pushed beyond the prompt's colours
    (0 = plain classifier-free guidance); the manifest's default when not given."""
    from brushlink.server.builtin.manifest import DEFAULT_PATTERN_GUIDANCE

    value = spec.options.get("pattern_guidance", DEFAULT_PATTERN_GUIDANCE)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidField(
            "`options.pattern_guidance` must be a number.", field="options.pattern_guidance"
        )
    if not 0.0 <= value <= MAX_GUIDANCE:
        raise InvalidField(
            f"`options.pattern_guidance` must be from 0 to {MAX_GUIDANCE:g}.",
            field="options.pattern_guidance",
        )
    return float(value)


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

    def models(self) -> list[ModelInfo]:
        from brushlink.server.builtin.manifest import (
            CLIP_WEIGHTS,
            DEFAULT_GUIDANCE,
            DEFAULT_PATTERN_GUIDANCE,
            DEFAULT_SCHEDULER,
            DEFAULT_STEPS,
            UNET_WEIGHTS,
        )

        if not (CLIP_WEIGHTS.is_file() and UNET_WEIGHTS.is_file()):
            return []

        return [
            ModelInfo(
                name=MODEL_NAME,
                engine=self.name,
                kinds=("generate", "inpaint", "style"),
                family="builtin",
                size_bytes=CLIP_WEIGHTS.stat().st_size + UNET_WEIGHTS.stat().st_size,
                description="Small text-to-texture model trained by brushlink on its own "
                "procedural patterns (checkerboard, stripes, dots, bricks, tiles, hexagons, "
                "waves, wood, marble, clouds, gradients in named colours); ranked by its CLIP.",
                defaults={
                    "width": DEFAULT_SIZE,
                    "height": DEFAULT_SIZE,
                    "steps": DEFAULT_STEPS,
                    "guidance": DEFAULT_GUIDANCE,
                    "pattern_guidance": DEFAULT_PATTERN_GUIDANCE,
                    "scheduler": DEFAULT_SCHEDULER,
                    "strength": STYLE_STRENGTH,
                },
            )
        ]

    def check(self, spec: JobSpec, model: ModelInfo, images: dict[str, Any]) -> None:
        from brushlink.server.builtin.manifest import SCHEDULER_NAMES

        if spec.kind not in ("generate", "inpaint", "style"):
            raise Unsupported(f"The builtin model cannot do `{spec.kind}` jobs.", field="kind")
        if spec.tile not in TILE_MODES:
            raise InvalidField(f"`tile` must be one of {', '.join(TILE_MODES)}.", field="tile")
        if spec.scheduler is not None and spec.scheduler not in SCHEDULER_NAMES:
            raise InvalidField(
                f"Unknown scheduler `{str(spec.scheduler)[:40]}` for the builtin model; use one "
                f"of {', '.join(SCHEDULER_NAMES)}.",
                field="scheduler",
            )
        if not 1 <= spec.candidates <= MAX_CANDIDATES:
            raise InvalidField(
                f"`candidates` must be from 1 to {MAX_CANDIDATES} for the builtin model.",
                field="candidates",
            )
        if spec.keep is not None and not 1 <= spec.keep <= spec.candidates:
            raise InvalidField("`keep` must be between 1 and `candidates`.", field="keep")
        if spec.strength is not None and not 0.0 < spec.strength <= 1.0:
            raise InvalidField("`strength` must be in (0, 1].", field="strength")
        if spec.steps is not None and not 1 <= spec.steps <= MAX_STEPS:
            raise InvalidField(f"`steps` must be from 1 to {MAX_STEPS}.", field="steps")
        if spec.guidance is not None and not 0.0 <= spec.guidance <= MAX_GUIDANCE:
            raise InvalidField(f"`guidance` must be from 0 to {MAX_GUIDANCE:g}.", field="guidance")
        pattern_guidance(spec)
        for side in ("width", "height"):
            value = getattr(spec, side)
            if value is not None and value < 8:
                raise InvalidField(f"`{side}` must be at least 8 pixels.", field=side)
        if spec.kind == "inpaint":
            if not (images.get("image") and images.get("mask")):
                raise InvalidField("An inpaint job needs an `image` and a `mask`.", field="images")
            if tuple(images["mask"]) != tuple(images["image"]):
                raise ImageMismatch("The mask must have the image's size.", field="mask")
        if spec.kind == "style" and not images.get("image"):
            raise InvalidField("A style job needs an `image`.", field="images")

    # ------------------------------------------------------------------ loading

    def _models(self) -> tuple[Any, Any]:
        """The CLIP (shared with the rank engine) and the UNet, loaded on first use."""
        with self._lock:
            if self._unet is None:
                from brushlink.server.builtin.clip_model import load_builtin_clip
                from brushlink.server.builtin.unet import load_unet

                self._clip = load_builtin_clip(self.device)
                self._unet = load_unet(self.device)
            return self._clip, self._unet

    def unload(self) -> None:
        with self._lock:
            self._unet = None
            self._clip = None

    # ------------------------------------------------------------------ run

    def run(self, job: EngineJob, ctx: JobContext) -> EngineResult:
        # 0. check inputs (the server did too, but an engine can be called directly)
        images: dict[str, Any] = {}
        for slot in ("image", "mask"):
            array = getattr(job, slot)
            if array is not None:
                images[slot] = (array.shape[1], array.shape[0])
        self.check(job.spec, job.model, images)
        ctx.check_cancelled()
        started = time.perf_counter()
        # 1. load (or reuse) the models
        clip, unet = self._models()
        # 2. draw the candidates
        if job.spec.kind == "generate":
            result = self._generate(job, ctx, clip, unet)
        elif job.spec.kind == "inpaint":
            result = self._inpaint(job, ctx, clip, unet)
        else:
            result = self._style(job, ctx, clip, unet)
        result.metadata.setdefault("model", MODEL_NAME)
        result.metadata["engine_s"] = round(time.perf_counter() - started, 4)
        return result

    def _sample(
        self, job: EngineJob, ctx: JobContext, clip: Any, unet: Any, **request: Any
    ) -> tuple[list[np.ndarray], list[int]]:
        from brushlink.server.builtin.sampling import (
            DEFAULT_GUIDANCE,
            DEFAULT_SCHEDULER,
            DEFAULT_STEPS,
            SampleRequest,
            latents_to_rgb,
            sample,
        )

        spec = job.spec
        seeds = [(job.seed + i) % 2**63 for i in range(spec.candidates)]
        req = SampleRequest(
            prompt=spec.prompt,
            negative_prompt=spec.negative_prompt,
            seeds=seeds,
            steps=spec.steps or DEFAULT_STEPS,
            guidance=spec.guidance if spec.guidance is not None else DEFAULT_GUIDANCE,
            pattern_guidance=pattern_guidance(spec),
            scheduler=spec.scheduler or DEFAULT_SCHEDULER,
            **request,
        )

        def on_step(step: int, total: int, latents: Any) -> None:
            ctx.progress(step, total)  # raises JobCancelled
            if step % PREVIEW_EVERY == 0 and step < total:
                ctx.preview(_rgba(latents_to_rgb(latents)), step, total)

        ctx.progress(0, req.steps)
        return list(sample(unet, clip.model, req, on_step)), seeds

    def _rank(
        self,
        spec: JobSpec,
        clip: Any,
        small: list[np.ndarray],
        outputs: list[np.ndarray],
        seeds: list[int],
    ) -> EngineResult:
        """Score the model-size images with the CLIP; return the best ``keep``, best first."""
        keep = spec.keep or len(outputs)
        scores = clip.score(spec.prompt, small)
        order = sorted(range(len(outputs)), key=lambda i: -scores[i])[:keep]
        ranking = [{"index": i, "seed": seeds[i], "score": scores[i]} for i in order]
        return EngineResult(
            images=[EngineOutput(outputs[i], seed=seeds[i], score=scores[i]) for i in order],
            metadata={"ranked": len(outputs) > 1, "ranking": ranking},
        )

    # ------------------------------------------------------------------ generate

    def _generate(self, job: EngineJob, ctx: JobContext, clip: Any, unet: Any) -> EngineResult:
        spec = job.spec
        width, height = spec.width or DEFAULT_SIZE, spec.height or DEFAULT_SIZE
        gw, gh = work_size(width, height)
        small, seeds = self._sample(job, ctx, clip, unet, width=gw, height=gh, tile=spec.tile)
        outputs = [_rgba(upscale(im, width, height, spec.tile)) for im in small]
        result = self._rank(spec, clip, small, outputs, seeds)
        result.metadata["work_size"] = [gw, gh]
        return result

    # ------------------------------------------------------------------ inpaint

    def _inpaint(self, job: EngineJob, ctx: JobContext, clip: Any, unet: Any) -> EngineResult:
        spec, image, mask = job.spec, job.image, job.mask
        assert image is not None and mask is not None  # check() made sure
        if not mask.any():
            return EngineResult(images=[EngineOutput(image.copy(), seed=job.seed)])
        # 1. crop around the mask with context; the model regenerates that crop at its size
        x0, y0, x1, y1 = mask_box(mask)
        crop, crop_mask = image[y0:y1, x0:x1], mask[y0:y1, x0:x1]
        gw, gh = work_size(x1 - x0, y1 - y0)
        small_rgb = downscale(_visible_rgb(crop), gw, gh)
        # a pixel partly masked at full size is regenerated at the model's size
        small_mask = cv2.resize(crop_mask, (gw, gh), interpolation=cv2.INTER_AREA) > 0
        strength = spec.strength if spec.strength is not None else 1.0
        small, seeds = self._sample(
            job,
            ctx,
            clip,
            unet,
            width=gw,
            height=gh,
            init=small_rgb,
            mask=small_mask.astype(np.float32),
            strength=strength,
        )
        # 2. paste back through the mask: exact where the mask is 0
        weight = crop_mask.astype(np.float32)[..., None] / 255.0
        outputs = []
        for im in small:
            patch = _rgba(upscale(im, x1 - x0, y1 - y0))
            blended = np.rint(crop * (1.0 - weight) + patch * weight).astype(np.uint8)
            blended[crop_mask == 0] = crop[crop_mask == 0]
            merged = image.copy()
            merged[y0:y1, x0:x1] = blended
            outputs.append(merged)
        result = self._rank(spec, clip, small, outputs, seeds)
        result.metadata.update({"crop": [x0, y0, x1 - x0, y1 - y0], "work_size": [gw, gh]})
        return result

    # ------------------------------------------------------------------ style

    def _style(self, job: EngineJob, ctx: JobContext, clip: Any, unet: Any) -> EngineResult:
        spec, image = job.spec, job.image
        assert image is not None
        h, w = image.shape[:2]
        gw, gh = work_size(w, h)
        strength = spec.strength if spec.strength is not None else STYLE_STRENGTH
        small, seeds = self._sample(
            job,
            ctx,
            clip,
            unet,
            width=gw,
            height=gh,
            init=downscale(_visible_rgb(image), gw, gh),
            strength=strength,
            tile=spec.tile,
        )
        alpha = image[..., 3] if image.shape[2] == 4 else None
        outputs = [_rgba(upscale(im, w, h, spec.tile), alpha) for im in small]
        result = self._rank(spec, clip, small, outputs, seeds)
        result.metadata["work_size"] = [gw, gh]
        return result
