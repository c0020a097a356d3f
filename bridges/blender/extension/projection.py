"""Project from View: a picture generated for the camera's view, baked into the objects' UVs.

When the result arrives (main thread), for each target object:

1. the texture to paint: the object's own projected texture from an earlier projection (so
   several views add up), else a new image ``Projected: <object>`` of the bake size, filled
   with the object's current base colour (its materials' Base Color through an Emission bake),
   so what is not projected onto keeps its look;
2. two Cycles Emission bakes on a temporary copy of the mesh, into the object's active UV map:
   the picture projected from the camera, and the projection's weight (``bake.py``);
3. the weight fades in over ``seam_blend`` texels from the selection's edge and is laid over
   the texture in numpy (``seams.py``): unselected faces keep their texels exactly;
4. the texture (packed, with how it was made in its Custom Properties) feeds Base Color of
   each of the object's materials through a UV Map node. It is baked into the object's own UV
   map, so it stays put when the camera moves. A material other objects use is copied first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import bpy
import numpy as np

from brushlink.plugin.errors import ImageMismatch
from brushlink.plugin.protocol import Result
from brushlink.plugin.request import Request

from . import bake, images, materials, seams
from .bake import Camera
from .placement import best
from .worker import Placement

UV_NODE = "brushlink uv"


@dataclass
class Target:
    """An object to project onto, and which of its faces (None: all of them)."""

    name: str
    faces: np.ndarray | None = None  # one bool per polygon, from Edit Mode's face selection
    uv: str = ""  # the UV map baked into


@dataclass
class ProjectionSettings:
    bake_size: int = 1024
    seam_blend: int = 32
    made_with: dict = field(default_factory=dict)  # recorded on the texture


def projected_texture(obj: bpy.types.Object) -> bpy.types.Image | None:
    """The texture an earlier projection made for ``obj``, if its material still uses it."""
    for slot in obj.material_slots:
        material = slot.material
        node = material and material.use_nodes and material.node_tree.nodes.get(materials.NODE_NAME)
        image = node.image if node else None
        made = image.get("brushlink") if image is not None else None
        if made is not None and made.get("projected_on") == obj.name:
            return image
    return None


def _mesh_to_bake(obj: bpy.types.Object, target: Target) -> bpy.types.Mesh:
    """The mesh as rendered (modifiers applied) with every face selected, or, for a face
    selection from Edit Mode, the mesh itself; with the selection as a face attribute."""
    if target.faces is None:
        depsgraph = bpy.context.evaluated_depsgraph_get()
        mesh = bpy.data.meshes.new_from_object(
            obj.evaluated_get(depsgraph), preserve_all_data_layers=True, depsgraph=depsgraph
        )
        chosen = np.ones(len(mesh.polygons), np.float32)
    else:
        if obj.mode == "EDIT":
            obj.update_from_editmode()
        mesh = obj.data.copy()
        if len(mesh.polygons) != len(target.faces):
            bpy.data.meshes.remove(mesh)
            raise ImageMismatch(f"The mesh of “{obj.name}” changed while the view was generated.")
        chosen = target.faces.astype(np.float32)
    if target.uv not in mesh.uv_layers:
        bpy.data.meshes.remove(mesh)
        raise ImageMismatch(f"“{obj.name}” has lost its UV map “{target.uv}”.")
    attribute = mesh.attributes.new(bake.SELECTED, "FLOAT", "FACE")
    attribute.data.foreach_set("value", chosen)
    mesh.polygons.foreach_set("material_index", np.zeros(len(mesh.polygons), np.int32))
    return mesh


@dataclass
class Painted:
    """One object's new texture, computed but not yet written."""

    obj: bpy.types.Object
    target: Target
    existing: bpy.types.Image | None
    pixels: np.ndarray
    share: float  # of the object's texels the projection reached


def _paint(
    obj: bpy.types.Object,
    target: Target,
    camera: Camera,
    picture: bpy.types.Image,
    depth: bpy.types.Image,
    settings: ProjectionSettings,
) -> Painted:
    """Bake the projection and lay it over the object's texture (nothing is changed yet)."""
    existing = projected_texture(obj)
    size = tuple(existing.size) if existing is not None else (settings.bake_size,) * 2
    with bake.baking_copy(obj, _mesh_to_bake(obj, target), target.uv) as (scene, copy, made):
        if existing is not None:
            old = images.read_rgba(existing)
        else:
            old = images.read_rgba(bake.base_colours(obj, scene, copy, size, made, target.uv))
        material, emission, colour, mask = bake.projection_material(camera, picture, depth)
        made.append(material)
        copy.data.materials.clear()
        copy.data.materials.append(material)
        projected = bake.float_image("brushlink projected", size)
        weights = bake.float_image("brushlink weights", size, data=True)
        made += [projected, weights]
        tree = material.node_tree
        for socket, image, margin in ((colour, projected, bake.MARGIN), (mask, weights, 0)):
            tree.links.new(socket, emission.inputs["Color"])
            bake.bake_target_node(material, image)
            bake.bake(scene, copy, image, "EMIT", margin, target.uv)
        mask_px = images.read_rgba(weights)
        blend = seams.weight(mask_px, settings.seam_blend)
        painted = seams.lay_over(old, images.read_rgba(projected), blend)
    return Painted(obj, target, existing, painted, seams.changed_share(blend, mask_px))


def _write(painted: Painted, made_with: dict) -> bpy.types.Image:
    height, width = painted.pixels.shape[:2]
    name = f"Projected: {painted.obj.name}"
    texture = painted.existing or images.new_image(name, width, height)
    images.write_rgba(texture, painted.pixels)
    images.pack(texture)
    texture["brushlink"] = {
        **made_with,
        "projected_on": painted.obj.name,
        "uv_map": painted.target.uv,
    }
    return texture


def _own_materials(obj: bpy.types.Object, name: str) -> list[bpy.types.Material]:
    """The object's materials, each copied first if another object uses it too (its texture
    would not fit the other object's UVs); one is made when the object has none."""
    if not obj.material_slots:
        material, _ = materials.target_material(obj, name)
        return [material]
    found = []
    for slot in obj.material_slots:
        material = slot.material
        if material is None:
            material = bpy.data.materials.new(name[:63])
            material.use_nodes = True
            slot.material = material
        elif material.users > 1 and _shared(material, obj):
            material = material.copy()
            slot.material = material
        found.append(material)
    return found


def _shared(material: bpy.types.Material, obj: bpy.types.Object) -> bool:
    return any(
        other is not obj and any(s.material == material for s in other.material_slots)
        for other in bpy.data.objects
        if other.data is not obj.data
    )


def _wire(obj: bpy.types.Object, texture: bpy.types.Image, uv: str) -> str:
    names = []
    for material in _own_materials(obj, f"brushlink {obj.name}"):
        material.use_nodes = True
        node = materials.wire_base_color(obj, material, texture)
        nodes = material.node_tree.nodes
        uv_node = nodes.get(UV_NODE) or nodes.new("ShaderNodeUVMap")
        uv_node.name = uv_node.label = UV_NODE
        uv_node.uv_map = uv
        node.projection = "FLAT"
        uv_node.location = (node.location.x - 250, node.location.y - 150)
        material.node_tree.links.new(uv_node.outputs["UV"], node.inputs["Vector"])
        names.append(material.name)
    return ", ".join(names)


class Projection(Placement):
    label = "Project from view"

    def __init__(
        self,
        request: Request,
        camera: Camera,
        targets: list[Target],
        settings: ProjectionSettings,
    ) -> None:
        self.request = request
        self.camera = camera
        self.targets = targets
        self.settings = settings
        self.view: bpy.types.Image | None = None  # the generated picture, kept for the artist

    def result(self, result: Result) -> str:
        rgba, seed = best(result)
        width, height = self.camera.size
        if rgba.shape[:2] != (height, width):
            raise ImageMismatch(
                f"The server returned {rgba.shape[1]}×{rgba.shape[0]} pixels for a "
                f"{width}×{height} view."
            )
        made_with = {
            **self.settings.made_with,
            "model": str(result.metadata.get("model", self.request.model or "")),
            "seed": "" if seed is None else str(seed),
        }
        self.settings.made_with = made_with
        view = images.new_image(f"View: {self.request.prompt}", width, height)
        images.write_rgba(view, rgba)
        images.pack(view)
        view["brushlink"] = made_with
        self.view = view
        depth = bake.depth_image(self.camera.depth)
        try:
            painted = []
            for target in self.targets:
                obj = bpy.data.objects.get(target.name)
                if obj is None:
                    raise ImageMismatch(f"The object “{target.name}” is gone.")
                painted.append(_paint(obj, target, self.camera, view, depth, self.settings))
        finally:
            bpy.data.images.remove(depth)
        parts = []  # every bake went through: only now is anything of the artist's changed
        for one in painted:
            texture = _write(one, made_with)
            on = _wire(one.obj, texture, one.target.uv)
            parts.append(f"{one.share * 100:.0f} % of “{texture.name}” (on {on})")
        seed_text = f", seed {seed}" if seed is not None else ""
        return f"Projected {width}×{height}{seed_text} into " + "; ".join(parts) + "."

    def discard(self) -> None:
        if self.view is not None:
            bpy.data.images.remove(self.view)
            self.view = None
