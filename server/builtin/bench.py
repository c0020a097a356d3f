"""Measure the built-in models on colour/pattern combinations they never saw in training.

``run_builtin_bench()`` returns a dict of figures; ``main()`` prints them (``brushlink bench
builtin`` calls it). All figures use the held-out (colour, pattern) combinations of ``data``:

* clip_top1: the CLIP picks the right caption for a rendered held-out texture, among the
  canonical captions of all held-out combinations
* colour_match: share of generations whose dominant colour, measured on the pixels (nearest
  named colour in Lab), is the colour asked for
* pattern_recognised: share of generations whose pattern the CLIP names correctly, choosing
  among all patterns in the asked colour (zero-shot); ``*_ranked`` are the same on the
  candidate the engine returns first out of 4
* diversity: mean absolute pixel difference between two seeds of one prompt (0..1), next to
  the same figure for two renders of the true procedure
* speed: seconds for ``generate`` of 4 candidates + ranking at 512 x 512, warm model (median)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from itertools import combinations
from typing import Any

import numpy as np
import torch

from brushlink.plugin.protocol import JobSpec

from . import data
from .clip_model import load_builtin_clip

PROMPT = "a {colour} {pattern} texture"


def _pattern_guess(clip: Any, colour: str, images: list[np.ndarray]) -> list[str]:
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

    spec = JobSpec(kind="generate", prompt="red bricks", candidates=4, width=512, height=512)
    model = engine.models()[0]
    times = []
    for i in range(runs + 1):  # the first run warms the model up
        started = time.perf_counter()
        engine.run(EngineJob(job_id=f"bench{i}", spec=spec, model=model, seed=i), JobContext())
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def run_builtin_bench(per_combo: int = 4, speed_runs: int = 3, device: str = "cpu") -> dict:
    """All the figures above as a dict (fractions in 0..1, seconds)."""
    from brushlink.server.engines.base import EngineJob, JobContext
    from brushlink.server.engines.builtin import BuiltinEngine

    engine = BuiltinEngine(device)
    if not engine.models():
        raise RuntimeError("The builtin weights are not installed; run the training first.")
    clip = load_builtin_clip(device)
    model = engine.models()[0]
    combos = sorted(data.held_out())

    colour_hits = pattern_hits = ranked_colour = ranked_pattern = total = 0
    diversity, true_diversity = [], []
    for k, (colour, pattern) in enumerate(combos):
        spec = JobSpec(
            kind="generate",
            prompt=PROMPT.format(colour=colour, pattern=pattern),
            candidates=per_combo,
            width=32,
            height=32,
        )
        result = engine.run(EngineJob(f"b{k}", spec, model, seed=1000 * k), JobContext())
        images = [out.image[..., :3] for out in result.images]  # best first
        guesses = _pattern_guess(clip, colour, images)
        colours = [data.dominant_colour(im) for im in images]
        colour_hits += sum(c == colour for c in colours)
        pattern_hits += sum(g == pattern for g in guesses)
        ranked_colour += int(colours[0] == colour)
        ranked_pattern += int(guesses[0] == pattern)
        total += len(images)
        diversity.append(_mean_pairwise(images))
        truth = [data.render((colour,), pattern, 700_000 + 31 * k + i) for i in range(per_combo)]
        true_diversity.append(_mean_pairwise(truth))

    truth_pattern = 0
    for k, (colour, pattern) in enumerate(combos):
        truth = [data.render((colour,), pattern, 800_000 + 31 * k + i) for i in range(per_combo)]
        truth_pattern += sum(g == pattern for g in _pattern_guess(clip, colour, truth))

    return {
        "held_out_combinations": len(combos),
        "generations": total,
        "clip_top1": round(clip_retrieval(clip), 4),
        "clip_pattern_on_true_textures": round(truth_pattern / (len(combos) * per_combo), 4),
        "colour_match": round(colour_hits / total, 4),
        "pattern_recognised": round(pattern_hits / total, 4),
        "colour_match_ranked": round(ranked_colour / len(combos), 4),
        "pattern_recognised_ranked": round(ranked_pattern / len(combos), 4),
        "diversity": round(float(np.mean(diversity)), 4),
        "diversity_true_textures": round(float(np.mean(true_diversity)), 4),
        "speed_4x512_s": round(_speed(engine, speed_runs), 3),
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark the built-in model on held-out combinations."
    )
    parser.add_argument("--per-combo", type=int, default=4, help="generations per combination")
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
    figures = run_builtin_bench(args.per_combo, args.speed_runs)
    figures["load_average"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:32s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
