"""Train the built-in CLIP and generator from scratch: ``python -m brushlink.server.builtin.train``.

Everything comes from one seed: the procedural data set, both models' initial weights and the
order of the batches. CPU float sums depend on how work is split between threads, so the
thread count is a setting like the others (default 2, the development machine's cores) and is
recorded with the weights; the shipped weights in ``weights/`` are this script's output.

Steps:
  1. render the training textures (held-out colour/pattern combinations excluded)
  2. train the CLIP contrastively (captions re-worded every time an image is drawn)
  3. freeze the CLIP; train the UNet to denoise folded textures, conditioned on the CLIP's text
     features, with 10 % empty captions (for classifier-free guidance) and half the batches
     padded circularly (for seamless tiles)
  4. write both models as half-precision .safetensors
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import clip_model, data, manifest, unet
from .clip_model import text_features, tokenize

DEFAULTS = {
    "seed": 1234,
    "images": 20000,
    "clip_steps": 1500,
    "clip_batch": 128,
    "unet_steps": 5000,
    "unet_batch": 64,
}


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def _batch(
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
    pixels = []
    for i in idx:
        shift = (rng.randrange(data.SIZE), rng.randrange(data.SIZE))
        pixels.append(np.roll(images[i], shift, (0, 1)))
    captions = [data.caption(specs[i].colours, specs[i].pattern, rng) for i in idx]
    keys = [(specs[i].colours, specs[i].pattern) for i in idx]
    return _to_tensor(np.stack(pixels)), captions, keys


def _lr(step: int, total: int, peak: float, warmup: int = 50) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_clip(images: np.ndarray, specs: list[data.Sample], steps: int, batch: int, seed: int):
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = clip_model.build_clip().train()
    # training-only heads that name the pattern from each tower's embedding: a direct signal
    # that gets pattern features going where the contrastive loss alone plateaus on colour
    embed = clip_model.CLIP_CONFIG["embed_dim"]
    heads = torch.nn.ModuleList([torch.nn.Linear(embed, len(data.PATTERN_NAMES)) for _ in range(2)])
    params = list(model.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)
    groups: dict[str, list[int]] = {c: [] for c in data.COLOUR_NAMES}
    for i, spec in enumerate(specs):
        groups[spec.colours[0]].append(i)
    start = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = _lr(step, steps, 1e-3)
        pixels, captions, keys = _batch(images, specs, batch, rng, groups)
        img, txt, scale = model(pixels, tokenize(captions))
        logits = scale * img @ txt.T
        # samples of the same combination are all positives (soft targets), not negatives
        same = torch.tensor([[a == b for b in keys] for a in keys], dtype=torch.float32)
        targets = same / same.sum(1, keepdim=True)
        labels = torch.tensor([data.PATTERN_NAMES.index(k[1]) for k in keys])
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
            _log(f"clip step {step}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f}s)")
    _zero_unseen_tokens(model)
    return model.eval()


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


def train_unet(
    images: np.ndarray,
    specs: list[data.Sample],
    clip,
    steps: int,
    batch: int,
    seed: int,
    checkpoint: Callable[[torch.nn.Module], None] | None = None,
    checkpoint_every: int = 1000,
):
    torch.manual_seed(seed + 1)
    rng = random.Random(seed + 1)
    model = unet.build_unet().train()
    sched = unet.train_scheduler()
    alphas = sched.alphas_cumprod
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    # an exponential moving average of the weights samples much cleaner than the last step's
    ema = unet.build_unet()
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    start = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = _lr(step, steps, 2e-3)
        pixels, captions, _ = _batch(images, specs, batch, rng)
        captions = ["" if rng.random() < 0.1 else c for c in captions]
        with torch.no_grad():
            tokens_h, pooled = text_features(clip, tokenize(captions))
        x0 = unet.fold(pixels)
        noise = torch.randn_like(x0)
        t = torch.randint(0, sched.config.num_train_timesteps, (batch,))
        xt = sched.add_noise(x0, noise, t)
        target = sched.get_velocity(x0, noise, t)
        unet.set_tiling(model, "xy" if step % 2 else "none")
        pred = model(xt, t, encoder_hidden_states=tokens_h, class_labels=pooled).sample
        # min-SNR weighting (gamma 5) for v-prediction: spends less effort on the noisiest steps
        snr = alphas[t] / (1 - alphas[t])
        weight = torch.clamp(snr, max=5.0) / (snr + 1)
        loss = (weight * ((pred - target) ** 2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(0.998, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters(), strict=True):
                e.lerp_(p, 1 - decay)
        if step % 25 == 0 or step == steps - 1:
            _log(f"unet step {step}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f}s)")
        if checkpoint and (step + 1) % checkpoint_every == 0:
            checkpoint(ema)  # a long run can be inspected (and salvaged) before it ends
    return ema.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for key, value in DEFAULTS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=value)
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads (the result depends on it)"
    )
    parser.add_argument("--out", type=Path, default=manifest.WEIGHTS_DIR, help="weights folder")
    parser.add_argument(
        "--reuse-clip",
        action="store_true",
        help="skip step 2 and condition on the CLIP already in --out (same result as a full run "
        "with the same seed, since the generator always trains on the saved CLIP)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.time()

    _log(f"1. rendering {args.images} textures (seed {args.seed})")
    images, specs = data.make_dataset(args.images, args.seed)

    clip_path = args.out / "clip.safetensors"
    record_path = args.out / "training.json"
    if args.reuse_clip:
        _log(f"2. reusing the CLIP in {clip_path}")
        clip_time = (
            json.loads(record_path.read_text())["clip_seconds"] if record_path.is_file() else None
        )
    else:
        _log("2. training the CLIP")
        clip_model.save_clip(
            train_clip(images, specs, args.clip_steps, args.clip_batch, args.seed), clip_path
        )
        clip_time = round(time.time() - started)
    # the generator is conditioned on the CLIP exactly as it ships (half precision)
    clip = clip_model.load_clip("cpu", clip_path)
    unet_started = time.time()

    _log("3. training the generator")
    for p in clip.parameters():
        p.requires_grad_(False)
    unet_path = args.out / "unet.safetensors"
    generator = train_unet(
        images,
        specs,
        clip,
        args.unet_steps,
        args.unet_batch,
        args.seed,
        checkpoint=lambda model: unet.save_unet(model, unet_path.with_suffix(".partial")),
    )
    unet.save_unet(generator, unet_path)
    unet_path.with_suffix(".partial").unlink(missing_ok=True)

    record = {
        **{k: getattr(args, k) for k in DEFAULTS},
        "threads": args.threads,
        "clip_seconds": clip_time,
        "unet_seconds": round(time.time() - unet_started),
        "torch": torch.__version__,
    }
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    _log(f"4. done: {json.dumps(record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
