"""Wire images into an object's material: Image Texture -> Principled BSDF.

The derived PBR maps (``maps.py`` says how each is estimated) go where Blender reads them:
normal through a Normal Map node into the BSDF's Normal, roughness into Roughness, ambient
occlusion multiplied into Base Color (the Principled BSDF has no occlusion input, so this is
how it darkens crevices in every render engine), height through a Displacement node into the
Material Output's Displacement, with the material set to true displacement (the normal map
already gives the fine relief; bump from the height as well would count it twice). Add a
Subdivision Surface modifier to see the displacement.
"""

from __future__ import annotations

import bpy

NODE_NAME = "brushlink texture"
NORMAL_NODE_NAME = "brushlink normal"
ROUGHNESS_NODE_NAME = "brushlink roughness"
HEIGHT_NODE_NAME = "brushlink height"
OCCLUSION_NODE_NAME = "brushlink occlusion"
NORMAL_STRENGTH = 1.0
DISPLACEMENT_SCALE = 0.05  # metres at full height, around a midlevel of 0.5


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


def _output(material: bpy.types.Material) -> bpy.types.Node:
    nodes = material.node_tree.nodes
    return next(
        (n for n in nodes if n.type == "OUTPUT_MATERIAL" and n.is_active_output), None
    ) or next(n for n in nodes if n.type == "OUTPUT_MATERIAL")


def _socket(sockets, identifier: str):
    """A socket by identifier: the Mix node has an "A" for floats, vectors and colours."""
    return next(s for s in sockets if s.identifier == identifier)


def _helper(material: bpy.types.Material, kind: str, name: str, location) -> bpy.types.Node:
    nodes = material.node_tree.nodes
    node = nodes.get(name)
    if node is None or node.bl_idname != kind:
        node = nodes.new(kind)
        node.name = name
        node.location = location
    node.label = name
    return node


def wire_derived(
    obj: bpy.types.Object,
    material: bpy.types.Material,
    maps: dict[str, bpy.types.Image],
) -> None:
    """Wire the derived maps (``normal``, ``roughness``, ``height``, ``occlusion``)."""
    links = material.node_tree.links
    bsdf = principled(material)
    x, y = bsdf.location.x, bsdf.location.y
    rough_node = _image_node(material, ROUGHNESS_NODE_NAME, maps["roughness"], (x - 650, y - 300))
    normal_node = _image_node(material, NORMAL_NODE_NAME, maps["normal"], (x - 650, y - 600))
    height_node = _image_node(material, HEIGHT_NODE_NAME, maps["height"], (x - 650, y - 900))
    ao_node = _image_node(material, OCCLUSION_NODE_NAME, maps["occlusion"], (x - 650, y + 300))
    for node in (rough_node, normal_node, height_node, ao_node):
        _project(material, obj, node)
    links.new(rough_node.outputs["Color"], bsdf.inputs["Roughness"])
    normal_map = _helper(
        material, "ShaderNodeNormalMap", "brushlink normal map", (x - 300, y - 600)
    )
    normal_map.inputs["Strength"].default_value = NORMAL_STRENGTH
    links.new(normal_node.outputs["Color"], normal_map.inputs["Color"])
    links.new(normal_map.outputs["Normal"], bsdf.inputs["Normal"])
    # occlusion darkens the colour: texture x AO into Base Color
    colour = material.node_tree.nodes[NODE_NAME]
    multiply = _helper(material, "ShaderNodeMix", "brushlink occlusion mix", (x - 300, y + 150))
    multiply.data_type = "RGBA"
    multiply.blend_type = "MULTIPLY"
    multiply.inputs["Factor"].default_value = 1.0
    links.new(colour.outputs["Color"], _socket(multiply.inputs, "A_Color"))
    links.new(ao_node.outputs["Color"], _socket(multiply.inputs, "B_Color"))
    links.new(_socket(multiply.outputs, "Result_Color"), bsdf.inputs["Base Color"])
    output = _output(material)
    displacement = _helper(
        material, "ShaderNodeDisplacement", "brushlink displacement", (x, y - 900)
    )
    displacement.inputs["Midlevel"].default_value = 0.5
    displacement.inputs["Scale"].default_value = DISPLACEMENT_SCALE
    links.new(height_node.outputs["Color"], displacement.inputs["Height"])
    links.new(displacement.outputs["Displacement"], output.inputs["Displacement"])
    material.displacement_method = "DISPLACEMENT"
