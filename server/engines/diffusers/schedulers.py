"""The samplers a request may name, and swapping one in for a single call of a shared pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# Scheduler names a request may use -> (diffusers class name, extra config).
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}


@contextmanager
def use_scheduler(pipe: Any, name: str | None) -> Iterator[None]:
    """Use the requested scheduler for one call; the checkpoint's own one otherwise."""
    default = pipe.scheduler
    if name is not None:
        import diffusers

        cls_name, extra = SCHEDULERS[name]
        pipe.scheduler = getattr(diffusers, cls_name).from_config(default.config, **extra)
    try:
        yield
    finally:
        pipe.scheduler = default
