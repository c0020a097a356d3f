"""What the camera sees: its depth pass, its projection, the last render's pixels.

Depth is rendered by **Cycles** in a temporary scene that links the scene's collections and
camera: one sample, no bounces, a 0.01 px pixel filter (each pixel the depth of one point, not
an average across an edge), the view layer's Z pass written by the compositor's File Output
node as a 32-bit float OpenEXR and read back as an image. This is what works in background
mode (``blender -b``, ``bpy`` as a module) as well as in the UI: EEVEE and Workbench need a GPU
context that a headless Blender lacks, the compositor's Viewer node is not run in background
mode, and the Render Result's passes cannot be read from Python. Rendering another scene leaves
the artist's own Render Result (and every setting of their scene) untouched, and costs a few
hundredths of a second for a simple scene.

Cycles' Z pass is the distance along the camera's axis (planar depth, not the distance to the
eye); empty pixels hold 10^10.

Depth as a control picture is normalised over a range (the selected objects' depths) to
near = bright: ``1 - 0.9 (z - near) / (far - near)``, clipped to [0.1, 1] for surfaces, 0 for
empty pixels, so even the farthest surface stays apart from the background.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterable, Iterator

import bpy
import numpy as np

from . import images

EMPTY = 1e9  # Cycles writes 1e10 where no surface is hit
FLOOR = 0.1  # the farthest surface's grey
OWN_RENDERS = 0  # depth renders running now (render handlers leave them alone)


def view_size(scene: bpy.types.Scene, long_side: int) -> tuple[int, int]:
    """The camera's frame (the scene's resolution and pixel aspect) with its longer side
    ``long_side``, both sides multiples of 8 (what the models work in)."""
    r = scene.render
    wide = r.resolution_x * r.pixel_aspect_x
    tall = r.resolution_y * r.pixel_aspect_y
    if wide >= tall:
        return _eight(long_side), _eight(long_side * tall / wide)
    return _eight(long_side * wide / tall), _eight(long_side)


def _eight(value: float) -> int:
    return max(8, int(round(value / 8.0)) * 8)


@contextlib.contextmanager
def _scene_like(
    scene: bpy.types.Scene, camera: bpy.types.Object, size: tuple[int, int], only=None
) -> Iterator[bpy.types.Scene]:
    """A temporary Cycles scene seeing what ``scene`` sees (or only the objects ``only``)."""
    tmp = bpy.data.scenes.new("brushlink view")
    try:
        if only is None:
            for child in scene.collection.children:
                tmp.collection.children.link(child)
            for obj in scene.collection.objects:
                tmp.collection.objects.link(obj)
        else:
            for obj in only:
                tmp.collection.objects.link(obj)
        if camera.name not in tmp.objects:
            tmp.collection.objects.link(camera)
        tmp.camera = camera
        tmp.frame_current = scene.frame_current
        render = tmp.render
        render.engine = "CYCLES"
        render.resolution_x, render.resolution_y = size
        render.resolution_percentage = 100
        render.film_transparent = True
        render.use_compositing = True
        cycles = tmp.cycles
        cycles.device = "CPU"
        cycles.samples = 1
        cycles.use_denoising = False
        cycles.max_bounces = 0
        cycles.filter_width = 0.01
        yield tmp
    finally:
        bpy.data.scenes.remove(tmp)


def render_depth(
    scene: bpy.types.Scene,
    camera: bpy.types.Object,
    size: tuple[int, int],
    only: Iterable[bpy.types.Object] | None = None,
) -> np.ndarray:
    """The camera's Z pass (H x W float32, top row first; EMPTY or more where nothing is)."""
    viewer = bpy.data.images.get("Viewer Node")
    try:
        return _render_depth(scene, camera, size, only)
    finally:  # running a compositor makes a Viewer Node image: not ours to leave behind
        made = bpy.data.images.get("Viewer Node")
        if viewer is None and made is not None:
            bpy.data.images.remove(made)


def _render_depth(scene, camera, size, only) -> np.ndarray:
    with (
        _scene_like(scene, camera, size, only) as tmp,
        tempfile.TemporaryDirectory(prefix="brushlink-") as folder,
    ):
        tmp.view_layers[0].use_pass_z = True
        tmp.use_nodes = True
        tree = tmp.node_tree
        for node in list(tree.nodes):
            tree.nodes.remove(node)
        layers = tree.nodes.new("CompositorNodeRLayers")
        layers.scene = tmp
        out = tree.nodes.new("CompositorNodeOutputFile")
        out.base_path = folder
        out.format.file_format = "OPEN_EXR"
        out.format.color_depth = "32"
        out.format.exr_codec = "ZIP"
        out.file_slots.clear()
        out.file_slots.new("depth")
        tree.links.new(layers.outputs["Depth"], out.inputs["depth"])
        global OWN_RENDERS
        OWN_RENDERS += 1
        try:
            bpy.ops.render.render(scene=tmp.name)
        finally:
            OWN_RENDERS -= 1
        found = sorted(glob.glob(os.path.join(folder, "depth*.exr")))
        if not found:
            raise RuntimeError("Blender wrote no depth pass (is Cycles enabled?).")
        image = bpy.data.images.load(found[0], check_existing=False)
        try:
            image.colorspace_settings.name = "Non-Color"
            width, height = image.size
            flat = np.empty(width * height * image.channels, np.float32)
            image.pixels.foreach_get(flat)
            return flat.reshape(height, width, image.channels)[::-1, :, 0].copy()
        finally:
            bpy.data.images.remove(image)


def depth_range(depth: np.ndarray) -> tuple[float, float] | None:
    """Nearest and farthest surface in a Z pass (None when it shows none)."""
    hit = depth[depth < EMPTY]
    if hit.size == 0:
        return None
    return float(hit.min()), float(hit.max())


def normalise(depth: np.ndarray, near: float, far: float) -> np.ndarray:
    """Near = bright: ``near`` is 1, ``far`` is FLOOR (anything beyond too), nothing is 0."""
    span = max(far - near, 1e-6)
    grey = 1.0 - (1.0 - FLOOR) * (depth - near) / span
    grey = np.clip(grey, FLOOR, 1.0)
    grey[depth >= EMPTY] = 0.0
    return grey.astype(np.float32)


def depth_png(grey: np.ndarray) -> bytes:
    """A normalised depth (H x W in [0, 1]) as the 8-bit grey PNG a `depth` control takes."""
    return images.mask_png(grey)


# ----------------------------------------------------------------------------- the camera


def camera_matrices(camera: bpy.types.Object, size: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """For a frame of ``size`` pixels: world -> clip space (x/w and y/w in [-1, 1] inside the
    frame), world -> camera space (the camera looks down its -Z), and the projection alone."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    width, height = size
    projection = camera.calc_matrix_camera(depsgraph, x=width, y=height)
    view = camera.matrix_world.inverted()
    return (
        np.array(projection @ view, np.float64),
        np.array(view, np.float64),
        np.array(projection, np.float64),
    )


# ----------------------------------------------------------------------------- renders


def render_result() -> bpy.types.Image | None:
    image = bpy.data.images.get("Render Result")
    return image if image is not None and image.type == "RENDER_RESULT" else None


def render_png(scene: bpy.types.Scene) -> bytes:
    """The scene's last render as an 8-bit RGBA PNG, as the artist sees it (view transform
    applied). The scene's output format is switched to PNG for the save and put back."""
    result = render_result()
    if result is None:
        raise ValueError("There is no render yet: render an image first (F12).")
    settings = scene.render.image_settings
    before = (settings.file_format, settings.color_mode, settings.color_depth)
    with tempfile.TemporaryDirectory(prefix="brushlink-") as folder:
        path = os.path.join(folder, "render.png")
        try:
            settings.file_format = "PNG"
            settings.color_mode = "RGBA"
            settings.color_depth = "8"
            try:
                result.save_render(path, scene=scene)
            except RuntimeError as exc:
                raise ValueError("There is no render yet: render an image first (F12).") from exc
        finally:
            settings.file_format = before[0]
            with contextlib.suppress(TypeError):
                settings.color_mode = before[1]
                settings.color_depth = before[2]
        with open(path, "rb") as f:
            return f.read()
