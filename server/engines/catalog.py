"""Which engines a server runs, built from its config. Construction is cheap: engines load
weights lazily on their first job, so `brushlink serve` is ready in a second."""

from __future__ import annotations

import importlib

from ..config import ServerConfig
from .base import Engine
from .registry import EngineRegistry

# (module, class): a class with ``from_config(config, device, built)`` is built from the
# config and the engines built before it; others take no arguments.
ENGINES = [
    ("rank.engine", "RankEngine"),  # before diffusers, which ranks its candidates with it
    ("diffusers.engine", "DiffusersEngine"),
    ("upscale.engine", "UpscaleEngine"),  # after diffusers, which redraws its refine pass
    ("builtin.engine", "BuiltinEngine"),  # the model shipped in the package
    ("fill.engine", "FillEngine"),
    ("filters.engine", "FiltersEngine"),
]


def build_engines(config: ServerConfig, device: str) -> list[Engine]:
    engines: list[Engine] = []
    for module_name, class_name in ENGINES:
        module = importlib.import_module(f"{__package__}.{module_name}")
        cls = getattr(module, class_name)
        factory = getattr(cls, "from_config", None)
        engines.append(factory(config, device, engines) if factory else cls())
    return engines


def build_registry(config: ServerConfig, device: str) -> EngineRegistry:
    return EngineRegistry(build_engines(config, device), defaults=config.default_models)


def pick_device(requested: str) -> str:
    """auto -> cuda if a GPU is usable, else mps on Apple silicon, else cpu."""
    if requested != "auto":
        return requested
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"
