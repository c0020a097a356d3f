"""Train the built-in CLIP and generator from scratch: ``python -m brushlink.server.builtin.train``.

Everything comes from one seed: the procedural data set, both models' initial weights and the
order of the batches. CPU float sums depend on how work is split between threads, so the
thread count is a setting like the others (default 2, the development machine's cores) and is
recorded with the weights; the shipped weights in ``weights/`` are this script's output.

Steps:
  1. render the training textures (held-out colour/pattern combinations excluded)
  2. train the CLIP contrastively (captions re-worded every time an image is drawn)
  2b. sharpen its image tower against the frozen text tower, with hard negatives
  3. freeze the CLIP; train the UNet to denoise folded textures, conditioned on the CLIP's text
     features, with 10 % empty captions (for classifier-free guidance) and half the batches
     padded circularly (for seamless tiles)
  4. optionally (``--refine-steps``, off by default: long on a CPU) refine the UNet into the
     inpainting generator: step 3's weights gain the inpainting inputs (zeroed) and train on,
     with a fresh optimiser, a lower learning rate and 30 % inpainting examples (a mask, and
     other surroundings around the captioned texture: ``inpaint_examples``)
  5. write both models as half-precision .safetensors

Steps 2b and 4 start from the weights of 2 and 3 exactly as saved (half precision), so a run
can be extended without repeating its longest steps: ``--from DIR`` reads steps 2 and 3 from an
earlier run's weights and gives the same result as a full run with the same settings. When that
generator was already refined, step 4 continues it: each such sitting draws its own batches and
is listed, with its settings, under ``refined_before`` in ``training.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import clip_model, data, inpaint_examples, manifest, unet
from .clip_model import text_features, tokenize

DEFAULTS = {
    "seed": 1234,
    "images": 20000,
    "clip_steps": 1500,
    "clip_batch": 128,
    "sharpen_steps": 1000,
    "unet_steps": 5000,
    "unet_batch": 64,
    # step 4 is off by default because it is long on a CPU; the shipped generator ran it on
    # a GPU (docs/models.md, "The shipped weights")
    "refine_steps": 0,
    "refine_batch": 64,
}
SHARPEN_LR = 3e-4  # step 2b fine-tunes a trained image tower
REFINE_LR = 1e-3  # half step 3's peak: step 4 starts from trained weights
# what training.json records of one sitting of step 4
REFINE_RECORD = ("refine_steps", "refine_batch", "refine_lr", "refine_seconds", "refine_device")


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
    shifts = np.array([(rng.randrange(data.SIZE), rng.randrange(data.SIZE)) for _ in idx])
    captions = [data.caption(specs[i].colours, specs[i].pattern, rng) for i in idx]
    keys = [(specs[i].colours, specs[i].pattern) for i in idx]
    # np.roll of each image by its shift, as one gather: a GPU step is shorter than the loop
    span = np.arange(data.SIZE)
    rows = (span[None, :] - shifts[:, :1]) % data.SIZE
    cols = (span[None, :] - shifts[:, 1:]) % data.SIZE
    pixels = images[np.array(idx)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return _to_tensor(pixels), captions, keys


@functools.cache
def _token_row(caption: str) -> torch.Tensor:
    return tokenize([caption])[0]


def _tokens(captions: list[str]) -> torch.Tensor:
    """``tokenize`` for training: captions repeat, so each wording is tokenised only once."""
    return torch.stack([_token_row(c) for c in captions])


def _lr(step: int, total: int, peak: float, warmup: int = 50) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


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
            group["lr"] = _lr(step, steps, 1e-3)
        pixels, captions, keys = _batch(images, specs, batch, rng, groups)
        img, txt, scale = model(pixels.to(device), _tokens(captions).to(device))
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
            _log(f"clip step {step}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f}s)")
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
            group["lr"] = _lr(step, steps, SHARPEN_LR)
        pixels, captions, keys = _batch(images, specs, batch, rng, groups)
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
            txt = F.normalize(model.encode_text(_tokens(captions).to(device)), dim=-1)
            cand = F.normalize(model.encode_text(_tokens(wordings).to(device)), dim=-1)
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
            _log(f"sharpen step {step}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f}s)")
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


def train_unet(
    images: np.ndarray,
    specs: list[data.Sample],
    clip,
    steps: int,
    batch: int,
    seed: int,
    checkpoint: Callable[[torch.nn.Module], None] | None = None,
    checkpoint_every: int = 1000,
    init: torch.nn.Module | None = None,
    peak_lr: float = 2e-3,
    device: str = "cpu",
):
    """Step 3 (from scratch) or, with ``init``, step 4 (continue from those weights).

    Step 3 trains the plain text-to-image generator; step 4 continues from ``init`` (loaded by
    ``unet.load_unet``, so with the inpainting inputs) and mixes in inpainting examples.
    ``clip`` must already be on ``device``; the returned generator is on the CPU.
    """
    torch.manual_seed(seed + 1)
    rng = random.Random(seed + 1)
    inpainting = init is not None
    model = unet.build_unet(inpainting).train()
    if init is not None:
        model.load_state_dict(init.state_dict())
    model.to(device)
    sched = unet.train_scheduler()
    alphas = sched.alphas_cumprod.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=peak_lr, weight_decay=0.01)
    # an exponential moving average of the weights samples much cleaner than the last step's
    ema = unet.build_unet(inpainting).to(device)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    ema_params, params = list(ema.parameters()), list(model.parameters())
    start = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = _lr(step, steps, peak_lr)
        pixels, captions, _ = _batch(images, specs, batch, rng)
        captions = ["" if rng.random() < 0.1 else c for c in captions]
        masks = None
        if inpainting:
            pixels, masks = inpaint_examples.make(pixels, images, rng)
            masks = masks.to(device)
        pixels = pixels.to(device)
        with torch.no_grad():
            tokens_h, pooled = text_features(clip, _tokens(captions).to(device))
        x0 = unet.fold(pixels)
        noise = torch.randn_like(x0)
        # drawn on the CPU whatever the device, so the CPU's random stream stays the same
        t = torch.randint(0, sched.config.num_train_timesteps, (batch,)).to(device)
        xt = sched.add_noise(x0, noise, t)
        target = sched.get_velocity(x0, noise, t)
        unet.set_tiling(model, "xy" if step % 2 else "none")
        if inpainting:
            xt = torch.cat([xt, unet.condition(pixels, masks, pixels.shape)], dim=1)
        pred = model(xt, t, encoder_hidden_states=tokens_h, class_labels=pooled).sample
        # min-SNR weighting (gamma 5) for v-prediction: spends less effort on the noisiest steps
        snr = alphas[t] / (1 - alphas[t])
        weight = torch.clamp(snr, max=5.0) / (snr + 1)
        loss = (weight * ((pred - target) ** 2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        # the warm-up of the decay only matters from scratch: a refined run starts trained
        decay = 0.998 if init is not None else min(0.998, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, params, 1 - decay)  # one kernel, not one per tensor
        if step % 25 == 0 or step == steps - 1:
            stage = "refine" if init is not None else "unet"
            _log(f"{stage} step {step}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f}s)")
        if checkpoint and (step + 1) % checkpoint_every == 0:
            checkpoint(ema)  # a long run can be inspected (and salvaged) before it ends
    return ema.eval().cpu()


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
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=None,
        help="read the outputs of steps 2 and 3 from this earlier run's weights folder",
    )
    parser.add_argument(
        "--refine-lr", type=float, default=REFINE_LR, help="step 4's peak learning rate"
    )
    parser.add_argument("--clip-only", action="store_true", help="stop after step 2b")
    parser.add_argument(
        "--device",
        default="cpu",
        help="torch device for the training steps run now, e.g. cuda (recorded with the weights)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.device != "cpu":
        # the same seed gives the same weights on one GPU and software stack too
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        # the fused attention kernels' backward passes are not deterministic; the plain one is
        torch.backends.cuda.enable_flash_sdp(False)
        torch.backends.cuda.enable_mem_efficient_sdp(False)
    clip_path = args.out / "clip.safetensors"
    unet_path = args.out / "unet.safetensors"
    record_path = args.out / "training.json"
    source_record = args.source / "training.json" if args.source else record_path
    previous = json.loads(source_record.read_text()) if source_record.is_file() else {}
    times: dict[str, Any] = {}

    _log(f"1. rendering {args.images} textures (seed {args.seed})")
    images, specs = data.make_dataset(args.images, args.seed)

    started = time.time()
    if args.reuse_clip:
        _log(f"2. reusing the CLIP in {clip_path}")
        times |= {k: previous.get(k) for k in ("clip_seconds", "sharpen_seconds")}
        times["clip_device"] = previous.get("clip_device", "cpu")
    else:
        if args.source:
            _log(f"2. reading the CLIP of step 2 from {args.source}")
            times["clip_seconds"] = previous.get("clip_seconds")
        else:
            _log("2. training the CLIP")
            model = train_clip(
                images, specs, args.clip_steps, args.clip_batch, args.seed, args.device
            )
            clip_model.save_clip(model, clip_path)
            times["clip_seconds"] = round(time.time() - started)
        clip = clip_model.load_clip("cpu", (args.source or args.out) / "clip.safetensors")
        started = time.time()
        _log("2b. sharpening the CLIP's image tower")
        clip = sharpen_image_tower(
            clip, images, specs, args.sharpen_steps, args.clip_batch, args.seed, args.device
        )
        clip_model.save_clip(clip, clip_path)
        times["sharpen_seconds"] = round(time.time() - started)
        times["clip_device"] = args.device

    if not args.clip_only:
        _train_generator(args, images, specs, clip_path, unet_path, previous, times)

    record = {
        **{k: getattr(args, k) for k in DEFAULTS},
        "threads": args.threads,
        "refine_lr": args.refine_lr,
        **times,
        "torch": torch.__version__,
    }
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    _log(f"5. done: {json.dumps(record)}")
    return 0


def _train_generator(
    args: argparse.Namespace,
    images: np.ndarray,
    specs: list[data.Sample],
    clip_path: Path,
    unet_path: Path,
    previous: dict,
    times: dict[str, Any],
) -> None:
    """Steps 3 and 4."""
    # the generator is conditioned on the CLIP exactly as it ships (half precision)
    clip = clip_model.load_clip(args.device, clip_path)
    clip.requires_grad_(False)
    partial = unet_path.with_suffix(".partial")
    started = time.time()
    if args.source:
        _log(f"3. reading the generator of step 3 from {args.source}")
        stage_1 = unet.load_unet("cpu", args.source / "unet.safetensors")
        times["unet_seconds"] = previous.get("unet_seconds")
        times["unet_device"] = previous.get("unet_device", "cpu")
        # a generator refined before: this sitting continues it, and the record keeps the others
        earlier = list(previous.get("refined_before", []))
        if previous.get("refine_steps"):
            earlier.append(
                {k: previous.get(k, REFINE_LR if k == "refine_lr" else None) for k in REFINE_RECORD}
            )
        if earlier:
            times["refined_before"] = earlier
    else:
        _log("3. training the generator")
        generator = train_unet(
            images,
            specs,
            clip,
            args.unet_steps,
            args.unet_batch,
            args.seed,
            checkpoint=lambda model: unet.save_unet(model, partial),
            device=args.device,
        )
        unet.save_unet(generator, unet_path)
        stage_1 = unet.load_unet("cpu", unet_path)
        times["unet_seconds"] = round(time.time() - started)
        times["unet_device"] = args.device

    if args.refine_steps:
        started = time.time()
        _log("4. refining the generator")
        refined = train_unet(
            images,
            specs,
            clip,
            args.refine_steps,
            args.refine_batch,
            # a sitting that continues earlier ones draws new batches, the first the same as ever
            args.seed + 1 + len(times.get("refined_before") or []),
            checkpoint=lambda model: unet.save_unet(model, partial),
            init=stage_1,
            peak_lr=args.refine_lr,
            device=args.device,
        )
        unet.save_unet(refined, unet_path)
        times["refine_seconds"] = round(time.time() - started)
        times["refine_device"] = args.device
    elif args.source:
        unet.save_unet(stage_1, unet_path)
    partial.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
