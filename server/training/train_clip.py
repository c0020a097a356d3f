"""Steps 2 and 2b of the built-in training: the CLIP, contrastively, then its image tower alone."""

from __future__ import annotations

import math
import random
import time

import numpy as np
import torch
import torch.nn.functional as F

from brushlink.server.engines.builtin import clip_model
from brushlink.server.engines.builtin.clip_model import tokenize

from . import data
from .train_batches import draw_batch, log, lr_at, tokens

SHARPEN_LR = 3e-4  # step 2b fine-tunes a trained image tower


def _colour_groups(specs: list[data.Sample]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {c: [] for c in data.COLOUR_NAMES}
    for i, spec in enumerate(specs):
        groups[spec.colours[0]].append(i)
    return groups


def train_clip(
    images: np.ndarray,
    specs: list[data.Sample],
    steps: int,
    batch: int,
    seed: int,
    device: str = "cpu",
):
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = clip_model.build_clip().train().to(device)
    # training-only heads that name the pattern from each tower's embedding: a direct signal
    # that gets pattern features going where the contrastive loss alone plateaus on colour
    embed = clip_model.CLIP_CONFIG["embed_dim"]
    heads = torch.nn.ModuleList([torch.nn.Linear(embed, len(data.PATTERN_NAMES)) for _ in range(2)])
    heads.to(device)
    params = list(model.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)
    groups = _colour_groups(specs)
    start = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, 1e-3)
        pixels, captions, keys = draw_batch(images, specs, batch, rng, groups)
        img, txt, scale = model(pixels.to(device), tokens(captions).to(device))
        logits = scale * img @ txt.T
        # samples of the same combination are all positives (soft targets), not negatives
        same = torch.tensor([[a == b for b in keys] for a in keys], dtype=torch.float32)
        targets = (same / same.sum(1, keepdim=True)).to(device)
        labels = torch.tensor([data.PATTERN_NAMES.index(k[1]) for k in keys]).to(device)
        loss = 0.5 * (
            F.cross_entropy(logits, targets)
            + F.cross_entropy(logits.T, targets.T / targets.T.sum(1, keepdim=True))
        )
        loss = loss + 0.5 * (
            F.cross_entropy(10 * heads[0](img), labels)
            + F.cross_entropy(10 * heads[1](txt), labels)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 25 == 0 or step == steps - 1:
            log(f"clip step {step}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f}s)")
    model.cpu()
    _zero_unseen_tokens(model)
    return model.eval()


def sharpen_image_tower(
    model,
    images: np.ndarray,
    specs: list[data.Sample],
    steps: int,
    batch: int,
    seed: int,
    device: str = "cpu",
):
    """Step 2b: train the image tower alone against the frozen text tower, with hard negatives.

    Besides the contrastive loss, every image must pick its own pattern among all the patterns
    captioned in its own colours: the zero-shot question that ranking and the benchmark ask.
    Held-out combinations are never candidates. The text tower is not touched, so the
    generator, which reads only the text tower, is the same with or without this step.
    """
    torch.manual_seed(seed + 3)
    rng = random.Random(seed + 3)
    model.to(device)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("visual."))
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=SHARPEN_LR, weight_decay=0.05
    )
    groups = _colour_groups(specs)
    hold = data.held_out()
    scale = model.logit_scale.exp().detach()
    start = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, SHARPEN_LR)
        pixels, captions, keys = draw_batch(images, specs, batch, rng, groups)
        template = rng.choice(data._TEMPLATES)
        candidates = [
            (colours, pattern)
            for colours in sorted({k[0] for k in keys})
            for pattern in data.PATTERN_NAMES
            if not data._is_held_out(colours, pattern, hold)
        ]
        wordings = [
            template.format(c=data.colour_phrase(c), p=rng.choice(data.PATTERNS[p]))
            for c, p in candidates
        ]
        with torch.no_grad():
            txt = F.normalize(model.encode_text(tokens(captions).to(device)), dim=-1)
            cand = F.normalize(model.encode_text(tokens(wordings).to(device)), dim=-1)
        img = F.normalize(model.encode_image(pixels.to(device)), dim=-1)
        same = torch.tensor([[a == b for b in keys] for a in keys], dtype=torch.float32)
        loss = F.cross_entropy(scale * img @ txt.T, (same / same.sum(1, keepdim=True)).to(device))
        own_colours = torch.tensor([[c == k[0] for c, _ in candidates] for k in keys])
        hard = (scale * img @ cand.T).masked_fill(~own_colours.to(device), float("-inf"))
        right = torch.tensor([candidates.index(k) for k in keys]).to(device)
        loss = loss + F.cross_entropy(hard, right)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == steps - 1:
            log(f"sharpen step {step}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f}s)")
    model.requires_grad_(False)
    return model.eval().cpu()


def _zero_unseen_tokens(model) -> None:
    """Token rows no caption ever used stay random; zero them so unknown words add nothing."""
    seen: set[int] = set()
    for words in data.PATTERNS.values():
        for colour in data.COLOUR_NAMES:
            for wording in words:
                for template in data._TEMPLATES:
                    text = template.format(c=f"{colour} and {colour}", p=wording)
                    seen.update(tokenize([text])[0].tolist())
                    seen.update(tokenize([template.format(c=colour, p=wording)])[0].tolist())
    seen.update(tokenize([""])[0].tolist())
    keep = torch.zeros(model.token_embedding.weight.shape[0], dtype=torch.bool)
    keep[sorted(seen)] = True
    with torch.no_grad():
        model.token_embedding.weight[~keep] = 0.0
