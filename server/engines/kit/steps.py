"""Progress every step, a cheap preview every few: the per-step callback of a sampling loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..base import JobContext


class StepReporter:
    """``reporter(step, latents)`` reports progress (raising ``JobCancelled`` when the job was
    cancelled) and, every ``every`` steps before the last, a preview made by ``render``."""

    def __init__(
        self, ctx: JobContext, total: int, every: int, render: Callable[[Any], np.ndarray]
    ) -> None:
        self.ctx = ctx
        self.total = total
        self.every = max(1, every)
        self.render = render

    def start(self) -> None:
        self.ctx.progress(0, self.total)

    def __call__(self, step: int, latents: Any, total: int | None = None) -> None:
        total = total or self.total
        self.ctx.progress(step, total)
        if step % self.every == 0 and step < total and self.ctx.wants_previews:
            self.ctx.preview(self.render(latents), step, total)
