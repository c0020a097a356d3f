"""``bpy.ops.brushlink.*``: build a request and hand it to the worker.

Each operator takes its settings as keyword arguments and falls back to the scene's settings
(``settings.py``): ``bpy.ops.brushlink.texture_fill(prompt="mossy stone", seed=7)`` works as
Blender's own operators do and leaves the panel's fields as they were. Operators check what
they can before anything leaves Blender (a prompt, an object, a mask) and report in the status
bar. In the UI they return at once and the job reports when it ends; in background mode they
block, so a script sees ``{'FINISHED'}`` with the result in place, or an error report (which
``bpy.ops`` raises as ``RuntimeError`` in scripts).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import bpy
import numpy as np

from brushlink.plugin.errors import BrushlinkError
from brushlink.plugin.request import InpaintParams, Job, Request

from . import images, materials, placement
from .settings import Settings, keywords
from .worker import WORKER, Outcome, Placement


def _props(context: bpy.types.Context):
    return context.scene.brushlink


class Refusal(ValueError):
    """A problem found before sending: reported as it is, nothing changed."""


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


Builder = Callable[[bpy.types.Context, Settings], tuple[Job, Placement]]


class JobOperator:
    """An operator that builds one job from its settings and runs it."""

    label = "Job"

    @staticmethod
    def build(context: bpy.types.Context, settings: Settings) -> tuple[Job, Placement]:
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> set[str]:
        op: Any = self
        try:
            job, where = self.build(context, Settings(op, context))
        except ValueError as exc:  # Refusal, a seed or a name that is wrong
            op.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except BrushlinkError as exc:  # asking the server (what it offers) failed
            op.report({"ERROR"}, f"{self.label} failed ({exc.code}): {exc.message}")
            return {"CANCELLED"}
        except RuntimeError as exc:  # Blender could not render the depth pass
            op.report({"ERROR"}, f"{self.label} failed: {exc}")
            return {"CANCELLED"}
        return _launch(op, context, job, where)


def context_image(
    context: bpy.types.Context, settings: Settings | None = None
) -> bpy.types.Image | None:
    """The ``image`` keyword, the Image Editor's image, the Shader Editor's active image node,
    else the scene setting."""
    if settings is not None and (named := settings.datablock("image", bpy.data.images)):
        return named
    space = context.space_data
    if space is not None and space.type == "IMAGE_EDITOR" and space.image is not None:
        return space.image
    if space is not None and space.type == "NODE_EDITOR":
        node = context.active_node
        if node is not None and node.type == "TEX_IMAGE" and node.image is not None:
            return node.image
    return _props(context).source_image


@keywords(
    {
        "prompt": "prompt",
        "negative_prompt": "negative_prompt",
        "width": "width",
        "height": "height",
        "candidates": "candidates",
        "steps": "steps",
        "seamless": "seamless",
        "derived_maps": "derived_maps",
        "model": "texture_model",
    },
    named=("object",),
    seed=True,
)
class BRUSHLINK_OT_texture_fill(JobOperator, bpy.types.Operator):
    """Generate a texture from the prompt and wire it into the active object's material"""

    bl_idname = "brushlink.texture_fill"
    bl_label = "Texture Fill"
    bl_options = {"REGISTER"}
    label = "Texture fill"

    @staticmethod
    def build(context: bpy.types.Context, settings: Settings) -> tuple[Job, Placement]:
        return build_texture_fill(context, settings)


def build_texture_fill(
    context: bpy.types.Context, settings: Settings
) -> tuple[Job, placement.TextureFill]:
    obj = settings.datablock("object", bpy.data.objects) or context.active_object
    if not materials.can_hold_material(obj):
        raise Refusal("Select an object that can have a material (e.g. a mesh).")
    prompt = settings.prompt.strip()
    if not prompt:
        raise Refusal("Type what the texture should show in the Prompt field.")
    request = Request(
        kind="generate",
        prompt=prompt,
        negative_prompt=settings.negative_prompt.strip(),
        model=settings.model.strip() or None,
        width=settings.width,
        height=settings.height,
        seed=settings.seed(),
        steps=settings.steps or None,
        candidates=settings.candidates,
        keep=1,
        tile="xy" if settings.seamless else "none",
    )
    where = placement.TextureFill(
        obj, request, settings.width, settings.height, settings.derived_maps
    )
    return Job(request), where


@keywords(
    {"prompt": "inpaint_prompt", "model": "inpaint_model"},
    named=("image", "mask"),
    seed=True,
)
class BRUSHLINK_OT_inpaint_image(JobOperator, bpy.types.Operator):
    """Regenerate the masked region of the image: its transparent pixels or the mask image"""

    bl_idname = "brushlink.inpaint_image"
    bl_label = "Inpaint Image"
    bl_options = {"REGISTER"}
    label = "Inpaint"

    @staticmethod
    def build(context: bpy.types.Context, settings: Settings) -> tuple[Job, Placement]:
        image = context_image(context, settings)
        if image is None:
            raise Refusal("Open an image in the Image Editor or choose one in the panel.")
        original = images.read_rgba(image)
        height, width = original.shape[:2]
        mask_image = settings.datablock("mask", bpy.data.images)
        mask_image = mask_image or context.scene.brushlink.mask_image
        if mask_image is not None:
            mask_rgba = images.read_rgba(mask_image)
            if mask_rgba.shape[:2] != (height, width):
                raise Refusal(
                    f"The mask “{mask_image.name}” is {mask_rgba.shape[1]}×"
                    f"{mask_rgba.shape[0]}; the image is {width}×{height}."
                )
            mask = mask_rgba[..., :3].mean(axis=2) * mask_rgba[..., 3]
        else:
            mask = 1.0 - original[..., 3]
        mask = np.clip(mask, 0.0, 1.0).astype(np.float32)
        if not (mask > 0).any():
            raise Refusal(
                "Nothing to inpaint: erase the region with an Erase Alpha brush, "
                "or choose a mask image (white = regenerate)."
            )
        # the server grows and feathers the mask, and answers with the new pixels and their
        # blend weight as alpha, so unmasked pixels keep their own (float) values here
        request = Request(
            kind="inpaint",
            prompt=settings.prompt.strip(),
            model=settings.model.strip() or None,
            seed=settings.seed(),
            inpaint=InpaintParams(output="layer"),
        )
        opaque = original.copy()
        opaque[..., 3] = 1.0
        job = Job(request, image=images.array_png(opaque), mask=images.mask_png(mask))
        return job, placement.Inpaint(image, original, mask)


@keywords({}, named=("image",))
class BRUSHLINK_OT_revert_inpaint(bpy.types.Operator):
    """Put back the pixels from before the last inpaint of this image"""

    bl_idname = "brushlink.revert_inpaint"
    bl_label = "Revert Inpaint"

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            image = context_image(context, Settings(self, context))
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if image is None or not placement.revert_inpaint(image):
            self.report({"WARNING"}, "No inpaint of this image to revert.")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Reverted the last inpaint of “{image.name}”.")
        return {"FINISHED"}


@keywords(
    {
        "mode": "style_mode",
        "style": "style",
        "prompt": "style_prompt",
        "strength": "strength",
        "model": "style_model",
    },
    named=("image", "reference"),
    seed=True,
)
class BRUSHLINK_OT_style_image(JobOperator, bpy.types.Operator):
    """Restyle the image into a new image: by style name, by prompt, or like a reference image"""

    bl_idname = "brushlink.style_image"
    bl_label = "Restyle Image"
    bl_options = {"REGISTER"}
    label = "Style"

    @staticmethod
    def build(context: bpy.types.Context, settings: Settings) -> tuple[Job, Placement]:
        image = context_image(context, settings)
        if image is None:
            raise Refusal("Open an image in the Image Editor or choose one in the panel.")
        request = Request(kind="style", model=settings.model.strip() or None, seed=settings.seed())
        reference = None
        if settings.mode == "NAMED":
            request.style = settings.style.strip() or None
            if request.style is None:
                raise Refusal("Type a style name (e.g. sketch, watercolor).")
            look = request.style
        elif settings.mode == "PROMPT":
            request.prompt = settings.prompt.strip()
            request.strength = settings.strength
            if not request.prompt:
                raise Refusal("Describe the new look in the Prompt field.")
            look = request.prompt[:30]
        else:
            ref = settings.datablock("reference", bpy.data.images)
            ref = ref or context.scene.brushlink.reference_image
            if ref is None:
                raise Refusal("Choose a reference image.")
            reference = images.image_png(ref)
            look = f"like {ref.name}"
        job = Job(request, image=images.image_png(image), reference=reference)
        return job, placement.Style(image, look)


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
