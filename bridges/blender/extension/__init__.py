"""brushlink for Blender: texture fills into materials, textures projected from the camera's
view, image inpainting, restyling of images and renders.

Host glue only: requests are built here and placed back into Blender; the client core
(``brushlink.plugin``) and ``websockets`` come from the pure-Python wheels in ``./wheels/``.
"""

from __future__ import annotations

import bpy

from . import operators, panels, preferences, properties, restyle, view_operators
from .worker import WORKER

_CLASSES = (
    *preferences.CLASSES,
    *properties.CLASSES,
    *operators.CLASSES,
    *view_operators.CLASSES,
    *panels.CLASSES,
)


def register() -> None:
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    properties.register()
    restyle.register()


def unregister() -> None:
    restyle.unregister()
    WORKER.close()
    properties.unregister()
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
