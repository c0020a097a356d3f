"""Every setting of the bridge, in one PropertyGroup on the scene (``scene.brushlink``)."""

from __future__ import annotations

import bpy


class BrushlinkSceneProperties(bpy.types.PropertyGroup):
    # --- texture fill
    prompt: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Prompt", description="What the texture shows", default=""
    )
    negative_prompt: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Negative", description="What the texture should not show", default=""
    )
    width: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Width", default=512, min=64, max=2048, step=64, subtype="PIXEL"
    )
    height: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Height", default=512, min=64, max=2048, step=64, subtype="PIXEL"
    )
    # text, not an IntProperty: Blender's integers stop at 2^31 - 1, seeds go to 2^32 - 1
    seed: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Seed", description="Empty: a new random seed each time", default=""
    )
    candidates: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Candidates",
        description="Images drawn and ranked by how well they match the prompt; the best is kept",
        default=1,
        min=1,
        max=8,
    )
    steps: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Steps",
        description="Sampling steps; 0: the model's default",
        default=0,
        min=0,
        max=100,
    )
    seamless: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Seamless",
        description="Left/right and top/bottom edges continue each other",
        default=True,
    )
    derived_maps: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="PBR Maps",
        description="Also derive normal, roughness, height and ambient occlusion maps",
        default=False,
    )
    texture_model: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Model", description="Generation model; empty: the server's default", default=""
    )
    # --- project from view (uses the prompt, seed, steps and model above)
    controlnet: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="ControlNet",
        description="The depth ControlNet; empty: one of the server's for the model",
        default="",
    )
    control_strength: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Depth Strength",
        description="How closely the picture follows the depth (0: not at all)",
        default=1.0,
        min=0.0,
        max=2.0,
    )
    project_size: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="View Size",
        description="The generated view's longer side; the other follows the camera",
        default=512,
        min=64,
        max=2048,
        step=64,
        subtype="PIXEL",
    )
    bake_size: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Bake Size",
        description="Side of the texture made for an object that has none yet",
        default=1024,
        min=64,
        max=8192,
        step=64,
        subtype="PIXEL",
    )
    seam_blend: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Seam Blend",
        description="Texels over which the projection fades in from the selection's edge",
        default=32,
        min=0,
        max=256,
        subtype="PIXEL",
    )
    # --- image inpainting and restyling
    source_image: bpy.props.PointerProperty(  # type: ignore[valid-type]
        name="Image",
        type=bpy.types.Image,
        description="Image to inpaint or restyle when not run from the Image Editor",
    )
    mask_image: bpy.props.PointerProperty(  # type: ignore[valid-type]
        name="Mask",
        type=bpy.types.Image,
        description="White regions are regenerated; empty: the image's transparent pixels",
    )
    inpaint_model: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Model", description="Inpainting model; empty: the server's default", default=""
    )
    inpaint_prompt: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Prompt", description="What the regenerated region shows", default=""
    )
    style_mode: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Restyle by",
        items=[
            ("NAMED", "Named Style", "A style the model knows by name (e.g. sketch)"),
            ("PROMPT", "Prompt", "A description of the new look, with a strength"),
            ("REFERENCE", "Reference Image", "The colours and look of another image"),
        ],
        default="NAMED",
    )
    style: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Style",
        description="A named style of the model (e.g. sketch, watercolor)",
        default="sketch",
    )
    style_prompt: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Prompt", description="Describe the new look (used with Strength)", default=""
    )
    strength: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Strength",
        description="How far the result may move from the image",
        default=0.6,
        min=0.0,
        max=1.0,
        subtype="FACTOR",
    )
    reference_image: bpy.props.PointerProperty(  # type: ignore[valid-type]
        name="Reference",
        type=bpy.types.Image,
        description="Take the colours and look of this image",
    )
    style_model: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Model", description="Style model; empty: the server's default", default=""
    )
    restyle_renders: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Restyle Every Render",
        description="After each render, restyle it by the prompt (the render is never held up)",
        default=False,
    )
    # --- state shown in the panels (written by the worker on the main thread)
    status: bpy.props.StringProperty(name="Status", default="")  # type: ignore[valid-type]
    progress: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR"
    )
    running: bpy.props.BoolProperty(name="Running", default=False)  # type: ignore[valid-type]


class BrushlinkServerItem(bpy.types.PropertyGroup):
    """A model or add-on the server offers (the panel's lists; not saved with the file)."""

    family: bpy.props.StringProperty(name="Family", default="")  # type: ignore[valid-type]


CLASSES = (BrushlinkSceneProperties, BrushlinkServerItem)


def register() -> None:
    bpy.types.Scene.brushlink = bpy.props.PointerProperty(type=BrushlinkSceneProperties)
    wm = bpy.types.WindowManager
    wm.brushlink_models = bpy.props.CollectionProperty(type=BrushlinkServerItem)
    wm.brushlink_controlnets = bpy.props.CollectionProperty(type=BrushlinkServerItem)


def unregister() -> None:
    del bpy.types.WindowManager.brushlink_controlnets
    del bpy.types.WindowManager.brushlink_models
    del bpy.types.Scene.brushlink
