"""Measure the built-in models on colour/pattern combinations they never saw in training.

``run_builtin_bench()`` returns a dict of figures; ``main()`` prints them (``brushlink bench
builtin`` calls it). All figures use the held-out (colour, pattern) combinations of ``data``:

* clip_pattern_on_true_textures: the zero-shot pattern question below, asked of true renders:
  how far the judge itself can be trusted
* clip_top1: the CLIP picks the right caption for a rendered held-out texture, among the
  canonical captions of all held-out combinations
* colour_match: share of generations whose dominant colour, measured on the pixels (nearest
  named colour in Lab), is the colour asked for
* pattern_recognised: share of generations whose pattern the CLIP names correctly, choosing
  among all patterns in the asked colour (zero-shot); ``*_ranked`` are the same on the
  candidate the engine returns first out of 4; ``*_se`` is the binomial standard error, so a
  difference between two runs can be read against the noise
* diversity: mean absolute pixel difference between two seeds of one prompt (0..1), next to
  the same figure for two renders of the true procedure
* by_pattern: per pattern, the share of generations and of true renders the CLIP names;
  misread_most: the commonest wrong names
* pattern_recognised_plain: the same draws sampled side by side with plain classifier-free
  guidance at the previous default (guidance 3, no pattern guidance), what the defaults buy
* speed: seconds for ``generate`` of 4 candidates + ranking at 512 x 512, warm model (median)

Each combination runs ``jobs`` generate jobs of ``per_job`` candidates (seeds 1000 k + 4 j ...),
as an artist's request would: 3 x 4 by default, 312 draws. One job per combination (104 draws)
was the first protocol; its figure moves by about 5 points with the seeds alone.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import replace
from itertools import combinations
from typing import Any

import numpy as np
import torch

from brushlink.plugin.request import Request
from brushlink.server.engines.builtin.clip_model import load_builtin_clip
from brushlink.server.training import data

PROMPT = "a {colour} {pattern} texture"
# the sampler defaults before pattern guidance, sampled side by side on the same draws
PLAIN: dict[str, Any] = {"guidance": 3.0, "options": {"pattern_guidance": 0.0}}


def pattern_guess(clip: Any, colour: str, images: list[np.ndarray]) -> list[str]:
    captions = [f"{colour} {p}" for p in data.PATTERN_NAMES]
    sims = clip.embed_images(images) @ clip.embed_text(captions).T
    return [data.PATTERN_NAMES[int(i)] for i in sims.argmax(1)]


def _mean_pairwise(images: list[np.ndarray]) -> float:
    pairs = list(combinations(images, 2))
    if not pairs:
        return 0.0
    return float(np.mean([np.abs(a.astype(np.float32) - b).mean() / 255.0 for a, b in pairs]))


def clip_retrieval(clip: Any, per_combo: int = 8) -> float:
    """Top-1 accuracy of the right caption among the held-out captions, on rendered textures."""
    combos = sorted(data.held_out())
    captions = [data.caption((c,), p) for c, p in combos]
    text = clip.embed_text(captions)
    hits = 0
    for k, (colour, pattern) in enumerate(combos):
        images = [data.render((colour,), pattern, 900_000 + 97 * k + i) for i in range(per_combo)]
        hits += int((clip.embed_images(images) @ text.T).argmax(1).eq(k).sum())
    return hits / (len(combos) * per_combo)


def _speed(engine: Any, runs: int) -> float:
    from brushlink.server.engines.base import EngineJob, JobContext

    spec = Request(kind="generate", prompt="red bricks", candidates=4, width=512, height=512)
    model = engine.models()[0]
    times = []
    for i in range(runs + 1):  # the first run warms the model up
        started = time.perf_counter()
        engine.run(EngineJob(job_id=f"bench{i}", request=spec, model=model, seed=i), JobContext())
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def _se(share: float, n: int) -> float:
    return math.sqrt(share * (1 - share) / n) if n else 0.0


def run_builtin_bench(
    per_job: int = 4, jobs: int = 3, speed_runs: int = 3, device: str = "cpu"
) -> dict:
    """All the figures above as a dict (fractions in 0..1, seconds)."""
    from brushlink.server.engines.base import EngineJob, JobContext
    from brushlink.server.engines.builtin.engine import BuiltinEngine

    engine = BuiltinEngine(device)
    if not engine.models():
        raise RuntimeError("The builtin weights are not installed; run the training first.")
    clip = load_builtin_clip(device)
    model = engine.models()[0]
    combos = sorted(data.held_out())

    colour_hits = pattern_hits = ranked_colour = ranked_pattern = total = plain_hits = 0
    diversity, true_diversity = [], []
    drawn: Counter[str] = Counter()
    named: Counter[str] = Counter()
    misread: Counter[tuple[str, str]] = Counter()
    for k, (colour, pattern) in enumerate(combos):
        spec = Request(
            kind="generate",
            prompt=PROMPT.format(colour=colour, pattern=pattern),
            candidates=per_job,
            width=32,
            height=32,
        )
        for j in range(jobs):
            job = EngineJob(f"b{k}.{j}", spec, model, seed=1000 * k + per_job * j)
            images = [out.image[..., :3] for out in engine.run(job, JobContext()).images]
            guesses = pattern_guess(clip, colour, images)  # best first
            colours = [data.dominant_colour(im) for im in images]
            colour_hits += sum(c == colour for c in colours)
            pattern_hits += sum(g == pattern for g in guesses)
            drawn[pattern] += len(guesses)
            named[pattern] += sum(g == pattern for g in guesses)
            misread.update((pattern, g) for g in guesses if g != pattern)
            ranked_colour += int(colours[0] == colour)
            ranked_pattern += int(guesses[0] == pattern)
            total += len(images)
            diversity.append(_mean_pairwise(images))
            plain = EngineJob(job.job_id, replace(spec, **PLAIN), model, job.seed)
            images = [out.image[..., :3] for out in engine.run(plain, JobContext()).images]
            plain_hits += sum(g == pattern for g in pattern_guess(clip, colour, images))
        truth = [data.render((colour,), pattern, 700_000 + 31 * k + i) for i in range(per_job)]
        true_diversity.append(_mean_pairwise(truth))

    truth_named: Counter = Counter()
    for k, (colour, pattern) in enumerate(combos):
        seeds = range(800_000 + 31 * k, 800_000 + 31 * k + per_job * jobs)
        truth = [data.render((colour,), pattern, seed) for seed in seeds]
        truth_named[pattern] += sum(g == pattern for g in pattern_guess(clip, colour, truth))

    ranked = len(combos) * jobs
    pattern_share, ranked_share = pattern_hits / total, ranked_pattern / ranked
    return {
        "held_out_combinations": len(combos),
        "generations": total,
        "clip_top1": round(clip_retrieval(clip), 4),
        "clip_pattern_on_true_textures": round(truth_named.total() / total, 4),
        "colour_match": round(colour_hits / total, 4),
        "pattern_recognised": round(pattern_share, 4),
        "pattern_recognised_se": round(_se(pattern_share, total), 4),
        "pattern_recognised_plain": round(plain_hits / total, 4),
        "colour_match_ranked": round(ranked_colour / ranked, 4),
        "pattern_recognised_ranked": round(ranked_share, 4),
        "pattern_recognised_ranked_se": round(_se(ranked_share, ranked), 4),
        "diversity": round(float(np.mean(diversity)), 4),
        "diversity_true_textures": round(float(np.mean(true_diversity)), 4),
        # per pattern: [share of generations recognised, share of true textures recognised]
        "by_pattern": {
            p: [round(named[p] / drawn[p], 2), round(truth_named[p] / drawn[p], 2)]
            for p in sorted(drawn, key=lambda p: -named[p] / drawn[p])
        },
        "misread_most": [f"{a} as {b}: {n}" for (a, b), n in misread.most_common(4)],
        "speed_4x512_s": round(_speed(engine, speed_runs), 3),
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark the built-in model on held-out combinations."
    )
    parser.add_argument("--per-job", type=int, default=4, help="candidates per generate job")
    parser.add_argument("--jobs", type=int, default=3, help="generate jobs per combination")
    parser.add_argument("--speed-runs", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    # `brushlink bench builtin` calls main() with no arguments: use the defaults then
    args = parser.parse_args([] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    figures = run_builtin_bench(args.per_job, args.jobs, args.speed_runs)
    figures["load_average"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:32s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
