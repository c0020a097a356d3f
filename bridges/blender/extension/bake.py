"""Cycles bakes into an object's UV space, done on a temporary copy in a temporary scene.

The artist's object, materials and scene are never changed here: the copy gets the object's
mesh (its UV maps included) and copies of its materials, and everything is removed again.

``Camera`` is what a projection needs about the view it was generated from; ``projection_
material`` turns it into shader nodes that, per texel and in perspective (the world position
goes through the camera's matrix at every shading point, so large faces seen at an angle are
not smeared as an interpolated UV map would smear them), give the generated picture's colour
and the projection's weight: inside the frame, in front of the camera, not hidden behind
another surface (the texel's depth against the rendered depth pass), facing the camera
(a smoothstep of the cosine between the surface normal and the direction to the camera, from
FACING_LOW to FACING_HIGH: grazing faces, where the picture would stretch, get nothing), and on
a selected face (a face attribute).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import bpy
import numpy as np

SELECTED = "brushlink selected"
FACING_LOW, FACING_HIGH = 0.2, 0.5  # cosines: beyond ~78 degrees nothing, within 60 all
MARGIN = 8  # texels the projected colour is extended past each UV island


@dataclass
class Camera:
    """The view a picture was generated from (captured when the job started)."""

    size: tuple[int, int]
    clip: np.ndarray  # world -> clip space, 4 x 4
    view: np.ndarray  # world -> camera space, 4 x 4
    position: np.ndarray  # the camera's location (world)
    orthographic: bool
    depth: np.ndarray  # the Z pass, H x W, top row first
    tolerance: tuple[float, float]  # a texel is hidden beyond depth-pass + a + b * depth


class _Graph:
    """Small helpers to build a node tree with sockets or constants as inputs."""

    def __init__(self, tree: bpy.types.NodeTree) -> None:
        self.tree = tree
        for node in list(tree.nodes):
            tree.nodes.remove(node)

    def node(self, kind: str, **settings: Any) -> bpy.types.Node:
        node = self.tree.nodes.new(kind)
        for key, value in settings.items():
            setattr(node, key, value)
        return node

    def feed(self, socket: bpy.types.NodeSocket, value: Any) -> None:
        if isinstance(value, bpy.types.NodeSocket):
            self.tree.links.new(value, socket)
        else:
            socket.default_value = value

    def math(self, operation: str, *values: Any) -> bpy.types.NodeSocket:
        node = self.node("ShaderNodeMath", operation=operation)
        for socket, value in zip(node.inputs, values, strict=False):
            self.feed(socket, value)
        return node.outputs[0]

    def vector(self, operation: str, *values: Any) -> bpy.types.NodeSocket:
        node = self.node("ShaderNodeVectorMath", operation=operation)
        for socket, value in zip(node.inputs, values, strict=False):
            self.feed(socket, value)
        return node.outputs["Value" if operation == "DOT_PRODUCT" else "Vector"]

    def row(self, matrix: np.ndarray, i: int, position: Any) -> bpy.types.NodeSocket:
        """Row ``i`` of a 4 x 4 matrix times (position, 1)."""
        r = [float(v) for v in matrix[i]]
        return self.math("ADD", self.vector("DOT_PRODUCT", position, r[:3]), r[3])

    def combine(self, x: Any, y: Any, z: Any) -> bpy.types.NodeSocket:
        node = self.node("ShaderNodeCombineXYZ")
        for socket, value in zip(node.inputs, (x, y, z), strict=True):
            self.feed(socket, value)
        return node.outputs[0]


def float_image(name: str, size: tuple[int, int], *, data: bool = False) -> bpy.types.Image:
    image = bpy.data.images.new(name, size[0], size[1], alpha=True, float_buffer=True)
    if data:
        image.colorspace_settings.name = "Non-Color"
    return image


def depth_image(depth: np.ndarray) -> bpy.types.Image:
    """The Z pass as a float image the shader can look up (bottom row first, as Blender)."""
    height, width = depth.shape
    image = float_image("brushlink depth", (width, height), data=True)
    px = np.repeat(depth[::-1, :, None], 4, axis=2).astype(np.float32)
    image.pixels.foreach_set(px.ravel())
    return image


def projection_material(camera: Camera, picture: bpy.types.Image, depth: bpy.types.Image):
    """A material whose Emission shows the picture projected from ``camera``: returns it, its
    Emission node and the two sockets to bake through it, the colour and the mask (weight,
    selected, 1)."""
    material = bpy.data.materials.new("brushlink projection")
    material.use_nodes = True
    g = _Graph(material.node_tree)
    geometry = g.node("ShaderNodeNewGeometry")
    position, normal = geometry.outputs["Position"], geometry.outputs["Normal"]
    x, y, w = (g.row(camera.clip, i, position) for i in (0, 1, 3))
    u = g.math("MULTIPLY_ADD", g.math("DIVIDE", x, w), 0.5, 0.5)
    v = g.math("MULTIPLY_ADD", g.math("DIVIDE", y, w), 0.5, 0.5)
    uv = g.combine(u, v, 0.0)
    colour = g.node("ShaderNodeTexImage", image=picture, extension="CLIP")
    g.feed(colour.inputs["Vector"], uv)
    lookup = g.node("ShaderNodeTexImage", image=depth, extension="EXTEND", interpolation="Closest")
    g.feed(lookup.inputs["Vector"], uv)
    # hidden: deeper than the depth pass at that pixel, beyond a tolerance growing with depth
    here = g.math("MULTIPLY", g.row(camera.view, 2, position), -1.0)
    a, b = camera.tolerance
    seen = g.math(
        "LESS_THAN",
        g.math("SUBTRACT", here, lookup.outputs["Color"]),
        g.math("MULTIPLY_ADD", here, b, a),
    )
    if camera.orthographic:
        back = -np.linalg.inv(camera.view)[:3, 2]  # the camera's +Z in the world, towards it
        towards = [float(c) for c in back / np.linalg.norm(back)]
    else:
        eye = [float(c) for c in camera.position]
        towards = g.vector("NORMALIZE", g.vector("SUBTRACT", eye, position))
    cosine = g.vector("DOT_PRODUCT", normal, towards)
    facing = g.node("ShaderNodeMapRange", interpolation_type="SMOOTHSTEP", clamp=True)
    g.feed(facing.inputs["Value"], cosine)
    g.feed(facing.inputs["From Min"], FACING_LOW)
    g.feed(facing.inputs["From Max"], FACING_HIGH)
    ahead = g.math("GREATER_THAN", w, 0.0)
    selected = g.node("ShaderNodeAttribute", attribute_type="GEOMETRY", attribute_name=SELECTED)
    chosen = selected.outputs["Fac"]
    weight = colour.outputs["Alpha"]  # 0 outside the frame (CLIP)
    for factor in (seen, facing.outputs["Result"], ahead, chosen):
        weight = g.math("MULTIPLY", weight, factor)
    mask = g.combine(weight, chosen, 1.0)
    emission = g.node("ShaderNodeEmission")
    output = g.node("ShaderNodeOutputMaterial")
    g.feed(output.inputs["Surface"], emission.outputs[0])
    return material, emission, colour.outputs["Color"], mask


@contextlib.contextmanager
def baking_copy(obj: bpy.types.Object, mesh: bpy.types.Mesh, uv_name: str) -> Iterator[Any]:
    """A temporary object of ``mesh`` placed like ``obj``, alone in a temporary Cycles scene;
    ``mesh`` is removed afterwards with everything else."""
    scene = bpy.data.scenes.new("brushlink bake")
    copy = bpy.data.objects.new("brushlink bake", mesh)
    made: list[Any] = []
    try:
        copy.matrix_world = obj.matrix_world
        scene.collection.objects.link(copy)
        scene.render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = 1
        uv = mesh.uv_layers[uv_name]
        mesh.uv_layers.active = uv
        uv.active_render = True
        yield scene, copy, made
    finally:
        bpy.data.objects.remove(copy)
        bpy.data.meshes.remove(mesh)
        bpy.data.scenes.remove(scene)
        for block in made:
            if isinstance(block, bpy.types.Material):
                bpy.data.materials.remove(block)
            elif isinstance(block, bpy.types.Image):
                bpy.data.images.remove(block)


def bake(
    scene: bpy.types.Scene,
    copy: bpy.types.Object,
    target: bpy.types.Image,
    kind: str,
    margin: int,
    uv_name: str,
) -> None:
    """Bake ``kind`` (EMIT) into ``target`` through every material's active Image Texture
    node, which must already show ``target``."""
    override = {
        "scene": scene,
        "view_layer": scene.view_layers[0],
        "active_object": copy,
        "object": copy,
        "selected_objects": [copy],
        "selected_editable_objects": [copy],
    }
    with bpy.context.temp_override(**override):
        bpy.ops.object.bake(
            type=kind,
            margin=margin,
            margin_type="EXTEND",
            use_clear=True,
            target="IMAGE_TEXTURES",
            uv_layer=uv_name,
        )


def bake_target_node(material: bpy.types.Material, target: bpy.types.Image) -> None:
    """Make an Image Texture node of ``target`` the material's active node (the bake's
    destination)."""
    node = material.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = target
    material.node_tree.nodes.active = node


def _colour_source(material: bpy.types.Material) -> tuple[Any, Any]:
    """What gives the material its colour: the socket feeding the surface shader's Base Color
    (or Color), else that input's own value, else the material's viewport colour."""
    nodes = material.node_tree.nodes
    output = next(
        (n for n in nodes if n.type == "OUTPUT_MATERIAL" and n.is_active_output), None
    ) or next((n for n in nodes if n.type == "OUTPUT_MATERIAL"), None)
    surface = output.inputs["Surface"] if output is not None else None
    shader = surface.links[0].from_node if surface is not None and surface.is_linked else None
    colour = None
    if shader is not None:
        colour = shader.inputs.get("Base Color") or shader.inputs.get("Color")
    if colour is None:
        return None, tuple(material.diffuse_color)
    if colour.is_linked:
        return colour.links[0].from_socket, None
    return None, tuple(colour.default_value)


def base_colours(
    obj: bpy.types.Object, scene: bpy.types.Scene, copy: bpy.types.Object, size, made, uv_name
) -> bpy.types.Image:
    """The object's current base colour baked into a float image of ``size``: copies of its
    materials with their Base Color (a texture, a value) sent straight to an Emission shader,
    so the bake is the colour itself (a diffuse-colour bake would scale it by the shader's
    energy balance)."""
    target = float_image("brushlink colours", size)
    made.append(target)
    mesh = copy.data
    mesh.materials.clear()
    for original in [slot.material for slot in obj.material_slots] or [None]:
        material = bpy.data.materials.new("brushlink plain") if original is None else None
        material = material or original.copy()
        made.append(material)
        material.use_nodes = True  # a material without nodes gets a Principled BSDF
        socket, value = _colour_source(material)
        tree = material.node_tree
        emission = tree.nodes.new("ShaderNodeEmission")
        if socket is not None:
            tree.links.new(socket, emission.inputs["Color"])
        else:
            emission.inputs["Color"].default_value = value
        output = tree.nodes.new("ShaderNodeOutputMaterial")
        tree.links.new(emission.outputs[0], output.inputs["Surface"])
        tree.nodes.active = output
        output.is_active_output = True
        bake_target_node(material, target)
        mesh.materials.append(material)
    bake(scene, copy, target, "EMIT", MARGIN, uv_name)
    return target
