"""Choose the built-in sampler's settings on combinations *seen* in training, side by side.

``python -m brushlink.server.training.sampler_sweep 2,1 3,0`` samples the same draws once per
setting (``guidance,pattern_guidance``) and prints, for each, the share of draws whose pattern
the CLIP names and whose dominant colour is the one asked for. The benchmark (``bench.py``)
reads the held-out combinations; settings are chosen here so that it is never tuned on.

The draws: 52 seen combinations (``seen_combinations``), 2 generate jobs of 4 each, seeds
500,000 + 1000 k + 4 j, prompt ``bench.PROMPT``: 416 draws, standard error about 2.2 points.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass

import torch

from brushlink.plugin.request import Request
from brushlink.server.benchmarks.builtin_quality import PROMPT, pattern_guess
from brushlink.server.engines.builtin.clip_model import load_builtin_clip

from . import data

SEED_BASE = 500_000  # away from the benchmark's seeds


@dataclass
class SweepResult:
    guidance: float
    pattern_guidance: float
    draws: int
    pattern_recognised: float
    colour_match: float


def seen_combinations(count: int = 52, seed: int = 7) -> list[tuple[str, str]]:
    """``count`` (colour, pattern) combinations that training saw, drawn with ``seed``."""
    held = data.held_out()
    seen = [(c, p) for p in data.PATTERN_NAMES for c in data.COLOUR_NAMES if (c, p) not in held]
    return sorted(random.Random(seed).sample(seen, count))


def sweep(
    settings: list[tuple[float, float]], count: int = 52, jobs: int = 2, per_job: int = 4
) -> list[SweepResult]:
    """Each (guidance, pattern guidance) on the same seen draws."""
    from brushlink.server.engines.base import EngineJob, JobContext
    from brushlink.server.engines.builtin.engine import BuiltinEngine

    engine = BuiltinEngine("cpu")
    model = engine.models()[0]
    clip = load_builtin_clip("cpu")
    combos = seen_combinations(count)
    results = []
    for guidance, push in settings:
        patterns = colours = draws = 0
        for k, (colour, pattern) in enumerate(combos):
            spec = Request(
                kind="generate",
                prompt=PROMPT.format(colour=colour, pattern=pattern),
                candidates=per_job,
                width=data.SIZE,
                height=data.SIZE,
                guidance=guidance,
                options={"pattern_guidance": push},
            )
            for j in range(jobs):
                job = EngineJob(f"s{k}.{j}", spec, model, SEED_BASE + 1000 * k + per_job * j)
                images = [out.image[..., :3] for out in engine.run(job, JobContext()).images]
                patterns += sum(g == pattern for g in pattern_guess(clip, colour, images))
                colours += sum(data.dominant_colour(im) == colour for im in images)
                draws += len(images)
        results.append(SweepResult(guidance, push, draws, patterns / draws, colours / draws))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("settings", nargs="+", help="guidance,pattern_guidance (e.g. 2,1)")
    parser.add_argument("--combinations", type=int, default=52)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = [tuple(float(v) for v in s.split(",")) for s in args.settings]
    if any(len(s) != 2 for s in settings):
        parser.error("each setting is guidance,pattern_guidance, e.g. 2,1")
    for r in sweep(settings, args.combinations):  # type: ignore[arg-type]
        print(
            f"guidance {r.guidance:g}, pattern guidance {r.pattern_guidance:g}: "
            f"pattern recognised {r.pattern_recognised:.1%}, colour {r.colour_match:.1%} "
            f"({r.draws} draws)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
