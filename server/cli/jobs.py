"""`brushlink generate | inpaint | style | rank`: one job, through a server or in-process.

Without ``--server`` the command uses this machine's running server; when none answers it runs
the job in-process (a private server on loopback) and says so on stderr. A server that was
reached and then lost mid-job is reported as lost: the job is not run a second time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from brushlink.plugin.blocking import BlockingClient
from brushlink.plugin.errors import BrushlinkError, ServerUnavailable
from brushlink.plugin.frames import to_png
from brushlink.plugin.protocol import Message, Preview, Progress, Result
from brushlink.plugin.request import Job, Request

from ..files import read_image_as_png, write_atomic
from ..inprocess import find_or_start
from . import guidance


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    try:
        return int(width), int(height or width)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512x512, not {text!r}") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", help="server URL (default: this machine's, else in-process)")
    p.add_argument("--token", help="token (default: BRUSHLINK_HOME/token)")
    p.add_argument("--home", type=Path, help="BRUSHLINK_HOME")
    p.add_argument("--model", help="model name (see `brushlink models`)")
    p.add_argument("--seed", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", type=Path, required=True, help="output PNG")


def register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("generate", help="generate images from a prompt")
    g.add_argument("prompt")
    g.add_argument("--negative", default="", help="negative prompt")
    g.add_argument("--size", type=_size, help="WxH, e.g. 512x512")
    g.add_argument("--candidates", type=int, default=1, help="draw N and rank them with CLIP")
    g.add_argument("--keep", type=int, help="return the best K of the candidates")
    g.add_argument("--tile", choices=["none", "x", "y", "xy"], default="none")
    g.add_argument("--guidance", type=float)
    g.add_argument("--scheduler")
    guidance.add_arguments(g)
    _common(g)
    _outputs(g)
    g.set_defaults(func=run, kind="generate")

    i = sub.add_parser("inpaint", help="regenerate the masked part of an image")
    i.add_argument("image", type=Path)
    i.add_argument("--mask", type=Path, required=True, help="white (or opaque) = regenerate")
    i.add_argument("--prompt", default="")
    i.add_argument("--engine", dest="engine", help="same as --model (e.g. fill)")
    i.add_argument("--strength", type=float)
    guidance.add_arguments(i)
    _common(i)
    _outputs(i)
    i.set_defaults(func=run, kind="inpaint")

    s = sub.add_parser("style", help="restyle an image")
    s.add_argument("image", type=Path)
    how = s.add_mutually_exclusive_group()
    how.add_argument("--style", help="a named style, e.g. sketch, watercolor, oil")
    how.add_argument("--reference", type=Path, help="transfer the colours of this image")
    s.add_argument("--prompt", default="")
    s.add_argument("--strength", type=float)
    guidance.add_arguments(s)
    _common(s)
    _outputs(s)
    s.set_defaults(func=run, kind="style")

    r = sub.add_parser("rank", help="score images against a prompt with CLIP, best first")
    r.add_argument("prompt")
    r.add_argument("images", type=Path, nargs="+")
    _common(r)
    r.set_defaults(func=run, kind="rank")


def build_job(args: argparse.Namespace) -> Job:
    request = Request(
        kind=args.kind,
        model=getattr(args, "engine", None) or args.model,
        seed=args.seed,
        steps=args.steps,
        priority=args.priority,
    )
    job = Job(request)
    if args.kind == "generate":
        request.prompt, request.negative_prompt = args.prompt, args.negative
        if args.size:
            request.width, request.height = args.size
        request.candidates, request.keep, request.tile = args.candidates, args.keep, args.tile
        request.guidance, request.scheduler = args.guidance, args.scheduler
    elif args.kind == "inpaint":
        request.prompt, request.strength = args.prompt, args.strength
        job.image = read_image_as_png(args.image)
        job.mask = read_image_as_png(args.mask)
    elif args.kind == "style":
        request.prompt, request.strength, request.style = args.prompt, args.strength, args.style
        job.image = read_image_as_png(args.image)
        if args.reference:
            job.reference = read_image_as_png(args.reference)
        if not (args.style or args.reference or args.prompt.strip()):
            raise BrushlinkError(
                "Say how to restyle: a --style NAME, a --reference IMAGE or a --prompt."
            )
    else:
        request.prompt = args.prompt
        job.inputs = [read_image_as_png(path) for path in args.images]
    if args.kind != "rank":
        guidance.apply(args, job)
    return job


class ProgressBar:
    """A tqdm bar on stderr while a job runs (only on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._bar: Any = None

    def __call__(self, event: Message) -> None:
        if not self.enabled:
            return
        if isinstance(event, (Progress, Preview)) and event.total:
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(total=event.total, unit="step", file=sys.stderr, leave=False)
            self._bar.total = event.total
            self._bar.n = event.step
            self._bar.refresh()
        elif isinstance(event, Result):
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def run(args: argparse.Namespace, build: Callable[[argparse.Namespace], Job] = build_job) -> int:
    """Build the job from the arguments (``build``: other job commands pass their own), run
    it, write or print what comes back; the exit code."""
    try:
        job = build(args)
    except (BrushlinkError, OSError, argparse.ArgumentTypeError) as err:
        print(f"brushlink: {err}", file=sys.stderr)
        return 2

    def say_local() -> None:
        print("brushlink: no server running here; running the job in-process", file=sys.stderr)

    try:
        reached = find_or_start(args.server, args.token, args.home, on_local=say_local)
    except ServerUnavailable as err:
        print(f"brushlink: {err.message}", file=sys.stderr)
        return 3
    except BrushlinkError as err:
        print(f"brushlink: {err.message} [{err.code}]", file=sys.stderr)
        return 1
    try:
        return _run_job(reached.client, args, job)
    except BrushlinkError as err:
        print(f"brushlink: {err.message} [{err.code}]", file=sys.stderr)
        return 1
    finally:
        reached.close()


def _run_job(client: BlockingClient, args: argparse.Namespace, job: Job) -> int:
    bar = ProgressBar(not args.quiet)
    try:
        result = client.run(job, on_event=bar, timeout=args.timeout)
    finally:
        bar.close()
    return _report(args, result)


def _report(args: argparse.Namespace, result: Result) -> int:
    if args.kind == "rank":
        for entry in result.metadata.get("ranking", []):
            print(f"{entry['score']:.4f}  {args.images[entry['index']]}")
        return 0
    for k, image in enumerate(result.images):
        out = args.output if k == 0 else args.output.with_name(f"{args.output.stem}-{k}.png")
        write_atomic(out, to_png(image.data or b""))
        score = f"  score {image.score:.4f}" if image.score is not None else ""
        print(f"{out}  seed {image.seed}{score}")
    return 0
