"""What every training step of the built-in models draws on: batches, tokens, the schedule."""

from __future__ import annotations

import functools
import math
import random
import time

import numpy as np
import torch

from brushlink.server.engines.builtin.clip_model import tokenize

from . import data


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def draw_batch(
    images: np.ndarray,
    specs: list[data.Sample],
    size: int,
    rng: random.Random,
    groups: dict[str, list[int]] | None = None,
) -> tuple[torch.Tensor, list[str], list[tuple]]:
    """A random batch, each image rolled by a random offset (a free, seamless augmentation).

    With ``groups`` (first colour -> indices) the batch is made of groups of 16 that share a
    colour: telling their patterns apart is then the only way to match captions, which makes
    a contrastive model learn patterns instead of stopping at colours.
    """
    if groups is None:
        idx = [rng.randrange(len(specs)) for _ in range(size)]
    else:
        idx = []
        while len(idx) < size:
            members = groups[rng.choice(data.COLOUR_NAMES)]
            idx.extend(rng.choice(members) for _ in range(min(16, size - len(idx))))
    shifts = np.array([(rng.randrange(data.SIZE), rng.randrange(data.SIZE)) for _ in idx])
    captions = [data.caption(specs[i].colours, specs[i].pattern, rng) for i in idx]
    keys = [(specs[i].colours, specs[i].pattern) for i in idx]
    # np.roll of each image by its shift, as one gather: a GPU step is shorter than the loop
    span = np.arange(data.SIZE)
    rows = (span[None, :] - shifts[:, :1]) % data.SIZE
    cols = (span[None, :] - shifts[:, 1:]) % data.SIZE
    pixels = images[np.array(idx)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return to_tensor(pixels), captions, keys


@functools.cache
def _token_row(caption: str) -> torch.Tensor:
    return tokenize([caption])[0]


def tokens(captions: list[str]) -> torch.Tensor:
    """``tokenize`` for training: captions repeat, so each wording is tokenised only once."""
    return torch.stack([_token_row(c) for c in captions])


def lr_at(step: int, total: int, peak: float, warmup: int = 50) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
