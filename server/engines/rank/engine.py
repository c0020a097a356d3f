"""The ``rank`` engine: CLIP scores for a prompt and a list of images, best first.

Models: every CLIP in ``models/clip/`` (see ``open_clip_ranker.py``) and ``builtin-clip``, the CLIP
that ships with brushlink, when its package and weights are installed. Loaded rankers stay
loaded; they are small beside a diffusion model. ``ranker()`` hands the preferred one to other
engines, which rank their candidates with it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from brushlink.plugin.capabilities import Accepts, ModelCard
from brushlink.plugin.errors import EngineError, UnknownModel

from ..base import Engine, EngineJob, EngineResult, JobContext
from ..kit.candidates import Scorer
from .open_clip_ranker import ClipFiles, ClipRanker, find_clips

log = logging.getLogger(__name__)

BUILTIN_NAME = "builtin-clip"
RANK_ACCEPTS = Accepts(slots=["input"], needs_prompt=True)


def _builtin_installed() -> bool:
    """Whether the builtin CLIP's weights are installed (checked without importing torch)."""
    from ..builtin.manifest import CLIP_WEIGHTS

    return CLIP_WEIGHTS.is_file()


def _builtin_loader() -> Callable[[str], Any] | None:
    """``load_builtin_clip`` when the builtin package and its weights are installed."""
    if not _builtin_installed():
        return None
    try:
        from ..builtin.clip_model import load_builtin_clip
    except Exception as exc:  # a half-installed package: no builtin CLIP
        log.debug("no builtin CLIP: %s", exc)
        return None
    return load_builtin_clip


def rank_scores(scores: list[float]) -> list[dict[str, Any]]:
    """[{"index", "score"}] best first; ties keep the input order (a stable sort)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return [{"index": i, "score": scores[i]} for i in order]


class RankEngine(Engine):
    name = "rank"

    def __init__(self, clip_dirs: list[Path], device: str = "cpu") -> None:
        self.clip_dirs = [Path(d) for d in clip_dirs]
        self.device = device
        self._rankers: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Any, device: str, built: list[Engine] | None = None) -> RankEngine:
        """From a ``ServerConfig``: ``<root>/clip`` of every model root."""
        return cls([Path(root) / "clip" for root in config.all_model_dirs], device)

    def _clips(self) -> dict[str, ClipFiles]:
        return {c.name: c for c in find_clips(self.clip_dirs)}

    def models(self) -> list[ModelCard]:
        found = []
        if _builtin_installed():
            found.append(
                ModelCard(
                    name=BUILTIN_NAME,
                    engine=self.name,
                    kinds=["rank"],
                    family="clip",
                    description="The CLIP that ships with brushlink (trained on its textures).",
                    accepts=RANK_ACCEPTS,
                )
            )
        for clip in self._clips().values():
            if clip.name == BUILTIN_NAME:
                continue
            found.append(
                ModelCard(
                    name=clip.name,
                    engine=self.name,
                    kinds=["rank"],
                    family="clip",
                    size_bytes=clip.size_bytes,
                    description=f"open_clip weights from {clip.weights.parent}",
                    accepts=RANK_ACCEPTS,
                )
            )
        return found

    def scorer(self, name: str) -> Scorer:
        """The loaded ranker called ``name`` (loaded on first use, then kept)."""
        with self._lock:
            if name not in self._rankers:
                if name == BUILTIN_NAME:
                    loader = _builtin_loader()
                    if loader is None:
                        raise UnknownModel("The builtin CLIP is not installed.", field="model")
                    try:
                        self._rankers[name] = loader(self.device)
                    except (OSError, RuntimeError, ValueError, KeyError) as exc:
                        raise EngineError(f"The builtin CLIP could not be loaded: {exc}") from exc
                else:
                    clip = self._clips().get(name)
                    if clip is None:
                        raise UnknownModel(f"There is no CLIP called `{name}`.", field="model")
                    self._rankers[name] = ClipRanker(clip, self.device)
            return self._rankers[name].score

    def ranker(self) -> Scorer | None:
        """The preferred CLIP for ranking generated candidates: the user's first, else builtin."""
        names = [m.name for m in self.models()]
        users = [n for n in names if n != BUILTIN_NAME]
        preferred = users[:1] or [n for n in names if n == BUILTIN_NAME]
        return self.scorer(preferred[0]) if preferred else None

    def run(self, job: EngineJob, ctx: JobContext) -> EngineResult:
        ctx.progress(0, 2)
        # 1. load (or reuse) the CLIP
        score = self.scorer(job.model.name)
        ctx.progress(1, 2)
        # 2. score and order
        scores = score(job.request.prompt, job.inputs)
        ctx.progress(2, 2)
        return EngineResult(
            metadata={"ranking": rank_scores(scores), "model": job.model.name},
        )

    def unload(self) -> None:
        with self._lock:
            self._rankers.clear()
