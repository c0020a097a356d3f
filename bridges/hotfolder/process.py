"""One input, start to finish: recipe -> job(s) -> durable outputs -> input moved to done/ or failed/.

The order of the steps is what makes a crash harmless (see ``journal.py``):

    1. reserve the output name and note it in the journal      (state "started")
    2. run the job(s) on the server
    3. write every output, then the ``<stem>.json`` sidecar, atomically
    4. note "written" (or "failed" with the reason) in the journal
    5. choose the name in done/ or failed/, note it, write the error note, move sidecars, move
       the input last, drop the journal entry
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from brushlink.plugin.errors import BrushlinkError, InvalidField
from brushlink.plugin.frames import Image, to_png
from brushlink.plugin.protocol import Result, ResultImage
from brushlink.plugin.request import Job

from .images import encode_output, image_size, read_image, read_prompts
from .journal import Entry, Journal
from .outputs import free_name, move_durably, write_atomic
from .recipe import (
    CONTROL_SUFFIXES,
    IMAGE_SUFFIXES,
    PROMPT_SUFFIXES,
    SIDECAR_SUFFIXES,
    Recipe,
    RecipeError,
    load_overrides,
    load_recipe,
)

DONE_DIR = "done"
FAILED_DIR = "failed"


class Submitter(Protocol):
    """What processing needs from the server side (``runner.Runner``)."""

    def max_pixels(self) -> int | None: ...

    def run(self, job: Job, label: str) -> Result: ...


@dataclass
class Outcome:
    input: Path
    ok: bool
    outputs: list[Path] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


@dataclass
class _Job:
    job: Job
    label: str  # "" for an image input, "-<line>" for a prompt file's line
    prompt: str


class Reservations:
    """Output names taken by inputs in flight in this process (two drops named ``a.png``, ``a.jpg``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._taken: set[Path] = set()

    def reserve(self, outdir: Path, stem: str, journal: Journal, fmt: str) -> str:
        with self._lock:
            claimed = journal.reserved_stems()
            name = free_name(
                outdir,
                stem,
                [".json", f".{fmt}", f"-1.{fmt}"],
                taken=lambda n: n in claimed or (outdir / n) in self._taken,
            )
            self._taken.add(outdir / name)
            return name

    def reserve_dest(self, dest_dir: Path, stem: str, suffixes: list[str], journal: Journal) -> str:
        """A free name in done/ or failed/, also free of names other inputs chose but have not
        used yet (``a.png`` and ``a.jpg`` both failing would share ``a.error.txt``)."""
        with self._lock:
            chosen = {
                e.dest.rsplit(".", 1)[0] if "." in e.dest else e.dest
                for e in journal.entries()
                if e.dest
            }
            name = free_name(
                dest_dir,
                stem,
                suffixes,
                taken=lambda n: n in chosen or (dest_dir / n) in self._taken,
            )
            self._taken.add(dest_dir / name)
            return name

    def hold(self, outdir: Path, name: str) -> None:
        with self._lock:
            self._taken.add(outdir / name)

    def release(self, outdir: Path, name: str) -> None:
        with self._lock:
            self._taken.discard(outdir / name)


class Processor:
    def __init__(self, outbox: Path, submitter: Submitter, reservations: Reservations) -> None:
        self.outbox = outbox
        self.submitter = submitter
        self.reservations = reservations

    def process(self, path: Path) -> Outcome | None:
        """Run ``path`` to done/ or failed/; None when it vanished before work began."""
        started = time.monotonic()
        folder = path.parent
        journal = Journal(folder)
        outdir = self.outbox / folder.name
        entry = journal.load(path.name)
        if entry is not None and not entry.matches(path):
            journal.remove(path.name)  # a different file now has this name
            entry = None
        if entry is None:
            try:
                fmt = load_recipe(folder).format
            except RecipeError:
                fmt = "png"
            try:
                st = path.lstat()
            except FileNotFoundError:
                return None  # moved away by someone else after it settled
            stem = _stem(path)
            out_stem = self.reservations.reserve(outdir, stem, journal, fmt)
            entry = Entry(path.name, st.st_size, st.st_mtime_ns, out_stem, inode=st.st_ino)
            journal.save(entry)
        else:
            self.reservations.hold(outdir, entry.out_stem)
        try:
            if entry.state == "started":
                try:
                    entry.outputs = self._make(path, entry.out_stem, outdir)
                    entry.state = "written"
                except (RecipeError, BrushlinkError) as exc:
                    entry.state = "failed"
                    entry.error = _explain(path, exc)
                journal.save(entry)
            self._finish(path, entry, journal)
        finally:
            self.reservations.release(outdir, entry.out_stem)
        return Outcome(
            input=path,
            ok=entry.state == "written",
            outputs=[outdir / name for name in entry.outputs],
            error=entry.error,
            seconds=time.monotonic() - started,
        )

    # ----------------------------------------------------------------- steps

    def _make(self, path: Path, out_stem: str, outdir: Path) -> list[str]:
        recipe = load_recipe(path.parent)
        overrides = path.with_name(f"{_stem(path)}.json")
        if overrides.is_file():
            recipe = recipe.with_overrides(load_overrides(overrides), overrides.name)
        jobs = self._plan(recipe, path)
        mode = path.stat().st_mode  # outputs are no more readable than their input
        records: list[dict[str, Any]] = []
        written: list[str] = []
        t0 = time.monotonic()
        for job in jobs:
            result = self.submitter.run(job.job, f"{recipe.name}/{path.name}{job.label}")
            images = result.images
            if recipe.kind == "rank":
                images = _ranked_copies(job.job, result)
            if not images:
                raise BrushlinkError(f"The server returned no image for {path.name}{job.label}.")
            for k, image in enumerate(images, start=1):
                suffix = f"-{k}" if len(images) > 1 else ""
                name = f"{out_stem}{job.label}{suffix}.{recipe.format}"
                write_atomic(
                    outdir / name,
                    encode_output(to_png(image.data or b""), recipe.format, recipe.quality),
                    mode,
                )
                written.append(name)
                records.append(
                    {
                        "file": name,
                        "prompt": job.prompt,
                        "seed": image.seed
                        if image.seed is not None
                        else result.metadata.get("seed"),
                        "score": image.score,
                        "width": image.width,
                        "height": image.height,
                        "job_id": job.job.job_id,
                    }
                )
            records[-1]["metadata"] = result.metadata
        sidecar = {
            "input": path.name,
            "recipe": recipe.name,
            "kind": recipe.kind,
            "model": _model_of(jobs, records) or recipe.request.model,
            "prompt": recipe.request.prompt if recipe.kind != "generate" else None,
            "negative_prompt": recipe.request.negative_prompt,
            "style": recipe.request.style,
            "strength": recipe.request.strength,
            "seed": records[0]["seed"] if records else recipe.request.seed,
            "scores": [r["score"] for r in records],
            "images": records,
            "timings": {
                "total_s": round(time.monotonic() - t0, 3),
                "server": [r["metadata"].get("timings") for r in records if "metadata" in r],
            },
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_atomic(outdir / f"{out_stem}.json", json.dumps(sidecar, indent=2).encode(), mode)
        written.append(f"{out_stem}.json")
        return written

    def _plan(self, recipe: Recipe, path: Path) -> list[_Job]:
        suffix = path.suffix.lower()
        if path.is_symlink():
            raise InvalidField(
                f"{path.name} is a link; drop the file itself (a link could publish a file the "
                "watcher can read but its owner never meant to share).",
                field="image",
            )
        if recipe.kind == "generate":
            if suffix not in PROMPT_SUFFIXES:
                raise InvalidField(
                    f"Recipe `{recipe.name}` makes images from prompts: drop .txt files with one "
                    f"prompt per line; {path.name} is not a .txt file.",
                    field="kind",
                )
            jobs = []
            for line, prompt in enumerate(read_prompts(path), start=1):
                job = Job(recipe.request_for(prompt=prompt), reference=self._ref(recipe))
                job.controls = self._control_pictures(recipe, path, None)
                jobs.append(_Job(job, f"-{line}", prompt))
            return jobs
        if suffix not in IMAGE_SUFFIXES:
            raise InvalidField(
                f"{path.name} is not an image: recipe `{recipe.name}` takes PNG, JPEG, WebP or "
                "TIFF files.",
                field="image",
            )
        limit = self.submitter.max_pixels()
        png = read_image(path, limit)
        job = Job(recipe.request_for(), reference=self._ref(recipe))
        job.controls = self._control_pictures(recipe, path, png)
        if recipe.kind == "rank":
            job.inputs = [png]
        else:
            job.image = png
        if recipe.kind == "inpaint":
            mask = path.with_name(f"{_stem(path)}.mask.png")
            if not mask.is_file() or mask.is_symlink():
                raise InvalidField(
                    f"Recipe `{recipe.name}` inpaints: it needs a mask named {mask.name} next to "
                    f"{path.name} (white = regenerate). Drop the mask first, then the image.",
                    field="mask",
                )
            job.mask = read_image(mask, limit, mode="L")
        return [_Job(job, "", recipe.request.prompt)]

    def _control_pictures(self, recipe: Recipe, path: Path, image: bytes | None) -> list[Image]:
        """One picture per control of the recipe: its sidecar (``<stem>.control.png``, then
        ``<stem>.control-1.png``, ...) when there is one, else the input image itself (a
        sketch dropped into a "follow my sketch" recipe)."""
        pictures: list[Image] = []
        for i, suffix in enumerate(CONTROL_SUFFIXES[: len(recipe.request.controls)]):
            side = path.with_name(f"{_stem(path)}{suffix}")
            if side.is_file() and not side.is_symlink():
                pictures.append(read_image(side, self.submitter.max_pixels()))
            elif image is not None:
                pictures.append(image)
            else:
                raise InvalidField(
                    f"Recipe `{recipe.name}` guides with a ControlNet: drop its picture as "
                    f"{side.name} next to {path.name}.",
                    field=f"controls[{i}]",
                )
        return pictures

    def _ref(self, recipe: Recipe) -> bytes | None:
        ref = recipe.reference_path()
        return read_image(ref, self.submitter.max_pixels()) if ref else None

    def _finish(self, path: Path, entry: Entry, journal: Journal) -> None:
        failed = entry.state == "failed"
        dest_dir = path.parent / (FAILED_DIR if failed else DONE_DIR)
        stem = _stem(path)
        if entry.dest is None:
            suffixes = [path.suffix, *SIDECAR_SUFFIXES, ".error.txt"]
            dest_stem = self.reservations.reserve_dest(dest_dir, stem, suffixes, journal)
            entry.dest = dest_stem + path.suffix
            journal.save(entry)
            self.reservations.release(dest_dir, dest_stem)  # the journal holds it from here
        dest_stem = entry.dest[: -len(path.suffix)] if path.suffix else entry.dest
        if failed:
            note = (entry.error or "The input failed.") + "\n"
            write_atomic(dest_dir / f"{dest_stem}.error.txt", note.encode())
        if os.path.lexists(path) and not entry.matches(path):
            # replaced (say, renamed over) while it was processed: the new file is a new
            # input, and stays in the inbox with its sidecars to be processed in its turn
            journal.remove(path.name)
            return
        for sidecar in SIDECAR_SUFFIXES:
            src = path.with_name(f"{stem}{sidecar}")
            if src.is_file():
                move_durably(src, dest_dir / f"{dest_stem}{sidecar}")
        if os.path.lexists(path):
            move_durably(path, dest_dir / entry.dest)
        journal.remove(path.name)


def _ranked_copies(job: Job, result: Result) -> list[ResultImage]:
    """A rank job returns scores, not images: the outputs are copies of the inputs, scored."""
    scores = {item.get("index"): item.get("score") for item in result.metadata.get("ranking", [])}
    copies = []
    for index, png in enumerate(job.inputs):
        width, height = image_size(to_png(png))
        copies.append(ResultImage(index, width, height, score=scores.get(index), data=png))
    return copies


def _stem(path: Path) -> str:
    return path.name[: -len(path.suffix)] if path.suffix else path.name


def _model_of(jobs: list[_Job], records: list[dict[str, Any]]) -> str | None:
    for record in records:
        model = (record.get("metadata") or {}).get("model")
        if model:
            return str(model)
    return jobs[0].job.request.model if jobs else None


def _explain(path: Path, exc: Exception) -> str:
    code = getattr(exc, "code", "recipe_error" if isinstance(exc, RecipeError) else "error")
    message = getattr(exc, "message", None) or str(exc)
    when = datetime.now().astimezone().isoformat(timespec="seconds")
    return (
        f"brushlink could not process {path.name} (recipe `{path.parent.name}`).\n\n"
        f"Why: {message}\n"
        f"Error code: {code}\n"
        f"When: {when}\n\n"
        "The file was moved here unchanged. Fix the problem and drop it into the recipe folder "
        "again."
    )
