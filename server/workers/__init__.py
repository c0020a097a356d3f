"""Where jobs run: local workers (one per device, or ``--workers N`` on the CPU) or Ray actors
across a cluster (``--ray``). The scheduler sees them all through ``base.Worker``."""

from __future__ import annotations

from ..config import ServerConfig
from ..engines.registry import EngineRegistry
from .base import Pool


class ClusterUnavailable(RuntimeError):
    """``--ray`` was asked for but Ray is not installed, or the cluster cannot be reached."""


def make_pool(config: ServerConfig, registry: EngineRegistry, device: str) -> Pool:
    """Ray actors when ``config.ray`` names a cluster (Ray is imported only then), else local
    workers."""
    if config.ray:
        try:
            from .ray_pool import RayPool
        except ImportError as exc:
            raise ClusterUnavailable(
                "`--ray` runs engines on a Ray cluster, and Ray is not installed here: "
                "pip install 'brushlink[cluster]'"
            ) from exc
        return RayPool(config)
    from .local import local_pool

    return local_pool(config, registry, device)
