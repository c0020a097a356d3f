"""Steps 3 and 4 of the built-in training: the generator, then its refinement for inpainting."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import numpy as np
import torch

from brushlink.server.engines.builtin import unet
from brushlink.server.engines.builtin.clip_model import text_features

from . import data, inpaint_examples
from .train_batches import draw_batch, log, lr_at, tokens

REFINE_LR = 1e-3  # half step 3's peak: step 4 starts from trained weights


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
    shape = unet.depth(init) if init is not None else (1, 1)
    model = unet.build_unet(inpainting, *shape).train()
    if init is not None:
        model.load_state_dict(init.state_dict())
    model.to(device)
    sched = unet.train_scheduler()
    alphas = sched.alphas_cumprod.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=peak_lr, weight_decay=0.01)
    # an exponential moving average of the weights samples much cleaner than the last step's
    ema = unet.build_unet(inpainting, *shape).to(device)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    ema_params, params = list(ema.parameters()), list(model.parameters())
    start = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, peak_lr)
        pixels, captions, _ = draw_batch(images, specs, batch, rng)
        captions = ["" if rng.random() < 0.1 else c for c in captions]
        masks = None
        if inpainting:
            pixels, masks = inpaint_examples.make(pixels, images, rng)
            masks = masks.to(device)
        pixels = pixels.to(device)
        with torch.no_grad():
            tokens_h, pooled = text_features(clip, tokens(captions).to(device))
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
            log(f"{stage} step {step}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f}s)")
        if checkpoint and (step + 1) % checkpoint_every == 0:
            checkpoint(ema)  # a long run can be inspected (and salvaged) before it ends
    return ema.eval().cpu()
