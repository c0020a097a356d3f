"""The guidance flags of `generate`, `inpaint` and `style`: LoRAs, ControlNets and a VAE.

--lora NAME[:WEIGHT]            repeatable; weight 1 by default
--control MODEL:IMAGE[:STRENGTH]   repeatable; IMAGE is a picture file
--preprocess NAME               repeatable, one per --control in order (one for all)
--vae NAME
"""

from __future__ import annotations

import argparse
from pathlib import Path

from brushlink.plugin.request import Control, Job, LoraRef

from ..files import read_image_as_png


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be a number, not {text!r}") from None


def lora(text: str) -> LoraRef:
    name, sep, weight = text.rpartition(":")
    if not sep:
        return LoraRef(text)
    return LoraRef(name, _number(weight, "a LoRA's weight"))


def control(text: str) -> tuple[str, Path, float]:
    parts = text.split(":")
    if len(parts) == 3:
        return parts[0], Path(parts[1]), _number(parts[2], "a control's strength")
    if len(parts) == 2:
        return parts[0], Path(parts[1]), 1.0
    raise argparse.ArgumentTypeError(f"a control looks like MODEL:IMAGE[:STRENGTH], not {text!r}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lora", type=lora, action="append", default=[], metavar="NAME[:WEIGHT]",
                   help="apply a LoRA (repeatable)")  # fmt: skip
    p.add_argument("--control", type=control, action="append", default=[],
                   metavar="MODEL:IMAGE[:STRENGTH]", help="guide with a ControlNet (repeatable)")  # fmt: skip
    p.add_argument("--preprocess", action="append", default=[], metavar="NAME",
                   help="canny, lineart, scribble, depth, tile or none, per --control")  # fmt: skip
    p.add_argument("--vae", help="use another VAE")


def apply(args: argparse.Namespace, job: Job) -> None:
    """Put the flags into the job's request, reading each control's picture."""
    request = job.request
    request.loras = list(args.lora)
    request.vae = args.vae
    preprocess = list(args.preprocess)
    if preprocess and len(preprocess) not in (1, len(args.control)):
        raise argparse.ArgumentTypeError("give one --preprocess, or one per --control")
    for i, (model, image, strength) in enumerate(args.control):
        name = preprocess[0] if len(preprocess) == 1 else (preprocess[i] if preprocess else "none")
        request.controls.append(Control(model, image=i, preprocessor=name, strength=strength))
        job.controls.append(read_image_as_png(image))
