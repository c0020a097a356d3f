"""Out of device memory: free caches, retry once with lower-memory settings, else fail clearly."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from brushlink.plugin.errors import OutOfMemory

log = logging.getLogger(__name__)
T = TypeVar("T")

# torch.OutOfMemoryError is the device-neutral name (CUDA's error is a subclass of it).
OOM_ERRORS: tuple[type[BaseException], ...] = (
    getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),
    torch.cuda.OutOfMemoryError,
)


# The CPU allocator reports exhaustion as a plain RuntimeError with one of these phrases.
_CPU_OOM_PHRASES = ("can't allocate memory", "not enough memory", "out of memory")


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, OOM_ERRORS):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(p in text for p in _CPU_OOM_PHRASES)


def free_caches() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def low_memory_settings(pipe: Any) -> list[str]:
    """Switch ``pipe`` to its lowest-memory settings; returns what was switched on."""
    applied = []
    vae = getattr(pipe, "vae", None)
    if vae is not None and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
        applied.append("vae tiling")
    if hasattr(pipe, "enable_attention_slicing"):
        pipe.enable_attention_slicing("max")
        applied.append("attention slicing")
    device = getattr(pipe, "device", torch.device("cpu"))
    if device.type == "cuda" and hasattr(pipe, "enable_model_cpu_offload"):
        try:
            pipe.enable_model_cpu_offload(device=device)  # its own GPU, not the first
            applied.append("cpu offload")
        except Exception as exc:  # needs `accelerate`; the other two settings still help
            log.info("cpu offload unavailable: %s", exc)
    return applied


def normal_settings(pipe: Any) -> None:
    """Undo ``low_memory_settings`` for the next job (offload stays: it moved the modules)."""
    vae = getattr(pipe, "vae", None)
    if vae is not None and hasattr(vae, "disable_tiling"):
        vae.disable_tiling()
    if hasattr(pipe, "disable_attention_slicing"):
        pipe.disable_attention_slicing()


def run_with_oom_retry(pipe: Any, call: Callable[[], T]) -> T:
    """``call()``; on out-of-memory free caches and retry once in low-memory mode."""
    try:
        return call()
    except RuntimeError as exc:  # torch's OutOfMemoryError is a RuntimeError too
        if not is_oom(exc):
            raise
        log.warning("out of memory (%s); retrying with lower-memory settings", exc)
    free_caches()
    applied = low_memory_settings(pipe)
    try:
        return call()
    except RuntimeError as exc:
        if not is_oom(exc):
            raise
        free_caches()
        raise OutOfMemory(
            "Not enough device memory for this job, even after retrying with "
            f"{', '.join(applied) or 'lower-memory settings'}. Try a smaller size, fewer "
            "candidates, or close other programs using the GPU."
        ) from exc
    finally:
        normal_settings(pipe)
        free_caches()
