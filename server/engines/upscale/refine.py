"""The refine pass: a checkpoint redraws the upscaled picture tile by tile (img2img).

Upscaling invents no detail a model could paint; a light img2img over the upscaled picture,
guided by the request's prompt, does. The picture is cut into overlapping tiles at the
checkpoint's native size (512 px for SD 1.x, 1024 px for SDXL; overlap 1/8 of that), each
tile is redrawn with ``DiffusersEngine.redraw`` and the tiles are blended with the same
partition-of-unity windows as the upscale (``tiles.py``), so they meet without seams.

``upscale.strength`` is the img2img strength of every tile: 0 skips the pass (the result is
exactly the upscale, and the checkpoint is not loaded), 1 draws each tile anew from noise and
the prompt (only the tile layout remains of the picture). Tile *i* draws its noise with seed
``seed + i``. The alpha channel is the upscale's, untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from brushlink.plugin.request import Request

from ..base import JobContext
from .tiles import positions, run_tiled

OVERLAP_SHARE = 8  # overlap = native size / 8: 64 px for SD 1.x


def refine_steps(steps: int, strength: float) -> int:
    """The sampling steps to ask img2img for, so that at least one step runs: it runs
    ``int(steps * strength)``, which is 0 for a small strength."""
    while int(steps * strength) < 1:
        steps += 1
    return steps


class RefinePlan:
    """What the pass will do to a ``width`` x ``height`` picture, known before it runs (the
    engine reports progress over both passes from the start)."""

    def __init__(
        self, diffusers: Any, checkpoint: str, request: Request, width: int, height: int
    ) -> None:
        self.diffusers = diffusers
        self.checkpoint = checkpoint
        native = int(diffusers.folders.resolve(checkpoint).detected.native_size)
        self.tile = native
        self.overlap = native // OVERLAP_SHARE
        card = next(c for c in diffusers.models() if c.name == checkpoint)
        strength = request.upscale.strength
        steps = refine_steps(request.steps or int(card.defaults["steps"]), strength)
        self.request = replace(request, strength=strength, steps=steps)
        self.steps_per_tile = max(1, int(steps * strength))
        self.tiles = len(positions(width, self.tile, self.overlap)) * len(
            positions(height, self.tile, self.overlap)
        )

    @property
    def units(self) -> int:
        """Progress steps of the whole pass: one per sampling step of every tile."""
        return self.tiles * self.steps_per_tile

    def run(
        self,
        rgba: np.ndarray,
        seed: int,
        ctx: JobContext,
        report: Callable[[int], None],
    ) -> np.ndarray:
        """The refined picture (same size, alpha kept). ``report(units_done)`` is called as
        sampling steps finish and raises when the job is cancelled."""
        done = [0]  # tiles finished

        def step(step: int, total: int) -> None:
            report(
                done[0] * self.steps_per_tile + round(step / max(total, 1) * self.steps_per_tile)
            )

        def redraw(tile: np.ndarray) -> np.ndarray:
            tile_ctx = JobContext(
                device=ctx.device, on_progress=step, is_cancelled=lambda: ctx.cancelled
            )
            # A tile ControlNet fed this tile would hold the content at higher strengths: it
            # goes in this call when the diffusers engine takes one for redraw.
            out: np.ndarray = self.diffusers.redraw(
                tile, self.checkpoint, self.request, seed + done[0], tile_ctx
            )
            return out

        def tile_done(count: int, total: int) -> None:
            done[0] = count
            report(count * self.steps_per_tile)

        refined = run_tiled(
            rgba, redraw, scale=1, tile=self.tile, overlap=self.overlap, on_tile=tile_done
        )
        refined[..., 3] = rgba[..., 3]
        return refined
