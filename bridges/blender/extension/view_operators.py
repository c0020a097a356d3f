"""Operators that work from the camera's view: Project from View, and Refresh (what the server
offers, for the panel's lists).

Project from View asks the server what it offers first (``WORKER.welcome``: the shared
connection's greeting, connecting if needed) to choose the checkpoint and the depth ControlNet
(``guidance.py``), then renders the depth pass (``views.py``) on the main thread, then sends.
``build_projection`` returns the job and its placement without sending anything, so a script
(or a test) can look at exactly what would go to the server.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np

from brushlink.plugin.request import Control, Job, Request

from . import guidance, views
from .bake import Camera
from .operators import JobOperator, Refusal
from .projection import Projection, ProjectionSettings, Target
from .settings import Settings, keywords
from .worker import WORKER, Placement

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


CLASSES = (BRUSHLINK_OT_project_from_view, BRUSHLINK_OT_refresh)
