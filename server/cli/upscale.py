"""`brushlink upscale IMAGE --scale 2|4 -o OUT`: one upscale job, optionally refined by a
checkpoint. It runs like the other job commands (``jobs.py``): through this machine's server,
or in-process when none runs."""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

from brushlink.plugin.errors import BrushlinkError
from brushlink.plugin.request import Job, Request, UpscaleParams

from ..files import read_image_as_png
from . import jobs


def register(sub: argparse._SubParsersAction) -> None:
    u = sub.add_parser("upscale", help="make an image 2 or 4 times larger")
    u.add_argument("image", type=Path)
    u.add_argument("--scale", type=int, choices=[2, 4], default=2)
    u.add_argument("--refine", metavar="CHECKPOINT", help="redraw the result with a checkpoint")
    u.add_argument("--strength", type=float, help="how far the refine may move (0..1, 0.3)")
    u.add_argument("--prompt", default="", help="what the refine pass draws")
    u.add_argument("--negative", default="", help="negative prompt of the refine pass")
    u.add_argument("--tile-size", type=int, help="input px per tile (upscaler networks)")
    u.add_argument("--overlap", type=int, help="px neighbouring tiles share (networks)")
    jobs._common(u)
    jobs._outputs(u)
    u.set_defaults(func=partial(jobs.run, build=build_job), kind="upscale")


def build_job(args: argparse.Namespace) -> Job:
    if not args.refine and (args.strength is not None or args.prompt or args.negative):
        raise BrushlinkError("--strength, --prompt and --negative go with --refine CHECKPOINT.")
    upscale = UpscaleParams(scale=args.scale, refine=args.refine)
    if args.strength is not None:
        upscale.strength = args.strength
    options = {
        key: value
        for key, value in (("tile", args.tile_size), ("overlap", args.overlap))
        if value is not None
    }
    request = Request(
        kind="upscale",
        model=args.model,
        prompt=args.prompt,
        negative_prompt=args.negative,
        seed=args.seed,
        steps=args.steps,
        priority=args.priority,
        upscale=upscale,
        options=options,
    )
    return Job(request, image=read_image_as_png(args.image))
