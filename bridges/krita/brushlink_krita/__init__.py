"""brushlink for Krita: generate, inpaint and restyle selections with a brushlink server.

Krita loads this package as a Python plugin (brushlink.desktop); it registers the docker and
a menu action. Scripts use the blocking API: ``brushlink_krita.inpaint("a red balloon")``.
"""

from __future__ import annotations

from . import runner
from .api import apply, connection, discard, generate, inpaint, models, run, start, style
from .options import KritaJob

__all__ = [
    "KritaJob",
    "apply",
    "connection",
    "discard",
    "generate",
    "inpaint",
    "models",
    "run",
    "shutdown",
    "start",
    "style",
]


def shutdown() -> None:
    """Close the connections to servers (connected to Krita's applicationClosing)."""
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
