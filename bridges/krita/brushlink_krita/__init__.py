"""brushlink for Krita: generate, inpaint, restyle and upscale selections with a brushlink
server, guided by control layers, with live painting and a history of results.

Krita loads this package as a Python plugin (brushlink.desktop); it registers the docker and
a menu action. Scripts use the blocking API: ``brushlink_krita.inpaint("a red balloon")``.
"""

from __future__ import annotations

from . import runner
from .api import (
    apply,
    apply_again,
    connection,
    discard,
    generate,
    inpaint,
    live,
    models,
    results,
    run,
    start,
    style,
    upscale,
)
from .options import ControlLayer, KritaJob

__all__ = [
    "ControlLayer",
    "KritaJob",
    "apply",
    "apply_again",
    "connection",
    "discard",
    "generate",
    "inpaint",
    "live",
    "models",
    "results",
    "run",
    "shutdown",
    "start",
    "style",
    "upscale",
]


def shutdown() -> None:
    """Stop live painting and close the connections to servers (connected to Krita's
    applicationClosing)."""
    from .live import stop_all

    stop_all()
    runner.close_all()


def _register() -> None:
    from krita import DockWidgetFactory, DockWidgetFactoryBase, Krita

    from .docker import BrushlinkDocker
    from .extension import BrushlinkExtension

    app = Krita.instance()
    app.notifier().applicationClosing.connect(shutdown)
    app.addExtension(BrushlinkExtension(app))
    app.addDockWidgetFactory(
        DockWidgetFactory("brushlink_docker", DockWidgetFactoryBase.DockRight, BrushlinkDocker)
    )


_register()
