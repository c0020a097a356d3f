"""Wire images into an object's material: Image Texture -> Principled BSDF.

Derived maps are estimates from the colour texture alone (no second model): height is the
texture's luminance, the normal map its wrapped gradient (so a seamless texture gives a seamless
normal map), roughness rises where the texture is dark (crevices) and falls where it is bright.
"""

from __future__ import annotations

import bpy
import numpy as np

NODE_NAME = "brushlink texture"
NORMAL_NODE_NAME = "brushlink normal"
ROUGHNESS_NODE_NAME = "brushlink roughness"
NORMAL_STRENGTH = 1.0


def can_hold_material(obj: bpy.types.Object | None) -> bool:
    return obj is not None and obj.type in {"MESH", "CURVE", "SURFACE", "META", "FONT"}


def target_material(obj: bpy.types.Object, name: str) -> tuple[bpy.types.Material, bool]:
    """The object's active material, or a new one assigned to it; True when it was created."""
    material = obj.active_material
    if material is not None:
        material.use_nodes = True
        return material, False
    material = bpy.data.materials.new(name[:63])
    material.use_nodes = True
    if obj.material_slots and obj.active_material_index < len(obj.material_slots):
        obj.material_slots[obj.active_material_index].material = material
    else:
        obj.data.materials.append(material)
        obj.active_material_index = len(obj.material_slots) - 1
    return material, True


def principled(material: bpy.types.Material) -> bpy.types.Node:
    """The material's Principled BSDF (the one feeding the output, if several); made if missing."""
    nodes, links = material.node_tree.nodes, material.node_tree.links
    output = next(
        (n for n in nodes if n.type == "OUTPUT_MATERIAL" and n.is_active_output), None
    ) or next((n for n in nodes if n.type == "OUTPUT_MATERIAL"), None)
    if output is None:
        output = nodes.new("ShaderNodeOutputMaterial")
        output.location = (300, 0)
    surface = output.inputs["Surface"]
    if surface.is_linked and surface.links[0].from_node.type == "BSDF_PRINCIPLED":
        return surface.links[0].from_node
    bsdf = next((n for n in nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is None:
        bsdf = nodes.new("ShaderNodeBsdfPrincipled")
        bsdf.location = (output.location.x - 300, output.location.y)
    links.new(bsdf.outputs["BSDF"], surface)
    return bsdf


def _image_node(
    material: bpy.types.Material, name: str, image: bpy.types.Image, location: tuple[float, float]
) -> bpy.types.Node:
    nodes = material.node_tree.nodes
    node = nodes.get(name)
    if node is None or node.type != "TEX_IMAGE":
        node = nodes.new("ShaderNodeTexImage")
        node.name = name
        node.location = location
    node.label = name
    node.image = image
    return node


def _uses_uvs(obj: bpy.types.Object) -> bool:
    return obj.type == "MESH" and len(obj.data.uv_layers) > 0


def _project(material: bpy.types.Material, obj: bpy.types.Object, node: bpy.types.Node) -> None:
    """Meshes without UVs get box projection from generated coordinates instead of nothing."""
    if _uses_uvs(obj) or obj.type != "MESH":
        return
    nodes, links = material.node_tree.nodes, material.node_tree.links
    coords = nodes.get("brushlink coordinates") or nodes.new("ShaderNodeTexCoord")
    coords.name = "brushlink coordinates"
    coords.location = (node.location.x - 250, node.location.y)
    node.projection = "BOX"
    node.projection_blend = 0.2
    links.new(coords.outputs["Generated"], node.inputs["Vector"])


def wire_base_color(
    obj: bpy.types.Object, material: bpy.types.Material, image: bpy.types.Image
) -> bpy.types.Node:
    bsdf = principled(material)
    node = _image_node(material, NODE_NAME, image, (bsdf.location.x - 350, bsdf.location.y))
    _project(material, obj, node)
    material.node_tree.links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
    material.node_tree.nodes.active = node  # texture paint and the Image Editor follow it
    return node


def wire_derived(
    obj: bpy.types.Object,
    material: bpy.types.Material,
    normal: bpy.types.Image,
    roughness: bpy.types.Image,
) -> None:
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = principled(material)
    x, y = bsdf.location.x, bsdf.location.y
    rough_node = _image_node(material, ROUGHNESS_NODE_NAME, roughness, (x - 650, y - 300))
    normal_node = _image_node(material, NORMAL_NODE_NAME, normal, (x - 650, y - 600))
    for node in (rough_node, normal_node):
        _project(material, obj, node)
    links.new(rough_node.outputs["Color"], bsdf.inputs["Roughness"])
    normal_map = nodes.get("brushlink normal map") or nodes.new("ShaderNodeNormalMap")
    normal_map.name = "brushlink normal map"
    normal_map.location = (x - 300, y - 600)
    normal_map.inputs["Strength"].default_value = NORMAL_STRENGTH
    links.new(normal_node.outputs["Color"], normal_map.inputs["Color"])
    links.new(normal_map.outputs["Normal"], bsdf.inputs["Normal"])


def derive_maps(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tangent-space normal map (RGBA) and roughness (H x W) from a texture (top row first)."""
    luma = rgba[..., 0] * 0.2126 + rgba[..., 1] * 0.7152 + rgba[..., 2] * 0.0722
    height = _blur(luma)
    # Central differences with wrap-around: a tiling texture keeps tiling.
    dx = (np.roll(height, -1, axis=1) - np.roll(height, 1, axis=1)) * 0.5
    dy = (np.roll(height, 1, axis=0) - np.roll(height, -1, axis=0)) * 0.5  # up = +y
    scale = 8.0  # luminance steps are small; scale them into visible slopes
    nx, ny, nz = -dx * scale, -dy * scale, np.ones_like(height)
    length = np.sqrt(nx * nx + ny * ny + nz * nz)
    normal = np.stack([nx / length, ny / length, nz / length], axis=2) * 0.5 + 0.5
    normal = np.concatenate([normal, np.ones_like(height)[..., None]], axis=2)
    lo, hi = float(luma.min()), float(luma.max())
    spread = (luma - lo) / (hi - lo) if hi > lo else np.full_like(luma, 0.5)
    roughness = 0.9 - 0.5 * spread
    return normal.astype(np.float32), roughness.astype(np.float32)


def _blur(values: np.ndarray) -> np.ndarray:
    """3x3 box blur with wrap-around: takes the pixel noise out of the height estimate."""
    out = np.zeros_like(values)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            out += np.roll(np.roll(values, dy, axis=0), dx, axis=1)
    return out / 9.0
