"""Train the built-in CLIP and generator from scratch: ``python -m brushlink.server.training.train``.

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
     other surroundings around the captioned texture: ``inpaint_examples``); with
     ``--layers-per-block`` or ``--transformer-layers`` a sitting first deepens it, every added
     layer starting as an identity (``grow``)
  5. write both models as half-precision .safetensors

Steps 2b and 4 start from the weights of 2 and 3 exactly as saved (half precision), so a run
can be extended without repeating its longest steps: ``--from DIR`` reads steps 2 and 3 from an
earlier run's weights and gives the same result as a full run with the same settings. When that
generator was already refined, step 4 continues it: each such sitting draws its own batches and
is listed, with its settings, under ``refined_before`` in ``training.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brushlink.server.engines.builtin import clip_model, manifest, unet

from . import data, grow
from .train_batches import log
from .train_clip import sharpen_image_tower, train_clip
from .train_generator import REFINE_LR, train_unet

DEFAULTS = {
    "seed": 1234,
    "images": 20000,
    "clip_steps": 1500,
    "clip_batch": 128,
    "sharpen_steps": 1000,
    "unet_steps": 5000,
    "unet_batch": 64,
    # step 4 is off by default because it is long on a CPU; the shipped generator ran it on
    # a GPU (docs/training.md, "The shipped weights")
    "refine_steps": 0,
    "refine_batch": 64,
}
# what training.json records of one sitting of step 4
REFINE_RECORD = (
    "refine_steps",
    "refine_batch",
    "refine_lr",
    "refine_seconds",
    "refine_device",
    "layers_per_block",
    "transformer_layers",
)


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
    parser.add_argument(
        "--layers-per-block",
        type=int,
        default=None,
        help="deepen the generator to this many layers per block before step 4 (default: keep)",
    )
    parser.add_argument(
        "--transformer-layers",
        type=int,
        default=None,
        help="deepen each attention to this many transformer blocks before step 4 (default: keep)",
    )
    parser.add_argument("--clip-only", action="store_true", help="stop after step 2b")
    parser.add_argument(
        "--device",
        default="cpu",
        help="torch device for the training steps run now, e.g. cuda (recorded with the weights)",
    )
    args = parser.parse_args(argv)
    deepen = (args.layers_per_block, args.transformer_layers)
    if any(d is not None and d < 1 for d in deepen):
        parser.error("--layers-per-block and --transformer-layers must be 1 or more")
    if any(d is not None for d in deepen) and not args.refine_steps:
        parser.error(
            "--layers-per-block and --transformer-layers deepen the generator for "
            "step 4: give --refine-steps too"
        )
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

    log(f"1. rendering {args.images} textures (seed {args.seed})")
    images, specs = data.make_dataset(args.images, args.seed)

    started = time.time()
    if args.reuse_clip:
        log(f"2. reusing the CLIP in {clip_path}")
        times |= {k: previous.get(k) for k in ("clip_seconds", "sharpen_seconds")}
        times["clip_device"] = previous.get("clip_device", "cpu")
    else:
        if args.source:
            log(f"2. reading the CLIP of step 2 from {args.source}")
            times["clip_seconds"] = previous.get("clip_seconds")
        else:
            log("2. training the CLIP")
            model = train_clip(
                images, specs, args.clip_steps, args.clip_batch, args.seed, args.device
            )
            clip_model.save_clip(model, clip_path)
            times["clip_seconds"] = round(time.time() - started)
        clip = clip_model.load_clip("cpu", (args.source or args.out) / "clip.safetensors")
        started = time.time()
        log("2b. sharpening the CLIP's image tower")
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
    log(f"5. done: {json.dumps(record)}")
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
        log(f"3. reading the generator of step 3 from {args.source}")
        stage_1 = unet.load_unet("cpu", args.source / "unet.safetensors")
        times["unet_seconds"] = previous.get("unet_seconds")
        times["unet_device"] = previous.get("unet_device", "cpu")
        # a generator refined before: this sitting continues it, and the record keeps the others
        earlier = list(previous.get("refined_before", []))
        if previous.get("refine_steps"):
            # records written before these settings existed ran at their defaults
            defaults = {"refine_lr": REFINE_LR, "layers_per_block": 1, "transformer_layers": 1}
            earlier.append({k: previous.get(k, defaults.get(k)) for k in REFINE_RECORD})
        if earlier:
            times["refined_before"] = earlier
    else:
        log("3. training the generator")
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
        current = unet.depth(stage_1)
        layers = args.layers_per_block or current[0]
        transformer_layers = args.transformer_layers or current[1]
        if (layers, transformer_layers) != current:
            log(f"4. deepening the generator to {layers} layers, {transformer_layers} transformers")
            torch.manual_seed(args.seed)  # the added layers' weights that do not start at zero
            stage_1 = grow.grow(stage_1, layers, transformer_layers)
        log("4. refining the generator")
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
        times["layers_per_block"], times["transformer_layers"] = layers, transformer_layers
        times["refine_device"] = args.device
    elif args.source:
        unet.save_unet(stage_1, unet_path)
    partial.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
