"""The engine interface: what an engine declares, what it receives, what it returns.

An engine is one package under ``engines/``. It describes each model it serves with a
``ModelCard`` (kinds, and in ``accepts`` the ranges, schedulers, tiling, styles, image slots and
options a request may use). The server checks every request against that card before queueing
(``server/validate.py``), decodes its images and resolves the model, so ``run`` gets a request
that is known to fit and clean numpy arrays:

    image      H x W x 4 uint8 RGBA (or None)
    mask       H x W uint8, 255 = regenerate, soft edges allowed (or None)
    reference  H x W x 4 uint8 RGBA (or None)
    inputs     list of H x W x 4 uint8 RGBA (rank)
    controls   control frame index -> H x W x 4 uint8 RGBA (``Control.image`` names one)

``check`` is only for what the engine alone can know (weights that must be installed for this
request). ``run`` executes on the device's worker thread; it calls ``ctx.progress`` once per
step, which raises ``JobCancelled`` when the job's cancel flag is set.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from brushlink.plugin.capabilities import AddonCard, ModelCard
from brushlink.plugin.request import Request

# slot -> (width, height), or a list of them for "input": what `check` may look at
Sizes = dict[str, Any]


class JobCancelled(Exception):
    """Raised inside an engine when the job's cancel flag is set."""


@dataclass
class EngineJob:
    """A checked request with its decoded images, the seed it runs with and its model's card."""

    job_id: str
    request: Request
    model: ModelCard
    seed: int
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    reference: np.ndarray | None = None
    inputs: list[np.ndarray] = field(default_factory=list)
    controls: dict[int, np.ndarray] = field(default_factory=dict)


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

    @property
    def wants_previews(self) -> bool:
        return self._on_preview is not None

    def preview(self, image: np.ndarray, step: int, total: int) -> None:
        if self._on_preview:
            self._on_preview(image, step, total)


class Engine(ABC):
    """An engine serves some kinds for some models. Subclasses live one per package."""

    name: ClassVar[str]

    @abstractmethod
    def models(self) -> list[ModelCard]:
        """The models this engine can run now (cheap: no weights are loaded)."""

    def addons(self) -> list[AddonCard]:
        """The LoRAs, ControlNets, VAEs and embeddings this engine's models can take."""
        return []

    def check(self, request: Request, model: ModelCard, sizes: Sizes) -> None:  # noqa: B027
        """Refuse, with a ``RequestError``, what only this engine can know is impossible
        (e.g. weights a request needs that are not installed). Everything the model's card
        declares has been checked already."""

    def explain_missing(self, name: str) -> None:  # noqa: B027 - optional hook
        """No listed model is called ``name``: raise a clearer error than `unknown_model` when
        this engine knows why (a pickled file of that name in its folders, say)."""

    @abstractmethod
    def run(self, job: EngineJob, ctx: JobContext) -> EngineResult:
        """Do the work on the worker thread. Raise ``BrushlinkError`` subclasses for clear failures."""

    def warm_models(self) -> list[str] | None:
        """The models this engine holds loaded now (a worker holding a job's model draws it);
        None when it cannot tell, or keeps nothing worth placing jobs by (weight-free engines):
        its worker then counts the models it ran."""
        return None

    def unload(self) -> None:  # noqa: B027 - optional hook
        """Free any loaded weights (called on shutdown or under memory pressure)."""
