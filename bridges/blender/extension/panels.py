"""Sidebar panels (N panel, tab "brushlink") in the 3D View, Image Editor and Shader Editor."""

from __future__ import annotations

import bpy

from . import placement


def _status(layout: bpy.types.UILayout, props) -> None:
    if props.running:
        row = layout.row(align=True)
        row.progress(factor=props.progress, type="BAR", text=props.status or "Working…")
        row.operator("brushlink.cancel", text="", icon="CANCEL")
    elif props.status:
        layout.label(text=props.status, icon="INFO")


def _model(layout: bpy.types.UILayout, props, name: str, wm, listed: str) -> None:
    """A model field with the server's names to pick from (after Refresh), and Refresh."""
    row = layout.row(align=True)
    row.prop_search(props, name, wm, listed)
    row.operator("brushlink.refresh", text="", icon="FILE_REFRESH")


def _texture_fill(layout: bpy.types.UILayout, props, wm) -> None:
    box = layout.box()
    box.label(text="Texture Fill", icon="TEXTURE")
    box.prop(props, "prompt")
    box.prop(props, "negative_prompt")
    row = box.row(align=True)
    row.prop(props, "width")
    row.prop(props, "height")
    row = box.row(align=True)
    row.prop(props, "seed")
    row.prop(props, "candidates")
    box.prop(props, "steps")
    box.prop(props, "seamless")
    box.prop(props, "derived_maps")
    _model(box, props, "texture_model", wm, "brushlink_models")
    box.operator("brushlink.texture_fill", icon="MATERIAL")


def _project(layout: bpy.types.UILayout, props, wm) -> None:
    box = layout.box()
    box.label(text="Project from View (prompt and model above)", icon="CAMERA_DATA")
    _model(box, props, "controlnet", wm, "brushlink_controlnets")
    box.prop(props, "control_strength")
    row = box.row(align=True)
    row.prop(props, "project_size")
    row.prop(props, "bake_size")
    box.prop(props, "seam_blend")
    box.operator("brushlink.project_from_view", icon="MOD_UVPROJECT")


def _image_tools(layout: bpy.types.UILayout, props, show_source: bool) -> None:
    box = layout.box()
    box.label(text="Inpaint", icon="BRUSH_DATA")
    if show_source:
        box.prop(props, "source_image")
    box.prop(props, "mask_image")
    box.prop(props, "inpaint_prompt")
    box.prop(props, "inpaint_model")
    row = box.row(align=True)
    row.operator("brushlink.inpaint_image", icon="BRUSH_DATA")
    row.operator("brushlink.revert_inpaint", text="", icon="LOOP_BACK")

    box = layout.box()
    box.label(text="Restyle", icon="IMAGE")
    box.prop(props, "style_mode", text="")
    if props.style_mode == "NAMED":
        box.prop(props, "style")
    elif props.style_mode == "PROMPT":
        box.prop(props, "style_prompt")
        box.prop(props, "strength")
    else:
        box.prop(props, "reference_image")
    box.prop(props, "style_model")
    box.operator("brushlink.style_image", icon="IMAGE")


def _restyle_render(layout: bpy.types.UILayout, props, wm) -> None:
    box = layout.box()
    box.label(text="Restyle Render", icon="RENDER_RESULT")
    box.prop(props, "style_prompt")
    box.prop(props, "strength")
    _model(box, props, "controlnet", wm, "brushlink_controlnets")
    box.prop(props, "restyle_renders")
    box.operator("brushlink.restyle_render", icon="RENDER_STILL")


class _Sidebar:
    bl_region_type = "UI"
    bl_category = "brushlink"
    bl_label = "brushlink"


class BRUSHLINK_PT_view3d(_Sidebar, bpy.types.Panel):
    bl_idname = "BRUSHLINK_PT_view3d"
    bl_space_type = "VIEW_3D"

    def draw(self, context: bpy.types.Context) -> None:
        props, wm = context.scene.brushlink, context.window_manager
        _status(self.layout, props)
        _texture_fill(self.layout, props, wm)
        _project(self.layout, props, wm)
        _restyle_render(self.layout, props, wm)


class BRUSHLINK_PT_image_editor(_Sidebar, bpy.types.Panel):
    bl_idname = "BRUSHLINK_PT_image_editor"
    bl_space_type = "IMAGE_EDITOR"

    def draw(self, context: bpy.types.Context) -> None:
        props = context.scene.brushlink
        _status(self.layout, props)
        image = context.space_data.image
        if image is not None:
            undo = len(placement.HISTORY.get(image.name, ()))
            note = f" ({undo} inpaint(s) to revert)" if undo else ""
            self.layout.label(text=f"Image: {image.name}{note}")
        _image_tools(self.layout, props, show_source=image is None)
        _restyle_render(self.layout, props, context.window_manager)


class BRUSHLINK_PT_shader_editor(_Sidebar, bpy.types.Panel):
    bl_idname = "BRUSHLINK_PT_shader_editor"
    bl_space_type = "NODE_EDITOR"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.space_data.tree_type == "ShaderNodeTree"

    def draw(self, context: bpy.types.Context) -> None:
        props = context.scene.brushlink
        _status(self.layout, props)
        _texture_fill(self.layout, props, context.window_manager)
        _image_tools(self.layout, props, show_source=True)


CLASSES = (BRUSHLINK_PT_view3d, BRUSHLINK_PT_image_editor, BRUSHLINK_PT_shader_editor)
