"""``bpy.ops.brushlink.*``: build a request from the scene's settings and hand it to the worker.

Operators check what they can before anything leaves Blender (a prompt, an object, a mask) and
report in the status bar. In the UI they return at once and the job reports when it ends; in
background mode they block, so a script sees ``{'FINISHED'}`` with the result in place, or an
error report (which ``bpy.ops`` raises as ``RuntimeError`` in scripts).
"""

from __future__ import annotations

import contextlib

import bpy
import numpy as np

from brushlink.plugin.request import InpaintParams, Job, Request

from . import images, materials, placement
from .worker import WORKER, Outcome, Placement


def _props(context: bpy.types.Context):
    return context.scene.brushlink


def _report_later(outcome: Outcome) -> None:
    """Main thread, from the timer: the operator is gone, so an internal one reports."""
    # An ERROR report is also raised to Python; it is in the status bar already.
    with contextlib.suppress(RuntimeError):
        bpy.ops.brushlink.report(level=outcome.level, message=outcome.message)


def _launch(
    op: bpy.types.Operator, context: bpy.types.Context, job: Job, where: Placement
) -> set[str]:
    outcome = WORKER.start(job, where, _report_later, context.scene)
    if outcome is None:  # running on a worker thread; it reports when it ends
        op.report({"INFO"}, f"{where.label} started.")
        return {"FINISHED"}
    op.report({outcome.level}, outcome.message)
    return {"FINISHED"} if outcome.level == "INFO" else {"CANCELLED"}


def context_image(context: bpy.types.Context) -> bpy.types.Image | None:
    """The Image Editor's image, the Shader Editor's active image node, else the scene setting."""
    space = context.space_data
    if space is not None and space.type == "IMAGE_EDITOR" and space.image is not None:
        return space.image
    if space is not None and space.type == "NODE_EDITOR":
        node = context.active_node
        if node is not None and node.type == "TEX_IMAGE" and node.image is not None:
            return node.image
    return _props(context).source_image


class BRUSHLINK_OT_texture_fill(bpy.types.Operator):
    """Generate a texture from the prompt and wire it into the active object's material"""

    bl_idname = "brushlink.texture_fill"
    bl_label = "Texture Fill"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        props = _props(context)
        obj = context.active_object
        if not materials.can_hold_material(obj):
            self.report({"ERROR"}, "Select an object that can have a material (e.g. a mesh).")
            return {"CANCELLED"}
        prompt = props.prompt.strip()
        if not prompt:
            self.report({"ERROR"}, "Type what the texture should show in the Prompt field.")
            return {"CANCELLED"}
        try:
            seed = placement.parse_seed(props.seed)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        request = Request(
            kind="generate",
            prompt=prompt,
            negative_prompt=props.negative_prompt.strip(),
            model=props.texture_model.strip() or None,
            width=props.width,
            height=props.height,
            seed=seed,
            steps=props.steps or None,
            candidates=props.candidates,
            keep=1,
            tile="xy" if props.seamless else "none",
        )
        where = placement.TextureFill(obj, request, props.width, props.height, props.derived_maps)
        return _launch(self, context, Job(request), where)


class BRUSHLINK_OT_inpaint_image(bpy.types.Operator):
    """Regenerate the masked region of the image: its transparent pixels or the mask image"""

    bl_idname = "brushlink.inpaint_image"
    bl_label = "Inpaint Image"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        props = _props(context)
        image = context_image(context)
        if image is None:
            self.report({"ERROR"}, "Open an image in the Image Editor or choose one in the panel.")
            return {"CANCELLED"}
        try:
            original = images.read_rgba(image)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        height, width = original.shape[:2]
        if props.mask_image is not None:
            mask_rgba = images.read_rgba(props.mask_image)
            if mask_rgba.shape[:2] != (height, width):
                self.report(
                    {"ERROR"},
                    f"The mask “{props.mask_image.name}” is {mask_rgba.shape[1]}×"
                    f"{mask_rgba.shape[0]}; the image is {width}×{height}.",
                )
                return {"CANCELLED"}
            mask = mask_rgba[..., :3].mean(axis=2) * mask_rgba[..., 3]
        else:
            mask = 1.0 - original[..., 3]
        mask = np.clip(mask, 0.0, 1.0).astype(np.float32)
        if not (mask > 0).any():
            self.report(
                {"ERROR"},
                "Nothing to inpaint: erase the region with an Erase Alpha brush, "
                "or choose a mask image (white = regenerate).",
            )
            return {"CANCELLED"}
        # the server grows and feathers the mask, and answers with the new pixels and their
        # blend weight as alpha, so unmasked pixels keep their own (float) values here
        request = Request(
            kind="inpaint",
            prompt=props.inpaint_prompt.strip(),
            model=props.inpaint_model.strip() or None,
            inpaint=InpaintParams(output="layer"),
        )
        opaque = original.copy()
        opaque[..., 3] = 1.0
        job = Job(request, image=images.array_png(opaque), mask=images.mask_png(mask))
        where = placement.Inpaint(image, original, mask)
        return _launch(self, context, job, where)


class BRUSHLINK_OT_revert_inpaint(bpy.types.Operator):
    """Put back the pixels from before the last inpaint of this image"""

    bl_idname = "brushlink.revert_inpaint"
    bl_label = "Revert Inpaint"

    def execute(self, context: bpy.types.Context) -> set[str]:
        image = context_image(context)
        if image is None or not placement.revert_inpaint(image):
            self.report({"WARNING"}, "No inpaint of this image to revert.")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Reverted the last inpaint of “{image.name}”.")
        return {"FINISHED"}


class BRUSHLINK_OT_style_image(bpy.types.Operator):
    """Restyle the image into a new image: by style name, by prompt, or like a reference image"""

    bl_idname = "brushlink.style_image"
    bl_label = "Restyle Image"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        props = _props(context)
        image = context_image(context)
        if image is None:
            self.report({"ERROR"}, "Open an image in the Image Editor or choose one in the panel.")
            return {"CANCELLED"}
        request = Request(kind="style", model=props.style_model.strip() or None)
        reference = None
        if props.style_mode == "NAMED":
            request.style = props.style.strip() or None
            if request.style is None:
                self.report({"ERROR"}, "Type a style name (e.g. sketch, watercolor).")
                return {"CANCELLED"}
            look = request.style
        elif props.style_mode == "PROMPT":
            request.prompt = props.style_prompt.strip()
            request.strength = props.strength
            if not request.prompt:
                self.report({"ERROR"}, "Describe the new look in the Prompt field.")
                return {"CANCELLED"}
            look = request.prompt[:30]
        else:
            if props.reference_image is None:
                self.report({"ERROR"}, "Choose a reference image.")
                return {"CANCELLED"}
            reference = images.image_png(props.reference_image)
            look = f"like {props.reference_image.name}"
        try:
            source = images.image_png(image)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        job = Job(request, image=source, reference=reference)
        return _launch(self, context, job, placement.Style(image, look))


class BRUSHLINK_OT_cancel(bpy.types.Operator):
    """Stop the running brushlink jobs"""

    bl_idname = "brushlink.cancel"
    bl_label = "Cancel"

    def execute(self, context: bpy.types.Context) -> set[str]:
        count = WORKER.cancel()
        if not count:
            self.report({"INFO"}, "No brushlink job is running.")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Cancelled {count} job(s).")
        return {"FINISHED"}


class BRUSHLINK_OT_report(bpy.types.Operator):
    """Show a finished job's message in the status bar"""

    bl_idname = "brushlink.report"
    bl_label = "brushlink Report"
    bl_options = {"INTERNAL"}

    level: bpy.props.EnumProperty(  # type: ignore[valid-type]
        items=[(x, x.title(), "") for x in ("INFO", "WARNING", "ERROR")], default="INFO"
    )
    message: bpy.props.StringProperty()  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> set[str]:
        self.report({self.level}, self.message)
        return {"FINISHED"}


CLASSES = (
    BRUSHLINK_OT_texture_fill,
    BRUSHLINK_OT_inpaint_image,
    BRUSHLINK_OT_revert_inpaint,
    BRUSHLINK_OT_style_image,
    BRUSHLINK_OT_cancel,
    BRUSHLINK_OT_report,
)
