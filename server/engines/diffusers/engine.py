"""The ``diffusers`` engine: Stable Diffusion 1.x / 2.x / SDXL checkpoints from local files.

One model per checkpoint found in the checkpoint folders (``store.py``). Kinds:

* ``generate`` — txt2img; ``candidates`` N drawn with seeds seed, seed+1, ... and ranked by CLIP,
  the best ``keep`` K returned with their scores; ``tile`` x/y/xy for seamless textures.
* ``inpaint`` — the region around the mask (``kit.regions``) inpainted at the model's native
  resolution and pasted back through the feathered mask; 9-channel inpainting checkpoints use
  their extra channels, ordinary ones blend the masked latents every step.
* ``style`` — img2img with prompt + strength; with a reference image, IP-Adapter when its
  weights are installed (``ip_adapter.py``).

Every step reports progress (and honours cancel); every few steps a preview is made from the
latents by a linear map. Out of memory: one retry with lower-memory settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from brushlink.plugin.capabilities import AddonCard, ModelCard
from brushlink.plugin.regions import Box
from brushlink.plugin.request import Request

from ..base import Engine, EngineJob, EngineOutput, EngineResult, JobContext, Sizes
from ..kit.candidates import Scorer, candidate_seeds, rank
from ..kit.regions import crop, find_region, limit_to_mask, paste, unchanged
from ..kit.steps import StepReporter
from .addons import Addons
from .cards import STYLE_STRENGTH, checkpoint_card
from .controls import ControlNets, guided
from .ip_adapter import IP_ADAPTER_ENCODER, adapter_files
from .pixels import ceil8, native_size, prefill, reaches_edge, resize, to_rgba
from .schedulers import use_scheduler
from .store import (
    Checkpoint,
    ModelFolders,
    ModelStore,
    checkpoint_dirs,
    default_budget,
    parse_size,
)

PREVIEW_EVERY = 5
MIN_CONTEXT = 32


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
        self.library = Addons(self.model_roots)  # LoRAs, ControlNets, VAEs, embeddings
        self.nets = ControlNets(self.library)
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
            budget = default_budget(device)
        dtype = "float16" if device.startswith("cuda") else "float32"
        self.store = ModelStore(budget, dtype=dtype, prepare=self._prepare)

    @classmethod
    def from_config(cls, config: Any, device: str, built: list[Engine] | None = None) -> Any:
        """From a ``ServerConfig``; ranks candidates with the ``rank`` engine in ``built``."""
        rank_engine = next((e for e in built or [] if e.name == "rank"), None)
        return cls(
            list(config.all_model_dirs),
            device,
            config.vram_budget,
            config.ram_budget,
            ranker=getattr(rank_engine, "ranker", None),
            compile=config.compile,
        )

    # ------------------------------------------------------------------ models

    def models(self) -> list[ModelCard]:
        return [self._card(c) for c in self.folders.list()]

    def addons(self) -> list[AddonCard]:
        return self.library.cards()

    def _card(self, ckpt: Checkpoint) -> ModelCard:
        return checkpoint_card(ckpt, self.name)

    def _prepare(self, pipe: Any) -> Any:
        """Device, precision and speed settings, once per loaded checkpoint."""
        import torch

        pipe.set_progress_bar_config(disable=True)
        if self.device.startswith("cuda"):
            pipe.to(self.device, torch.float16)  # fp16 halves memory and doubles speed on GPUs
            # SDPA attention is diffusers' default on torch 2; channels-last helps the convs.
            pipe.unet.to(memory_format=torch.channels_last)
            pipe.vae.to(memory_format=torch.channels_last)
            if self.compile:
                pipe.unet = torch.compile(pipe.unet, mode="max-autotune-no-cudagraphs")
        else:
            pipe.to(self.device)
        return pipe

    def warm_models(self) -> list[str]:
        return self.store.loaded_names()

    def check(self, request: Request, model: ModelCard, sizes: Sizes) -> None:
        """A reference image needs the IP-Adapter files of the checkpoint's family."""
        if request.kind == "style" and sizes.get("reference"):
            adapter_files(self.model_roots, self.folders.resolve(model.name).detected.family)

    # ------------------------------------------------------------------ run

    def run(self, job: EngineJob, ctx: JobContext) -> EngineResult:
        ctx.check_cancelled()
        ckpt = self.folders.resolve(job.model.name)
        started = time.perf_counter()
        kind = job.request.kind
        if kind == "generate":
            result = self._generate(job, ctx, ckpt)
        elif kind == "inpaint":
            result = self._inpaint(job, ctx, ckpt)
        else:
            result = self._style(job, ctx, ckpt)
        result.metadata.setdefault("model", ckpt.name)
        result.metadata["engine_s"] = round(time.perf_counter() - started, 4)
        return result

    def _call(
        self,
        task: str,
        job: EngineJob | None,
        ctx: JobContext,
        ckpt: Checkpoint,
        request: Request,
        seeds: list[int],
        size: tuple[int, int],
        tile: str = "none",
        box: Box | None = None,
        **kwargs: Any,
    ) -> list[np.ndarray]:
        """Run the checkpoint's ``task`` pipeline once for all seeds, with the request's LoRAs,
        embeddings, VAE and controls (pictures cropped to ``box``); returns H x W x 3 float
        images in [0, 1]."""
        import torch

        from .memory import run_with_oom_retry
        from .previews import latents_to_rgba
        from .tiling import tiling

        card = self._card(ckpt)
        steps = request.steps if request.steps is not None else int(card.defaults["steps"])
        guidance = (
            request.guidance if request.guidance is not None else float(card.defaults["guidance"])
        )
        family = ckpt.detected.family
        report = StepReporter(ctx, steps, self.preview_every, lambda z: latents_to_rgba(z, family))

        def on_step(p: Any, i: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            total = int(getattr(p, "num_timesteps", steps) or steps)
            report(i + 1, tensors["latents"], total)  # raises JobCancelled: the pipeline stops
            return {}

        def call() -> list[np.ndarray]:
            # Fresh CPU generators per attempt: the retry draws the same noise, on any device.
            generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
            negative = [request.negative_prompt] * len(seeds) if request.negative_prompt else None
            with (
                use_scheduler(pipe, request.scheduler),
                tiling(pipe, tile),
                torch.inference_mode(),
            ):
                out = pipe(
                    prompt=[request.prompt] * len(seeds),
                    negative_prompt=negative,
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
        base = self.store.get(ckpt, task)
        pictures = job.controls if job is not None else {}
        pipe, extra = guided(base, task, request.controls, pictures, self.nets, box, size)
        kwargs.update(extra)
        with self.library.attached(pipe, request, family):
            return run_with_oom_retry(pipe, call)

    def _rank(self, request: Request, images: list[np.ndarray], seeds: list[int]) -> EngineResult:
        scorer = self._ranker() if (self._ranker and len(images) > 1) else None
        return rank(request, images, seeds, scorer)

    # ------------------------------------------------------------------ generate

    def _generate(self, job: EngineJob, ctx: JobContext, ckpt: Checkpoint) -> EngineResult:
        request = job.request
        # 1. sizes: the model works in multiples of 8; other sizes are resized at the end
        native = ckpt.detected.native_size
        width, height = request.width or native, request.height or native
        # 2. seeds: one per candidate, consecutive, so any candidate can be redrawn alone
        seeds = candidate_seeds(job.seed, request.candidates)
        # 3. denoise all candidates in one batch
        run_w, run_h = ceil8(width), ceil8(height)
        images = self._call(
            "txt2img",
            job,
            ctx,
            ckpt,
            request,
            seeds,
            (run_w, run_h),
            tile=request.tile,
            width=run_w,
            height=run_h,
        )
        # 4. rank with CLIP and keep the best
        return self._rank(request, [resize(to_rgba(im), width, height) for im in images], seeds)

    # ------------------------------------------------------------------ inpaint

    def _inpaint(self, job: EngineJob, ctx: JobContext, ckpt: Checkpoint) -> EngineResult:
        request, image, mask = job.request, job.image, job.mask
        assert image is not None and mask is not None  # the card requires both
        output = request.inpaint.output
        # 1. the region around the mask, and the weight it is pasted back with
        region = find_region(mask, request.inpaint, min_context=MIN_CONTEXT)
        if region is None:
            return EngineResult([EngineOutput(unchanged(image, output), seed=job.seed)])
        box = region.box
        area = crop(image, box)
        hole = (region.weight > 0).astype(np.uint8) * 255
        outpaint = reaches_edge(hole, box, mask.shape)
        rgb = prefill(area, hole) if outpaint or (area[..., 3] < 255).any() else area[..., :3]
        # 2. inpaint at the model's native resolution, in multiples of 8
        run_w, run_h = native_size(box.width, box.height, ckpt.detected.native_size)
        strength = 1.0 if outpaint else (request.strength if request.strength is not None else 1.0)
        seeds = candidate_seeds(job.seed, request.candidates)
        generated = self._call(
            "inpaint",
            job,
            ctx,
            ckpt,
            request,
            seeds,
            (run_w, run_h),
            box=box,
            image=Image.fromarray(np.ascontiguousarray(rgb)).resize(
                (run_w, run_h), Image.Resampling.LANCZOS
            ),
            mask_image=Image.fromarray(hole).resize((run_w, run_h), Image.Resampling.BILINEAR),
            width=run_w,
            height=run_h,
            strength=strength,
        )
        # 3. paste back through the feathered mask
        results = [
            paste(image, region, resize(to_rgba(out), box.width, box.height), output)
            for out in generated
        ]
        result = self._rank(request, results, seeds)
        result.metadata.update(
            {"crop": [box.x, box.y, box.width, box.height], "outpaint": outpaint}
        )
        return result

    # ------------------------------------------------------------------ style

    def _style(self, job: EngineJob, ctx: JobContext, ckpt: Checkpoint) -> EngineResult:
        request, image = job.request, job.image
        assert image is not None  # the card requires it
        h, w = image.shape[:2]
        run_w, run_h = native_size(w, h, ckpt.detected.native_size)
        pipe = self.store.get(ckpt, "img2img")
        strength = request.strength if request.strength is not None else STYLE_STRENGTH
        seeds = candidate_seeds(job.seed, request.candidates)
        source = Image.fromarray(prefill(image, np.zeros((h, w), np.uint8)))
        extra: dict[str, Any] = {}
        if job.reference is not None:
            folder, weight = adapter_files(self.model_roots, ckpt.detected.family)
            pipe.load_ip_adapter(
                str(folder),
                subfolder="",
                weight_name=weight,
                image_encoder_folder=IP_ADAPTER_ENCODER,
                local_files_only=True,
            )
            pipe.set_ip_adapter_scale(float(request.options.get("reference_scale", 0.7)))
            extra["ip_adapter_image"] = Image.fromarray(
                np.ascontiguousarray(job.reference[..., :3])
            )
        try:
            generated = self._call(
                "img2img",
                job,
                ctx,
                ckpt,
                request,
                seeds,
                (run_w, run_h),
                tile=request.tile,
                image=source.resize((run_w, run_h), Image.Resampling.LANCZOS),
                strength=strength,
                **extra,
            )
        finally:
            if job.reference is not None:
                pipe.unload_ip_adapter()  # the UNet is shared with the other pipelines
        outputs = []
        for out in generated:
            rgba = resize(to_rgba(out), w, h)
            rgba[..., 3] = image[..., 3]  # keep the layer's transparency
            outputs.append(limit_to_mask(image, job.mask, rgba, request.inpaint.output))
        return self._rank(request, outputs, seeds)

    # ------------------------------------------------------------------ for other engines

    def redraw(
        self,
        image: np.ndarray,
        checkpoint: str,
        request: Request,
        seed: int,
        ctx: JobContext,
    ) -> np.ndarray:
        """img2img of one RGBA picture at its own size (rounded up to multiples of 8), with the
        request's prompt, strength and sampling: the refine pass of an upscale draws each tile
        with it. Returns the picture's RGBA at its size, alpha kept."""
        ckpt = self.folders.resolve(checkpoint)
        h, w = image.shape[:2]
        source = Image.fromarray(prefill(image, np.zeros((h, w), np.uint8)))
        size = (ceil8(w), ceil8(h))
        strength = request.strength if request.strength is not None else STYLE_STRENGTH
        [out] = self._call(
            "img2img", None, ctx, ckpt, request, [seed], size, image=source.resize(size),
            strength=strength,
        )  # fmt: skip
        rgba = resize(to_rgba(out), w, h)
        rgba[..., 3] = image[..., 3]
        return rgba

    def unload(self) -> None:
        self.store.evict()
