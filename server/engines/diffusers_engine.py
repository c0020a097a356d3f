"""The ``diffusers`` engine: Stable Diffusion 1.x / 2.x / SDXL checkpoints from local files.

One model per checkpoint found in the checkpoint folders (``server/sd/store.py``). Kinds:

* ``generate`` — txt2img; ``candidates`` N drawn with seeds seed, seed+1, ... and ranked by CLIP,
  the best ``keep`` K returned with their scores; ``tile`` x/y/xy for seamless textures.
* ``inpaint`` — crop around the mask with context, inpaint at the model's native resolution,
  paste back through a feathered mask (pixels outside it are untouched); 9-channel inpainting
  checkpoints use their extra channels, ordinary ones blend the masked latents every step.
* ``style`` — img2img with prompt + strength; with a reference image, IP-Adapter when its
  weights are installed.

Every step reports progress (and honours cancel); every few steps a preview is made from the
latents by a linear map. Out of memory: one retry with lower-memory settings.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from brushlink.plugin.errors import InvalidField, Unsupported
from brushlink.plugin.protocol import TILE_MODES, JobSpec

from ..sd.store import Checkpoint, ModelFolders, ModelStore, checkpoint_dirs, parse_size
from .base import Engine, EngineJob, EngineOutput, EngineResult, JobContext, ModelInfo

log = logging.getLogger(__name__)

Scorer = Callable[[str, list[np.ndarray]], list[float]]

# Scheduler names a request may use -> (diffusers class name, extra config).
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}

# IP-Adapter files per family, looked for in <models root>/ipadapter/.
IP_ADAPTER_WEIGHTS = {
    "sd1": "ip-adapter_sd15.safetensors",
    "sdxl": "ip-adapter_sdxl_vit-h.safetensors",
}
IP_ADAPTER_ENCODER = "image_encoder"  # CLIPVisionModelWithProjection folder (ViT-H)

STYLE_STRENGTH = 0.6
PREVIEW_EVERY = 5


def _turbo(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in ("turbo", "lightning", "hyper"))


class DiffusersEngine(Engine):
    name = "diffusers"

    def __init__(
        self,
        model_dirs: list[Path],
        device: str = "auto",
        vram_budget: int | str | None = None,
        ram_budget: int | str | None = None,
        *,
        ranker: Callable[[], Scorer | None] | None = None,
        compile: bool = False,
        preview_every: int = PREVIEW_EVERY,
    ) -> None:
        """``model_dirs``: model roots (``<home>/models`` and ``--models`` folders); checkpoints
        are looked for in ``<root>/checkpoints`` and in the root itself. ``ranker`` returns the
        CLIP scorer used to rank candidates (e.g. ``RankEngine.ranker``), or None."""
        self.model_roots = [Path(d) for d in model_dirs]
        self.folders = ModelFolders(checkpoint_dirs(self.model_roots))
        # torch is imported on first use, not here: building the engine must stay cheap.
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.compile = compile
        self.preview_every = max(1, preview_every)
        self._ranker = ranker
        budget = parse_size(vram_budget if device.startswith("cuda") else ram_budget)
        if budget is None:
            budget = _default_budget(device)
        dtype = "float16" if device.startswith("cuda") else "float32"
        self.store = ModelStore(budget, dtype=dtype, prepare=self._prepare)

    @classmethod
    def from_config(cls, config: Any, device: str, built: list[Engine] | None = None) -> Any:
        """From a ``ServerConfig``; ranks candidates with the ``rank`` engine in ``built``."""
        rank = next((e for e in built or [] if e.name == "rank"), None)
        return cls(
            list(config.all_model_dirs),
            device,
            config.vram_budget,
            config.ram_budget,
            ranker=getattr(rank, "ranker", None),
            compile=config.compile,
        )

    # ------------------------------------------------------------------ models

    def models(self) -> list[ModelInfo]:
        return [self._info(c) for c in self.folders.list()]

    def _info(self, ckpt: Checkpoint) -> ModelInfo:
        found = ckpt.detected
        kinds = ("inpaint",) if found.inpaint else ("generate", "inpaint", "style")
        turbo = _turbo(ckpt.name)
        what = {"sd1": "Stable Diffusion 1.x", "sd2": "Stable Diffusion 2.x", "sdxl": "SDXL"}
        description = what[found.family] + (" inpainting" if found.inpaint else "")
        description += f" ({'diffusers folder' if ckpt.path.is_dir() else 'single file'})"
        return ModelInfo(
            name=ckpt.name,
            engine=self.name,
            kinds=kinds,
            family=found.family,
            size_bytes=ckpt.size_bytes,
            description=description,
            defaults={
                "width": found.native_size,
                "height": found.native_size,
                "steps": 4 if turbo else 25,
                "guidance": 0.0 if turbo else 7.5,
            },
        )

    def _prepare(self, pipe: Any) -> Any:
        """Device, precision and speed settings, once per loaded checkpoint."""
        import torch

        pipe.set_progress_bar_config(disable=True)
        if self.device.startswith("cuda"):
            pipe.to(self.device, torch.float16)  # fp16 halves memory and doubles speed on GPUs
        else:
            pipe.to(self.device)
        if self.device.startswith("cuda"):
            # SDPA attention is diffusers' default on torch 2; channels-last helps the convs.
            pipe.unet.to(memory_format=torch.channels_last)
            pipe.vae.to(memory_format=torch.channels_last)
            if self.compile:
                pipe.unet = torch.compile(pipe.unet, mode="max-autotune-no-cudagraphs")
        return pipe

    # ------------------------------------------------------------------ checks

    def check(self, spec: JobSpec, model: ModelInfo, images: dict[str, Any]) -> None:
        """Refuse what this engine cannot do before the job is queued."""
        if spec.tile not in TILE_MODES:
            raise InvalidField(f"`tile` must be one of {', '.join(TILE_MODES)}.", field="tile")
        if spec.scheduler is not None and spec.scheduler not in SCHEDULERS:
            names = ", ".join(SCHEDULERS)
            raise InvalidField(
                f"Unknown scheduler `{spec.scheduler}`; use one of {names}.", field="scheduler"
            )
        if spec.candidates < 1:
            raise InvalidField("`candidates` must be at least 1.", field="candidates")
        if spec.keep is not None and not 1 <= spec.keep <= spec.candidates:
            raise InvalidField("`keep` must be between 1 and `candidates`.", field="keep")
        if spec.strength is not None and not 0.0 < spec.strength <= 1.0:
            raise InvalidField("`strength` must be in (0, 1].", field="strength")
        for side in ("width", "height"):
            value = getattr(spec, side)
            if value is not None and value < 8:
                raise InvalidField(f"`{side}` must be at least 8 pixels.", field=side)
        if spec.kind == "inpaint" and not (images.get("image") and images.get("mask")):
            raise InvalidField("An inpaint job needs an `image` and a `mask`.", field="images")
        if spec.kind == "style":
            if not images.get("image"):
                raise InvalidField("A style job needs an `image`.", field="images")
            if images.get("reference"):
                self._ip_adapter_files(self.folders.resolve(model.name))

    def _ip_adapter_files(self, ckpt: Checkpoint) -> tuple[Path, str]:
        """The IP-Adapter folder and weight file for this checkpoint, or a clear refusal."""
        weight = IP_ADAPTER_WEIGHTS.get(ckpt.detected.family)
        if weight is None:
            raise Unsupported(
                "Style from a reference image needs IP-Adapter weights, and there are none for "
                "Stable Diffusion 2.x; use an SD 1.x or SDXL checkpoint.",
                field="reference",
            )
        folders = [root / "ipadapter" for root in self.model_roots]
        for folder in folders:
            encoder = folder / IP_ADAPTER_ENCODER
            weights_there = (folder / weight).is_file() and (encoder / "config.json").is_file()
            if weights_there and any(encoder.glob("*.safetensors")):
                return folder, weight
        where = folders[0] if folders else Path("models/ipadapter")
        raise Unsupported(
            f"Style from a reference image needs the IP-Adapter weights `{weight}` and the image "
            f"encoder folder `{IP_ADAPTER_ENCODER}/` (config.json + model.safetensors) in "
            f"`{where}`; they are not installed. Without a reference, style uses the prompt.",
            field="reference",
        )

    # ------------------------------------------------------------------ run

    def run(self, job: EngineJob, ctx: JobContext) -> EngineResult:
        ctx.check_cancelled()
        ckpt = self.folders.resolve(job.model.name)
        started = time.perf_counter()
        if job.spec.kind == "generate":
            result = self._generate(job, ctx, ckpt)
        elif job.spec.kind == "inpaint":
            result = self._inpaint(job, ctx, ckpt)
        elif job.spec.kind == "style":
            result = self._style(job, ctx, ckpt)
        else:
            raise Unsupported(
                f"The diffusers engine cannot do `{job.spec.kind}` jobs.", field="kind"
            )
        result.metadata.setdefault("model", ckpt.name)
        result.metadata["engine_s"] = round(time.perf_counter() - started, 4)
        return result

    def _defaults(self, ckpt: Checkpoint, spec: JobSpec) -> tuple[int, float]:
        info = self._info(ckpt)
        steps = spec.steps if spec.steps is not None else int(info.defaults["steps"])
        guidance = spec.guidance if spec.guidance is not None else float(info.defaults["guidance"])
        return steps, guidance

    def _call(
        self,
        pipe: Any,
        ctx: JobContext,
        ckpt: Checkpoint,
        spec: JobSpec,
        seeds: list[int],
        tile: str = "none",
        **kwargs: Any,
    ) -> list[np.ndarray]:
        """Run ``pipe`` once for all seeds; returns H x W x 3 float images in [0, 1]."""
        import torch

        from ..sd.memory import run_with_oom_retry
        from ..sd.previews import latents_to_rgba
        from ..sd.tiling import tiling

        steps, guidance = self._defaults(ckpt, spec)
        family = ckpt.detected.family
        every = self.preview_every

        def on_step(p: Any, i: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            total = int(getattr(p, "num_timesteps", steps) or steps)
            ctx.progress(i + 1, total)  # raises JobCancelled: the pipeline stops at this step
            if (i + 1) % every == 0 and i + 1 < total:
                ctx.preview(latents_to_rgba(tensors["latents"], family), i + 1, total)
            return {}

        def call() -> list[np.ndarray]:
            # Fresh CPU generators per attempt: the retry draws the same noise, on any device.
            generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
            with self._scheduler(pipe, spec.scheduler), tiling(pipe, tile), torch.inference_mode():
                out = pipe(
                    prompt=[spec.prompt] * len(seeds),
                    negative_prompt=[spec.negative_prompt] * len(seeds)
                    if spec.negative_prompt
                    else None,
                    num_inference_steps=steps,
                    guidance_scale=guidance,
                    generator=generators,
                    output_type="np",
                    callback_on_step_end=on_step,
                    callback_on_step_end_tensor_inputs=["latents"],
                    **kwargs,
                )
            return list(out.images)

        ctx.check_cancelled()
        return run_with_oom_retry(pipe, call)

    @contextmanager
    def _scheduler(self, pipe: Any, name: str | None):
        """Use the requested scheduler for one call; the checkpoint's own one otherwise."""
        default = pipe.scheduler
        if name is not None:
            import diffusers

            cls_name, extra = SCHEDULERS[name]
            pipe.scheduler = getattr(diffusers, cls_name).from_config(default.config, **extra)
        try:
            yield
        finally:
            pipe.scheduler = default

    # ------------------------------------------------------------------ generate

    def _generate(self, job: EngineJob, ctx: JobContext, ckpt: Checkpoint) -> EngineResult:
        spec = job.spec
        # 1. sizes: the model works in multiples of 8; other sizes are resized at the end
        native = ckpt.detected.native_size
        width, height = spec.width or native, spec.height or native
        run_w, run_h = _ceil8(width), _ceil8(height)
        # 2. seeds: one per candidate, consecutive, so any candidate can be redrawn alone
        seeds = [(job.seed + i) % 2**63 for i in range(spec.candidates)]
        pipe = self.store.get(ckpt, "txt2img")
        # 3. denoise all candidates in one batch
        images = self._call(pipe, ctx, ckpt, spec, seeds, tile=spec.tile, width=run_w, height=run_h)
        rgba = [_resize(_to_rgba(im), width, height) for im in images]
        # 4. rank with CLIP and keep the best
        return self._rank(spec, rgba, seeds)

    def _rank(self, spec: JobSpec, images: list[np.ndarray], seeds: list[int]) -> EngineResult:
        keep = spec.keep or len(images)
        scorer = self._ranker() if (self._ranker and len(images) > 1) else None
        if scorer is None:
            outputs = [EngineOutput(im, seed=s) for im, s in zip(images, seeds, strict=True)]
            return EngineResult(images=outputs[:keep], metadata={"ranked": False})
        try:
            scores = scorer(spec.prompt, images)
        except Exception as exc:  # the pictures are made: a CLIP failure must not lose them
            log.warning("ranking failed, returning candidates unranked: %s", exc)
            outputs = [EngineOutput(im, seed=s) for im, s in zip(images, seeds, strict=True)]
            return EngineResult(
                images=outputs[:keep], metadata={"ranked": False, "rank_error": str(exc)[:200]}
            )
        order = sorted(range(len(images)), key=lambda i: -scores[i])[:keep]
        outputs = [EngineOutput(images[i], seed=seeds[i], score=scores[i]) for i in order]
        ranking = [{"index": i, "seed": seeds[i], "score": scores[i]} for i in order]
        return EngineResult(images=outputs, metadata={"ranked": True, "ranking": ranking})

    # ------------------------------------------------------------------ inpaint

    def _inpaint(self, job: EngineJob, ctx: JobContext, ckpt: Checkpoint) -> EngineResult:
        spec = job.spec
        image, mask = job.image, job.mask
        assert image is not None and mask is not None  # check() made sure
        if image.shape[:2] != mask.shape[:2]:
            raise InvalidField("The mask must have the image's size.", field="mask")
        if not mask.any():
            return EngineResult(images=[EngineOutput(image.copy(), seed=job.seed)])
        # 1. crop around the mask with context; outpaint when the mask reaches the border
        box, outpaint = inpaint_box(mask)
        x0, y0, x1, y1 = box
        crop, crop_mask = image[y0:y1, x0:x1], mask[y0:y1, x0:x1]
        rgb = prefill(crop, crop_mask) if outpaint or (crop[..., 3] < 255).any() else crop[..., :3]
        # 2. work at the model's native resolution, in multiples of 8
        run_w, run_h = native_size(x1 - x0, y1 - y0, ckpt.detected.native_size)
        pipe = self.store.get(ckpt, "inpaint")
        strength = 1.0 if outpaint else (spec.strength if spec.strength is not None else 1.0)
        seeds = [(job.seed + i) % 2**63 for i in range(spec.candidates)]
        generated = self._call(
            pipe,
            ctx,
            ckpt,
            spec,
            seeds,
            image=Image.fromarray(rgb).resize((run_w, run_h), Image.LANCZOS),
            mask_image=Image.fromarray(crop_mask).resize((run_w, run_h), Image.BILINEAR),
            width=run_w,
            height=run_h,
            strength=strength,
        )
        # 3. paste back through a feathered mask
        results = []
        feather = feathered_mask(crop_mask)
        for out in generated:
            patch = _resize(_to_rgba(out), x1 - x0, y1 - y0)
            merged = image.copy()
            merged[y0:y1, x0:x1] = blend(crop, patch, feather)
            results.append(merged)
        result = self._rank(spec, results, seeds)
        result.metadata.update({"crop": [x0, y0, x1 - x0, y1 - y0], "outpaint": outpaint})
        return result

    # ------------------------------------------------------------------ style

    def _style(self, job: EngineJob, ctx: JobContext, ckpt: Checkpoint) -> EngineResult:
        spec = job.spec
        image = job.image
        assert image is not None
        h, w = image.shape[:2]
        run_w, run_h = native_size(w, h, ckpt.detected.native_size)
        pipe = self.store.get(ckpt, "img2img")
        strength = spec.strength if spec.strength is not None else STYLE_STRENGTH
        seeds = [(job.seed + i) % 2**63 for i in range(spec.candidates)]
        source = Image.fromarray(prefill(image, np.zeros((h, w), np.uint8)))
        extra: dict[str, Any] = {}
        if job.reference is not None:
            folder, weight = self._ip_adapter_files(ckpt)
            pipe.load_ip_adapter(
                str(folder),
                subfolder="",
                weight_name=weight,
                image_encoder_folder=IP_ADAPTER_ENCODER,
                local_files_only=True,
            )
            pipe.set_ip_adapter_scale(float(spec.options.get("reference_scale", 0.7)))
            extra["ip_adapter_image"] = Image.fromarray(
                np.ascontiguousarray(job.reference[..., :3])
            )
        try:
            generated = self._call(
                pipe,
                ctx,
                ckpt,
                spec,
                seeds,
                tile=spec.tile,
                image=source.resize((run_w, run_h), Image.LANCZOS),
                strength=strength,
                **extra,
            )
        finally:
            if job.reference is not None:
                pipe.unload_ip_adapter()  # the UNet is shared with the other pipelines
        outputs = []
        for out in generated:
            rgba = _resize(_to_rgba(out), w, h)
            rgba[..., 3] = image[..., 3]  # keep the layer's transparency
            outputs.append(rgba)
        return self._rank(spec, outputs, seeds)

    def unload(self) -> None:
        self.store.evict()


# ---------------------------------------------------------------------- image helpers


def _default_budget(device: str) -> int | None:
    """Most of the device: 90 % of GPU memory, or half of the machine's RAM for the CPU."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(0).total_memory * 0.9)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.5)
    except (ValueError, OSError, AttributeError):
        return None


def _ceil8(value: int) -> int:
    return max(8, (value + 7) // 8 * 8)


def native_size(width: int, height: int, native: int) -> tuple[int, int]:
    """Scale (width, height) to the model's native pixel count, keeping the aspect; multiples of 8."""
    scale = math.sqrt(native * native / max(1, width * height))
    return _ceil8(round(width * scale)), _ceil8(round(height * scale))


def inpaint_box(mask: np.ndarray, context: float = 0.5) -> tuple[tuple[int, int, int, int], bool]:
    """The crop around the mask: its bounding box grown by ``context`` x its size (at least 32 px)
    on each side, clamped to the image. Also says whether the mask touches the image border."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    bx0, by0, bx1, by1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    margin = max(32, int(context * max(bx1 - bx0, by1 - by0)))
    box = (max(0, bx0 - margin), max(0, by0 - margin), min(w, bx1 + margin), min(h, by1 + margin))
    touches = bx0 == 0 or by0 == 0 or bx1 == w or by1 == h
    return box, touches


def feather_radius(mask: np.ndarray) -> int:
    h, w = mask.shape
    return max(2, round(0.02 * math.hypot(w, h)))


def feathered_mask(mask: np.ndarray) -> np.ndarray:
    """Float mask in [0, 1]: the mask grown by r and blurred over r pixels, never below the mask.

    Pixels farther than 2r from the mask stay exactly 0, so they are never touched.
    """
    r = feather_radius(mask)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    grown = cv2.dilate(mask, kernel).astype(np.float32) / 255.0
    soft = cv2.blur(grown, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REPLICATE)
    return np.maximum(soft, mask.astype(np.float32) / 255.0)


def blend(original: np.ndarray, generated: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """original * (1 - w) + generated * w per pixel; exact where w == 0."""
    w = weight[..., None].astype(np.float64)
    out = original.astype(np.float64) * (1.0 - w) + generated.astype(np.float64) * w
    merged = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    untouched = weight == 0
    merged[untouched] = original[untouched]
    return merged


def prefill(rgba: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """RGB with masked or transparent pixels filled from their surroundings (OpenCV Telea), so
    the VAE sees plausible colours where the canvas was empty (outpainting)."""
    rgb = np.ascontiguousarray(rgba[..., :3])
    holes = ((mask > 0) | (rgba[..., 3] == 0)).astype(np.uint8) * 255
    if not holes.any() or holes.all():
        return rgb if not holes.all() else np.full_like(rgb, 127)
    return cv2.inpaint(rgb, holes, 3, cv2.INPAINT_TELEA)


def _to_rgba(image: np.ndarray) -> np.ndarray:
    rgb = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    alpha = np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)
    return np.concatenate([rgb, alpha], axis=2)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrink = width * height < image.shape[0] * image.shape[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=interp)
