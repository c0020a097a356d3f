"""Operators that work from the camera's view: Project from View, Restyle Render, and Refresh
(what the server offers, for the panel's lists).

Both jobs ask the server what it offers first (``WORKER.welcome``: the shared connection's
greeting, connecting if needed) to choose the checkpoint and the depth ControlNet
(``guidance.py``), then render the depth pass (``views.py``) on the main thread, then send.
``build_projection`` and ``build_restyle`` return the job and its placement without sending
anything, so a script (or a test) can look at exactly what would go to the server.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np

from brushlink.plugin.request import Control, Job, Request

from . import guidance, images, views
from .bake import Camera
from .operators import JobOperator, Refusal
from .placement import Style
from .projection import Projection, ProjectionSettings, Target
from .settings import Settings, keywords
from .worker import WORKER, Placement

DEPTH_LONG_SIDE = 1024  # a render's depth control at most this long (the server resizes it)
DEPTH_TOLERANCE = 0.02  # of the selected objects' depth range: nearer than that is "seen"


def _targets(context: Any, settings: Settings) -> list[bpy.types.Object]:
    named = settings.datablock("object", bpy.data.objects)
    found = [named] if named else [o for o in context.selected_objects if o.type == "MESH"]
    if not found or any(o.type != "MESH" for o in found):
        raise Refusal("Select the mesh objects (or, in Edit Mode, the faces) to project onto.")
    return found


def _target(obj: bpy.types.Object) -> Target:
    uv = obj.data.uv_layers.active
    if uv is None:
        raise Refusal(f"“{obj.name}” has no UV map to bake into: unwrap it first (UV > Unwrap).")
    faces = None
    if obj.mode == "EDIT":
        obj.update_from_editmode()
        faces = np.zeros(len(obj.data.polygons), bool)
        obj.data.polygons.foreach_get("select", faces)
        if not faces.any():
            raise Refusal(f"No face of “{obj.name}” is selected: select the faces to paint.")
    return Target(obj.name, faces, uv.name)


def _control(welcome: Any, settings: Settings, kind: str) -> guidance.Guidance:
    try:
        return guidance.choose(welcome, kind, settings.model.strip(), settings.controlnet.strip())
    except guidance.NoGuidance as exc:
        raise Refusal(str(exc)) from exc


def build_projection(context: Any, settings: Settings) -> tuple[Job, Placement]:
    scene = context.scene
    camera = scene.camera
    if camera is None:
        raise Refusal("The scene has no camera: add one and make it the active camera.")
    objects = _targets(context, settings)
    targets = [_target(obj) for obj in objects]
    prompt = settings.prompt.strip()
    if not prompt:
        raise Refusal("Type what the texture should show in the Prompt field.")
    seed = settings.seed()
    welcome = WORKER.welcome()
    chosen = _control(welcome, settings, "generate")
    if chosen.controlnet is None:
        raise Refusal(guidance.missing(welcome, settings.model.strip()))
    size = views.view_size(scene, settings.project_size)
    depth = views.render_depth(scene, camera, size)
    span = views.depth_range(views.render_depth(scene, camera, size, only=objects))
    if span is None:
        raise Refusal("The selected objects are not in the camera's view.")
    near, far = span
    clip, view, projection = views.camera_matrices(camera, size)
    orthographic = camera.data.type == "ORTHO"
    pixel = 2.0 / (abs(projection[0, 0]) * size[0])  # per unit of depth (perspective)
    slack = DEPTH_TOLERANCE * (far - near) + 1e-4
    tolerance = (slack + 3 * pixel, 0.0) if orthographic else (slack, 3 * pixel)
    view_camera = Camera(
        size=size,
        clip=clip,
        view=view,
        position=np.array(camera.matrix_world.translation, np.float64),
        orthographic=orthographic,
        depth=depth,
        tolerance=tolerance,
    )
    request = Request(
        kind="generate",
        prompt=prompt,
        negative_prompt=settings.negative_prompt.strip(),
        model=chosen.model,
        width=size[0],
        height=size[1],
        seed=seed,
        steps=settings.steps or None,
        controls=[
            Control(
                model=chosen.controlnet,
                image=0,
                preprocessor="depth",
                strength=settings.control_strength,
            )
        ],
    )
    job = Job(request, controls=[views.depth_png(views.normalise(depth, near, far))])
    made_with = {
        "prompt": prompt,
        "negative_prompt": request.negative_prompt,
        "controlnet": chosen.controlnet,
        "control_strength": float(settings.control_strength),
        "steps": request.steps or 0,
    }
    kept = ProjectionSettings(settings.bake_size, settings.seam_blend, made_with)
    return job, Projection(request, view_camera, targets, kept)


def build_restyle(
    scene: bpy.types.Scene, settings: Settings, image: bpy.types.Image | None = None
) -> tuple[Job, Placement]:
    """Restyle ``image``, or the scene's last render (with its depth as a control when a
    ControlNet fits), by the prompt and strength, into a new image of the same size."""
    prompt = settings.prompt.strip()
    if not prompt:
        raise Refusal("Describe the new look in the Prompt field.")
    seed = settings.seed()
    source = image if image is not None else views.render_result()
    if source is None:
        raise Refusal("There is no render yet: render an image first (F12).")
    from_render = source.type == "RENDER_RESULT"
    png = views.render_png(scene) if from_render else None
    request = Request(kind="style", prompt=prompt, strength=settings.strength, seed=seed)
    note = ""
    controls: list[bytes] = []
    welcome = WORKER.welcome()
    chosen = _control(welcome, settings, "style")
    request.model = chosen.model or settings.model.strip() or None
    if png is not None and chosen.controlnet is not None and scene.camera is not None:
        width, height = _png_size(png)
        scale = min(1.0, DEPTH_LONG_SIDE / max(width, height))
        size = (max(8, round(width * scale)), max(8, round(height * scale)))
        depth = views.render_depth(scene, scene.camera, size)
        span = views.depth_range(depth)
        if span is not None:
            controls.append(views.depth_png(views.normalise(depth, *span)))
            request.controls = [Control(chosen.controlnet, 0, "depth", settings.control_strength)]
            note = f" (depth through “{chosen.controlnet}”)"
    elif from_render:
        note = " (no depth ControlNet installed: restyled from the render alone)"
    if png is None:
        png = images.image_png(source)
    job = Job(request, image=png, controls=controls)
    return job, Style(source, prompt[:30], note=note)


def _png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header (IHDR is always the first chunk)."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


_PROJECT = {
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "steps": "steps",
    "model": "texture_model",
    "controlnet": "controlnet",
    "control_strength": "control_strength",
    "project_size": "project_size",
    "bake_size": "bake_size",
    "seam_blend": "seam_blend",
}


@keywords(_PROJECT, named=("object",), seed=True)
class BRUSHLINK_OT_project_from_view(JobOperator, bpy.types.Operator):
    """Generate a texture for the camera's view, guided by its depth, and bake it onto the
    selected objects (or faces)"""

    bl_idname = "brushlink.project_from_view"
    bl_label = "Project from View"
    bl_options = {"REGISTER"}
    label = "Project from view"

    @staticmethod
    def build(context: bpy.types.Context, settings: Settings) -> tuple[Job, Placement]:
        return build_projection(context, settings)


_RESTYLE = {
    "prompt": "style_prompt",
    "strength": "strength",
    "model": "style_model",
    "controlnet": "controlnet",
    "control_strength": "control_strength",
}


@keywords(_RESTYLE, named=("image",), seed=True)
class BRUSHLINK_OT_restyle_render(JobOperator, bpy.types.Operator):
    """Restyle the last render (or the named image) by the prompt, guided by the render's depth
    when a depth ControlNet is installed"""

    bl_idname = "brushlink.restyle_render"
    bl_label = "Restyle Render"
    bl_options = {"REGISTER"}
    label = "Restyle"

    @staticmethod
    def build(context: bpy.types.Context, settings: Settings) -> tuple[Job, Placement]:
        image = settings.datablock("image", bpy.data.images)
        return build_restyle(context.scene, settings, image)


class BRUSHLINK_OT_refresh(bpy.types.Operator):
    """Ask the server again what it offers (models, ControlNets), for the panel's lists"""

    bl_idname = "brushlink.refresh"
    bl_label = "Refresh"

    def execute(self, context: bpy.types.Context) -> set[str]:
        from brushlink.plugin.errors import BrushlinkError

        try:
            welcome = WORKER.welcome(fresh=True)
        except BrushlinkError as exc:
            self.report({"ERROR"}, f"Refresh failed ({exc.code}): {exc.message}")
            return {"CANCELLED"}
        wm = context.window_manager
        for collection, found in (
            (wm.brushlink_models, [(m.name, m.family) for m in welcome.models]),
            (
                wm.brushlink_controlnets,
                [(a.name, a.family) for a in welcome.addons if a.type == "controlnet"],
            ),
        ):
            collection.clear()
            for name, family in found:
                item = collection.add()
                item.name, item.family = name, family
        self.report(
            {"INFO"},
            f"{len(wm.brushlink_models)} model(s), {len(wm.brushlink_controlnets)} ControlNet(s).",
        )
        return {"FINISHED"}


CLASSES = (BRUSHLINK_OT_project_from_view, BRUSHLINK_OT_restyle_render, BRUSHLINK_OT_refresh)
