"""Candidates: one seed each, drawn together, ranked by CLIP, the best ``keep`` returned.

Seeds are consecutive (seed, seed + 1, ...) so any candidate can be drawn again alone with its
own seed. Ranking never loses pictures: when the CLIP fails, the candidates come back unranked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from brushlink.plugin.request import Request

from ..base import EngineOutput, EngineResult

log = logging.getLogger(__name__)

Scorer = Callable[[str, list[np.ndarray]], list[float]]
SEED_SPACE = 2**63  # torch generators take 64-bit seeds; requests are 32-bit, candidates add


def candidate_seeds(seed: int, count: int) -> list[int]:
    return [(seed + i) % SEED_SPACE for i in range(count)]


def rank(
    request: Request,
    images: list[np.ndarray],
    seeds: list[int],
    scorer: Scorer | None,
    judged: Sequence[np.ndarray] | None = None,
) -> EngineResult:
    """The best ``request.keep`` of ``images``, best first, scored by ``scorer`` against the
    prompt. ``judged`` are the pictures the scorer sees when it should not see ``images``
    themselves (the built-in CLIP judges the model's own small outputs)."""
    keep = request.keep or len(images)
    if scorer is None or len(images) < 2:
        outputs = [EngineOutput(im, seed=s) for im, s in zip(images, seeds, strict=True)]
        return EngineResult(outputs[:keep], {"ranked": False})
    try:
        scores = [float(s) for s in scorer(request.prompt, list(judged or images))]
    except Exception as exc:  # the pictures are made: a CLIP failure must not lose them
        log.warning("ranking failed, returning candidates unranked: %s", exc)
        outputs = [EngineOutput(im, seed=s) for im, s in zip(images, seeds, strict=True)]
        return EngineResult(outputs[:keep], {"ranked": False, "rank_error": str(exc)[:200]})
    order = sorted(range(len(images)), key=lambda i: -scores[i])[:keep]
    outputs = [EngineOutput(images[i], seed=seeds[i], score=scores[i]) for i in order]
    ranking = [{"index": i, "seed": seeds[i], "score": scores[i]} for i in order]
    return EngineResult(outputs, {"ranked": True, "ranking": ranking})
