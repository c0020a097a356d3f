"""Where checkpoints live, how names resolve to files, and which pipelines stay loaded.

A model is a single ``.safetensors`` file (named by its file name without the extension) or a
diffusers folder (named by the folder's name) in one of the checkpoint folders. Names resolve
strictly inside those folders: no path separators, no ``..``, no symlink that leads out.
Pickled checkpoints are never loaded.

``ModelStore`` keeps loaded pipelines warm and evicts the least recently used ones against a
memory budget. The txt2img, img2img and inpaint pipelines of one checkpoint share their
components through ``from_pipe``, so a checkpoint is in memory once whatever the job.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brushlink.plugin.errors import BrushlinkError, EngineError, UnknownModel, Unsupported

from ..kit import model_files
from .loading import Detected, detect_folder, detect_single_file, load_pipeline

log = logging.getLogger(__name__)

TASKS = ("txt2img", "img2img", "inpaint")


@dataclass(frozen=True)
class Checkpoint:
    name: str
    path: Path
    detected: Detected
    size_bytes: int


def checkpoint_dirs(model_roots: list[Path]) -> list[Path]:
    """The checkpoint folders of each model root (``checkpoints/``, A1111's
    ``Stable-diffusion/``), plus roots given as plain checkpoint folders."""
    found = model_files.folders(model_roots, "checkpoint")
    found += [root for root in model_roots if root.is_dir() and root not in found]
    return found


class ModelFolders:
    """Discovers checkpoints in a list of folders; cheap (reads headers, never weights)."""

    def __init__(self, dirs: list[Path]) -> None:
        self.dirs = [Path(d) for d in dirs]
        self._cache: dict[tuple[Path, float], Detected | None] = {}

    def _probe(self, path: Path) -> Detected | None:
        try:
            key = (path, path.stat().st_mtime)
        except OSError:
            return None
        if key not in self._cache:
            try:
                if path.is_dir():
                    self._cache[key] = detect_folder(path)
                else:
                    self._cache[key] = detect_single_file(path)
            except Exception as exc:  # not a Stable Diffusion model: not listed
                log.debug("skipping %s: %s", path, exc)
                self._cache[key] = None
        return self._cache[key]

    def _entry(self, folder: Path, path: Path) -> Checkpoint | None:
        if not model_files.inside(path, folder) or path.name.startswith("."):
            return None
        if path.is_dir():
            if not (path / "model_index.json").is_file() or path.name.endswith(".config"):
                return None
            name = path.name
        elif path.suffix.lower() == ".safetensors":
            name = path.stem
        else:
            return None
        detected = self._probe(path)
        if detected is None:
            return None
        size = model_files.ModelFile("checkpoint", name, path, folder).size_bytes
        return Checkpoint(name, path, detected, size)

    def list(self) -> list[Checkpoint]:
        seen: dict[str, Checkpoint] = {}
        for folder in self.dirs:
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                entry = self._entry(folder, path)
                if entry is not None and entry.name not in seen:
                    seen[entry.name] = entry
        return list(seen.values())

    def resolve(self, name: str) -> Checkpoint:
        """The checkpoint called ``name``, or a clear error saying why there is none."""
        model_files.check_name(name)
        for folder in self.dirs:
            for candidate in (folder / name, folder / f"{name}.safetensors"):
                if not (candidate.exists() or candidate.is_symlink()):
                    continue
                if not model_files.inside(candidate, folder):
                    raise Unsupported(
                        f"`{name}` is a link that leads outside the model folder `{folder}`; "
                        "brushlink only loads models that live inside its model folders "
                        "(add the other folder with `--models`).",
                        field="model",
                    )
                entry = self._entry(folder, candidate)
                if entry is not None:
                    return entry
            for suffix in model_files.PICKLE_SUFFIXES:
                pickled = folder / f"{name}{suffix}"
                if pickled.exists():
                    raise Unsupported(
                        f"`{pickled.name}` is a pickled checkpoint; pickles can run code when "
                        "loaded, so brushlink only loads `.safetensors` files. Convert it to "
                        ".safetensors first.",
                        field="model",
                    )
        raise UnknownModel(f"There is no checkpoint called `{name[:80]}`.", field="model")


def default_budget(device: str) -> int | None:
    """Most of the device: 90 % of GPU memory, or half of the machine's RAM for the CPU."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory * 0.9)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.5)
    except (ValueError, OSError, AttributeError):
        return None


def parse_size(text: str | int | None) -> int | None:
    """'8G', '512MiB', '2.5GB' or a byte count -> bytes; None stays None (no limit)."""
    if text is None or isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)(i?B)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ValueError(f"not a memory size: {text!r} (use e.g. 8G or 512M)")
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[match.group(2).upper()]
    return int(float(match.group(1)) * scale)


def pipeline_bytes(pipe: Any) -> int:
    """Bytes held by a pipeline's weights (shared components counted once)."""
    import torch

    seen: set[int] = set()
    total = 0
    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            for tensor in [*module.parameters(), *module.buffers()]:
                if id(tensor) not in seen:
                    seen.add(id(tensor))
                    total += tensor.numel() * tensor.element_size()
    return total


@dataclass
class _Loaded:
    checkpoint: Checkpoint
    pipes: dict[str, Any] = field(default_factory=dict)  # task -> pipeline sharing components
    size_bytes: int = 0


class ModelStore:
    """Warm pipelines, least recently used evicted first when over ``budget_bytes``.

    ``prepare`` is called once on every freshly loaded base pipeline (device move, dtype,
    attention settings); derived pipelines share its modules.
    """

    def __init__(
        self,
        budget_bytes: int | None = None,
        *,
        dtype: Any = None,
        prepare: Callable[[Any], Any] | None = None,
        loader: Callable[[Path, Any], Any] = load_pipeline,
    ) -> None:
        self.budget_bytes = budget_bytes
        self.dtype = dtype
        self._prepare = prepare
        self._loader = loader
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # how many times weights were read from disk (a warm model never reloads)

    def loaded_names(self) -> list[str]:
        """Least recently used first."""
        return list(self._loaded)

    def get(self, checkpoint: Checkpoint, task: str = "txt2img") -> Any:
        if task not in TASKS:
            raise ValueError(task)
        with self._lock:
            entry = self._loaded.get(checkpoint.name)
            if entry is None or entry.checkpoint.path != checkpoint.path:
                entry = self._load(checkpoint)
            self._loaded.move_to_end(checkpoint.name)
            if task not in entry.pipes:
                entry.pipes[task] = _derive(entry.pipes["txt2img"], task, checkpoint)
            return entry.pipes[task]

    def _load(self, checkpoint: Checkpoint) -> _Loaded:
        self.evict(checkpoint.name)
        self._make_room(checkpoint.size_bytes)
        from .memory import OOM_ERRORS

        passthrough: tuple[type[BaseException], ...] = (BrushlinkError, *OOM_ERRORS)
        try:
            pipe = self._loader(checkpoint.path, self.dtype)
        except passthrough:
            raise
        except Exception as exc:
            raise EngineError(f"Could not load `{checkpoint.name}`: {exc}") from exc
        if self._prepare is not None:
            pipe = self._prepare(pipe) or pipe
        self.loads += 1
        entry = _Loaded(checkpoint, {"txt2img": pipe}, pipeline_bytes(pipe))
        self._loaded[checkpoint.name] = entry
        self._make_room(0)
        return entry

    def _make_room(self, incoming: int) -> None:
        """Evict least recently used pipelines until ``incoming`` more bytes fit."""
        if self.budget_bytes is None:
            return
        # The newest entry stays even alone over budget: the job that needs it has to run.
        while len(self._loaded) > (0 if incoming else 1):
            used = sum(e.size_bytes for e in self._loaded.values())
            if used + incoming <= self.budget_bytes:
                return
            name = next(iter(self._loaded))
            log.info("evicting %s to stay within the memory budget", name)
            self._drop(name)

    def evict(self, name: str | None = None) -> None:
        """Drop one pipeline (or all) and give its memory back."""
        for key in [name] if name is not None else list(self._loaded):
            if key in self._loaded:
                self._drop(key)

    def _drop(self, name: str) -> None:
        from .memory import free_caches

        self._loaded.pop(name, None)
        free_caches()


def _derive(base: Any, task: str, checkpoint: Checkpoint) -> Any:
    """img2img / inpaint pipelines built from the loaded txt2img one, sharing every module."""
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

    if task == "txt2img":
        return base
    cls = AutoPipelineForImage2Image if task == "img2img" else AutoPipelineForInpainting
    try:
        pipe = cls.from_pipe(base)
    except Exception as exc:
        raise Unsupported(
            f"`{checkpoint.name}` cannot run {task} pipelines: {exc}", field="model"
        ) from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe
