"""The engine interface: what an engine declares, what it receives, what it returns.

An engine is one module under ``engines/``. The server validates a request, decodes its images
and resolves the model before an engine sees it, so ``run`` gets clean numpy arrays:

    image      H x W x 4 uint8 RGBA (or None)
    mask       H x W uint8, 255 = regenerate, soft edges allowed (or None)
    reference  H x W x 4 uint8 RGBA (or None)
    inputs     list of H x W x 4 uint8 RGBA (rank)

``run`` executes on the device's worker thread. It must call ``ctx.progress`` as it goes and
``ctx.check_cancelled()`` at least once per step; that raises ``JobCancelled``, which the server
turns into a ``cancelled`` event.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from brushlink.plugin.protocol import JobSpec


class JobCancelled(Exception):
    """Raised inside an engine when the job's cancel flag is set."""


@dataclass(frozen=True)
class ModelInfo:
    """One model an engine serves, as listed in ``welcome.models`` and ``brushlink models``."""

    name: str
    engine: str
    kinds: tuple[str, ...]
    family: str = ""
    size_bytes: int | None = None
    description: str = ""
    styles: tuple[str, ...] = ()  # named styles, for engines that have them
    defaults: dict[str, Any] = field(default_factory=dict)  # e.g. {"width": 512, "steps": 20}

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "name": self.name,
            "engine": self.engine,
            "kinds": list(self.kinds),
            "family": self.family,
            "description": self.description,
        }
        if self.size_bytes is not None:
            wire["size_bytes"] = self.size_bytes
        if self.styles:
            wire["styles"] = list(self.styles)
        if self.defaults:
            wire["defaults"] = dict(self.defaults)
        return wire


@dataclass
class EngineJob:
    job_id: str
    spec: JobSpec
    model: ModelInfo
    seed: int
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    reference: np.ndarray | None = None
    inputs: list[np.ndarray] = field(default_factory=list)


@dataclass
class EngineOutput:
    image: np.ndarray  # H x W x 4 uint8 RGBA
    seed: int | None = None
    score: float | None = None


@dataclass
class EngineResult:
    images: list[EngineOutput] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # e.g. {"ranking": [...]} for rank


class JobContext:
    """Handed to ``Engine.run``: progress, previews and the cancel flag of one job."""

    def __init__(
        self,
        *,
        device: str = "cpu",
        on_progress: Callable[[int, int], None] | None = None,
        on_preview: Callable[[np.ndarray, int, int], None] | None = None,
        is_cancelled: Callable[[], bool] | None = None,
    ) -> None:
        self.device = device
        self._on_progress = on_progress
        self._on_preview = on_preview
        self._is_cancelled = is_cancelled

    @property
    def cancelled(self) -> bool:
        return bool(self._is_cancelled and self._is_cancelled())

    def check_cancelled(self) -> None:
        if self.cancelled:
            raise JobCancelled()

    def progress(self, step: int, total: int) -> None:
        """Report progress and honour cancel: call it once per step."""
        self.check_cancelled()
        if self._on_progress:
            self._on_progress(step, total)

    def preview(self, image: np.ndarray, step: int, total: int) -> None:
        if self._on_preview:
            self._on_preview(image, step, total)


class Engine(ABC):
    """An engine serves some kinds for some models. Subclasses live one per module."""

    name: ClassVar[str]

    @abstractmethod
    def models(self) -> list[ModelInfo]:
        """The models this engine can run now (cheap: no weights are loaded)."""

    def check(self, spec: JobSpec, model: ModelInfo, images: dict[str, Any]) -> None:  # noqa: B027
        """Refuse a request before it is queued: raise a ``RequestError`` subclass.

        ``images`` maps slot -> (width, height) or a list of them for ``input``.
        The server has already checked kinds, limits and types.
        """

    @abstractmethod
    def run(self, job: EngineJob, ctx: JobContext) -> EngineResult:
        """Do the work on the worker thread. Raise ``BrushlinkError`` subclasses for clear failures."""

    def unload(self) -> None:  # noqa: B027 - optional hook
        """Free any loaded weights (called on shutdown or under memory pressure)."""
