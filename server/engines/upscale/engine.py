"""The ``upscale`` engine: a picture made 2 or 4 times larger, optionally refined by a checkpoint.

Models:

* ``lanczos-sharp`` — weight-free, always there: Lanczos, back-projected onto the input
  (``resample.py``; chosen by ``brushlink bench upscale``). ``options.method`` picks one of
  the other measured methods instead.
* one per ESRGAN-family ``.safetensors`` file in the upscaler folders (``upscale_models/``,
  ``ESRGAN/``, ``RealESRGAN/``), found from file headers, loaded through spandrel on the first
  job (``esrgan.py``).

Steps of one job:

    1. upscale the RGB in overlapping tiles (``tiles.py``; ``options.tile`` and ``overlap`` for
       the networks), one progress step per tile. A network whose factor is larger than the one
       asked for runs once and each tile is box-filtered down (``INTER_AREA``; A1111 too
       runs the network, then resizes); one whose factor is smaller runs again on its own
       output (a x2 network asked for x4 runs twice, as A1111 repeats it). The alpha channel is upscaled on its own with plain Lanczos.
    2. with ``upscale.refine``: redraw the result tile by tile with that checkpoint
       (``refine.py``), one progress step per sampling step of each tile.

The output is ``scale`` times the input on each side; ``check`` refuses, before the job is
queued, an output over the server's ``max_pixels`` and a ``refine`` that names no checkpoint
that can redraw.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from brushlink.plugin.capabilities import Accepts, ModelCard, OptionSpec, Range
from brushlink.plugin.errors import BrushlinkError, InvalidField, OutOfMemory, Unsupported
from brushlink.plugin.request import Request

from ..base import Engine, EngineJob, EngineOutput, EngineResult, JobContext, Sizes
from ..diffusers.schedulers import SCHEDULERS
from ..kit import model_files
from . import esrgan
from .refine import RefinePlan
from .resample import DEFAULT_METHOD, METHODS, downsize, upscale_alpha
from .tiles import run_tiled, tile_count

log = logging.getLogger(__name__)

WEIGHT_FREE = "lanczos-sharp"
SCALES = [2, 4]
TILE, OVERLAP = 256, 32  # input px per network tile, and their overlap
PLAIN_TILE, PLAIN_OVERLAP = 512, 16  # the weight-free methods reach a few px: bounded memory
MAX_PIXELS = 4096 * 4096  # the server's default; ``from_config`` passes the configured one


def passes(native: int, scale: int) -> list[tuple[int, int]]:
    """(network factor, box-filter factor after it) for each run to reach ``scale``."""
    plan, remaining = [], scale
    while remaining > 1:
        if native >= remaining:
            plan.append((native, native // remaining))
            remaining = 1
        else:
            plan.append((native, 1))
            remaining //= native
    return plan


def _common_accepts(options: dict[str, OptionSpec]) -> Accepts:
    """What every upscale model takes: the image, the factors, and what the refine pass uses."""
    return Accepts(
        slots=["image"],
        scales=list(SCALES),
        steps=Range(1, 200),
        guidance=Range(0, 50),
        schedulers=list(SCHEDULERS),
        options=options,
    )


class UpscaleEngine(Engine):
    name = "upscale"

    def __init__(
        self,
        model_dirs: list[Path],
        device: str = "cpu",
        *,
        max_pixels: int = MAX_PIXELS,
        diffusers: Any = None,
    ) -> None:
        """``model_dirs``: model roots; upscalers are looked for in their upscaler folders.
        ``diffusers``: the engine that redraws for the refine pass (None: no refine)."""
        self.model_roots = [Path(d) for d in model_dirs]
        self.device = device
        self.max_pixels = max_pixels
        self.diffusers = diffusers
        self.loaded = esrgan.LoadedModels()
        self._probed: dict[tuple[Path, int], esrgan.Upscaler | None] = {}

    @classmethod
    def from_config(cls, config: Any, device: str, built: list[Engine] | None = None) -> Any:
        """From a ``ServerConfig``; refines with the ``diffusers`` engine in ``built``."""
        diffusers = next((e for e in built or [] if e.name == "diffusers"), None)
        return cls(
            list(config.all_model_dirs),
            device,
            max_pixels=config.limits.max_pixels,
            diffusers=diffusers,
        )

    # ------------------------------------------------------------------ models

    def upscalers(self) -> list[esrgan.Upscaler]:
        """The upscaler files, read from their headers once per change of the file."""
        found = []
        for entry in model_files.find(self.model_roots, "upscaler"):
            if entry.name == WEIGHT_FREE:
                log.warning("%s is hidden by the weight-free model of its name", entry.path)
                continue
            try:
                key = (entry.path, entry.path.stat().st_mtime_ns)
            except OSError:  # removed since the folder was read
                continue
            if key not in self._probed:
                self._probed[key] = esrgan.probe(entry)
            upscaler = self._probed[key]
            if upscaler is not None:
                found.append(upscaler)
        return found

    def models(self) -> list[ModelCard]:
        return [self._weight_free_card()] + [self._card(u) for u in self.upscalers()]

    def _weight_free_card(self) -> ModelCard:
        method = OptionSpec(
            "choice",
            choices=list(METHODS),
            default=DEFAULT_METHOD,
            description="The resampling method (see `brushlink bench upscale`).",
        )
        return ModelCard(
            name=WEIGHT_FREE,
            engine=self.name,
            kinds=["upscale"],
            family="weight-free",
            size_bytes=0,
            description="Lanczos, back-projected onto the input: sharper than Lanczos and "
            "bicubic, and closer to the original; no weights.",
            defaults={"scale": 2, "method": DEFAULT_METHOD},
            accepts=_common_accepts({"method": method}),
        )

    def _card(self, upscaler: esrgan.Upscaler) -> ModelCard:
        options = {
            "tile": OptionSpec(
                "integer",
                range=Range(64, 1024),
                default=TILE,
                description="Input px per tile: device memory grows with its square.",
            ),
            "overlap": OptionSpec(
                "integer",
                range=Range(8, 128),
                default=OVERLAP,
                description="Input px neighbouring tiles share; at most half the tile.",
            ),
        }
        return ModelCard(
            name=upscaler.name,
            engine=self.name,
            kinds=["upscale"],
            family="upscaler",
            size_bytes=upscaler.size_bytes,
            description=f"x{upscaler.scale} {upscaler.layout} upscaler (x2 and x4: "
            f"{_how(upscaler.scale, 2)}; {_how(upscaler.scale, 4)})",
            defaults={"scale": 2, "tile": TILE, "overlap": OVERLAP},
            accepts=_common_accepts(options),
        )

    def explain_missing(self, name: str) -> None:
        """A pickled upscaler, or a .safetensors file that is no ESRGAN, says so by name."""
        try:
            entry = model_files.resolve(self.model_roots, "upscaler", name)
        except Unsupported:
            raise
        except BrushlinkError:
            return
        if esrgan.probe(entry) is None:
            raise Unsupported(
                f"`{entry.path.name}` in `{entry.folder}` is not an ESRGAN-family upscaler "
                "(RGB, x2 or more) that brushlink can read.",
                field="model",
            )

    # ------------------------------------------------------------------ check

    def check(self, request: Request, model: ModelCard, sizes: Sizes) -> None:
        width, height = sizes["image"]
        scale = request.upscale.scale
        if width * height * scale * scale > self.max_pixels:
            raise InvalidField(
                f"Upscaling {width}x{height} by {scale} makes {width * scale}x{height * scale}, "
                f"more than the {self.max_pixels:,} pixels this server allows; upscale a "
                "smaller picture or by a smaller factor.",
                field="upscale.scale",
            )
        tile, overlap = _tiling(request, model)
        if 2 * overlap > tile:
            raise InvalidField(
                f"`options.overlap` ({overlap}) must be at most half the tile ({tile}).",
                field="options.overlap",
            )
        if request.upscale.refine is not None:
            self._refine_checkpoint(request.upscale.refine)

    def _refine_checkpoint(self, name: str) -> None:
        if self.diffusers is None:
            raise Unsupported(
                "This server has no Stable Diffusion engine to refine with.",
                field="upscale.refine",
            )
        try:
            ckpt = self.diffusers.folders.resolve(name)
        except BrushlinkError as exc:
            raise type(exc)(f"`upscale.refine`: {exc.message}", field="upscale.refine") from exc
        if ckpt.detected.inpaint:
            raise Unsupported(
                f"`{name}` is an inpainting checkpoint; the refine pass needs one that can "
                "redraw a picture (image-to-image).",
                field="upscale.refine",
            )

    # ------------------------------------------------------------------ run

    def run(self, job: EngineJob, ctx: JobContext) -> EngineResult:
        image, request = job.image, job.request
        assert image is not None  # the card requires it
        ctx.check_cancelled()
        started = time.perf_counter()
        scale = request.upscale.scale
        height, width = image.shape[:2]
        rgb = np.ascontiguousarray(image[..., :3])
        upscaler = self._upscaler(job.model)
        tile, overlap = _tiling(request, job.model)
        plan = passes(upscaler.scale, scale) if upscaler else [(scale, 1)]
        refine = None
        if request.upscale.refine is not None and request.upscale.strength > 0:
            refine = RefinePlan(
                self.diffusers, request.upscale.refine, request, width * scale, height * scale
            )
        counts, size = [], (width, height)
        for native, down in plan:
            counts.append(tile_count(size[0], size[1], tile, overlap))
            size = (size[0] * native // down, size[1] * native // down)
        total = sum(counts) + (refine.units if refine else 0)
        ctx.progress(0, total)

        def reporter(base: int, planned: int) -> Any:
            """Tile progress of one pass as steps of the job (a retry with smaller tiles has
            more of them: reported as the same share)."""
            return lambda done, count: ctx.progress(base + round(done / count * planned), total)

        # 1. upscale
        if upscaler is None:
            method = METHODS[str(request.options.get("method", DEFAULT_METHOD))]
            out = run_tiled(
                rgb,
                lambda piece: method(piece, scale),
                scale=scale,
                tile=tile,
                overlap=overlap,
                on_tile=reporter(0, counts[0]),
            )
        else:
            out = rgb
            for i, (native, down) in enumerate(plan):
                report = reporter(sum(counts[:i]), counts[i])
                out = self._network_pass(upscaler, out, native, down, tile, overlap, report)
        rgba = np.dstack([out, upscale_alpha(image[..., 3], width * scale, height * scale)])
        upscaled_s = time.perf_counter() - started

        # 2. refine
        if refine is not None:
            offset = sum(counts)
            rgba = refine.run(rgba, job.seed, ctx, lambda u: ctx.progress(offset + u, total))
        metadata = {
            "upscale": {
                "model": job.model.name,
                "scale": scale,
                "native_scale": upscaler.scale if upscaler else None,
                "passes": len(plan),
                "tiles": sum(counts),
                "refine": request.upscale.refine if refine else None,
                "refine_tiles": refine.tiles if refine else 0,
                "upscale_s": round(upscaled_s, 4),
            },
            "engine_s": round(time.perf_counter() - started, 4),
        }
        return EngineResult([EngineOutput(rgba, seed=job.seed)], metadata)

    def _upscaler(self, card: ModelCard) -> esrgan.Upscaler | None:
        if card.name == WEIGHT_FREE:
            return None
        for upscaler in self.upscalers():
            if upscaler.name == card.name:
                return upscaler
        raise Unsupported(f"The upscaler `{card.name}` is no longer installed.", field="model")

    def _network_pass(
        self,
        upscaler: esrgan.Upscaler,
        rgb: np.ndarray,
        native: int,
        down: int,
        tile: int,
        overlap: int,
        on_tile: Any,
    ) -> np.ndarray:
        """One run of the network over ``rgb`` in tiles; on out-of-memory, once more with
        tiles half as large."""
        from ..diffusers.memory import free_caches, is_oom

        model = self.loaded.get(upscaler, self.device)
        net = esrgan.tile_fn(model, self.device)

        def fn(piece: np.ndarray) -> np.ndarray:
            out = net(piece)
            if down == 1:
                return out
            h, w = piece.shape[:2]
            return downsize(out, w * native // down, h * native // down)

        def attempt(size: int) -> np.ndarray:
            return run_tiled(
                rgb,
                fn,
                scale=native // down,
                tile=size,
                overlap=min(overlap, size // 2),
                on_tile=on_tile,
            )

        try:
            return attempt(tile)
        except RuntimeError as exc:  # torch's out-of-memory errors are RuntimeErrors
            if not is_oom(exc):
                raise
        smaller = max(64, tile // 2)
        log.warning("out of memory with %d px tiles; retrying with %d px", tile, smaller)
        free_caches()
        try:
            return attempt(smaller)
        except RuntimeError as exc:
            if not is_oom(exc):
                raise
            free_caches()
            raise OutOfMemory(
                f"Not enough device memory to upscale, even with {smaller} px tiles; set "
                "`options.tile` smaller still.",
            ) from exc

    def unload(self) -> None:
        self.loaded.clear()


def _tiling(request: Request, card: ModelCard) -> tuple[int, int]:
    options = card.accepts.options
    if "tile" not in options:
        return PLAIN_TILE, PLAIN_OVERLAP
    tile = int(request.options.get("tile", TILE))
    return tile, int(request.options.get("overlap", OVERLAP))


def _how(native: int, scale: int) -> str:
    steps = passes(native, scale)
    runs = "once" if len(steps) == 1 else f"{len(steps)} times"
    down = steps[-1][1]
    return f"x{scale} runs it {runs}" + (f", then box-filters down by {down}" if down > 1 else "")
