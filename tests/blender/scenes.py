"""Driver scenarios for the camera's view (Project from View, Restyle Render) and operators'
keywords: small scenes (a camera 10 units in front of the origin, looking along +Y), the
extension's operators or builders, facts and pixels written for the pytest side to check."""

from __future__ import annotations

import functools
import math
import os
import sys
import tempfile
from pathlib import Path

import bpy
import numpy as np
from common import image_facts, material_facts, run_operator, save_png
from mathutils import Vector

PACKAGE = "bl_ext.user_default.brushlink"


def module(name: str):
    return sys.modules[f"{PACKAGE}.{name}"]


def stage(size: tuple[int, int]) -> tuple[bpy.types.Scene, bpy.types.Object, bpy.types.Object]:
    """The default scene with its camera at (0, -10, 0) looking at the cube along +Y."""
    scene = bpy.context.scene
    camera = scene.camera
    camera.location = (0.0, -10.0, 0.0)
    camera.rotation_euler = (math.radians(90), 0.0, 0.0)
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    return scene, camera, bpy.data.objects["Cube"]


def capture_jobs() -> list:
    """Record every job the operators hand to the worker (exactly what is sent), and the
    result each placement receives."""
    worker, seen = module("worker").WORKER, []
    start = worker.start

    def recording(job, where, report, scene):
        entry = {"job": job, "where": where}
        seen.append(entry)
        place = where.result

        def result(result):
            entry["result"] = result
            return place(result)

        where.result = result
        return start(job, where, report, scene)

    worker.start = recording
    return seen


def job_facts(job, out: Path, name: str) -> dict:
    images = module("images")
    for i, png in enumerate(job.controls):
        save_pixels(images.decode_png(png), out / f"{name}_control{i}")
    slots = [[slot, index] for slot, index, _ in job.slots()]
    return {"request": job.request.to_wire(), "slots": slots}


def save_pixels(rgba: np.ndarray, path: Path) -> None:
    """Floats in [0, 1] (top row first) as 8-bit values in an .npy file."""
    np.save(path.with_suffix(".npy"), np.clip(rgba * 255 + 0.5, 0, 255).astype(np.uint8))


def select_only(*objects: bpy.types.Object) -> None:
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj in objects)
    bpy.context.view_layer.objects.active = objects[0]


def select_faces(obj: bpy.types.Object, chosen: set[int]) -> None:
    """Select these faces (and their corners and edges) for Edit Mode, in face select mode."""
    bpy.context.scene.tool_settings.mesh_select_mode = (False, False, True)
    mesh = obj.data
    for vertex in mesh.vertices:
        vertex.select = False
    for edge in mesh.edges:
        edge.select = False
    keys = set()
    for polygon in mesh.polygons:
        polygon.select = polygon.index in chosen
        if polygon.select:
            keys.update(polygon.edge_keys)
            for i in polygon.vertices:
                mesh.vertices[i].select = True
    for edge in mesh.edges:
        edge.select = edge.key in keys


def face_facts(obj: bpy.types.Object) -> list[dict]:
    """Each face: its world normal, whether selected, its corners' UVs (the active map)."""
    mesh = obj.data
    uv = mesh.uv_layers.active.data
    turn = obj.matrix_world.to_3x3()
    return [
        {
            "normal": list((turn @ p.normal).normalized()),
            "selected": p.select,
            "uv": [list(uv[i].uv) for i in p.loop_indices],
        }
        for p in mesh.polygons
    ]


# ----------------------------------------------------------------------------- depth


def scenario_project_depth(args: dict, out: Path) -> dict:
    """A plane in front of a cube, both selected: the job the bridge would send."""
    scene, camera, cube = stage((96, 64))
    bpy.ops.mesh.primitive_plane_add(
        size=1.5, location=(-0.9, -4.0, 0.0), rotation=(math.radians(90), 0.0, 0.0)
    )
    plane = bpy.context.active_object
    select_only(cube, plane)
    props = scene.brushlink
    props.prompt = "weathered stone"
    props.project_size = 96
    ops = module("view_operators")
    settings = module("settings").Settings(None, bpy.context, ops._PROJECT)
    facts: dict = {"images_before": sorted(i.name for i in bpy.data.images)}
    try:
        job, where = ops.build_projection(bpy.context, settings)
    except ValueError as exc:
        facts["refused"] = str(exc)
        return facts
    facts.update(job_facts(job, out, "depth"))
    np.save(out / "zpass.npy", where.camera.depth)
    facts["camera"] = {"size": list(where.camera.size), "tolerance": where.camera.tolerance}
    facts["images_after"] = sorted(i.name for i in bpy.data.images)
    facts["scenes_after"] = sorted(s.name for s in bpy.data.scenes)
    return facts


# ----------------------------------------------------------------------------- projection


def render_pass(scene: bpy.types.Scene, out: Path, name: str) -> None:
    """The scene's diffuse colour pass (the texture as the object wears it, no lighting), one
    point sample per pixel, saved as linear floats (top row first)."""
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 1
    scene.cycles.filter_width = 0.01
    scene.view_layers[0].use_pass_diffuse_color = True
    scene.use_nodes = True
    tree = scene.node_tree
    for node in list(tree.nodes):
        tree.nodes.remove(node)
    layers = tree.nodes.new("CompositorNodeRLayers")
    with tempfile.TemporaryDirectory() as folder:
        node = tree.nodes.new("CompositorNodeOutputFile")
        node.base_path = folder
        node.format.file_format = "OPEN_EXR"
        node.format.color_depth = "32"
        node.file_slots.clear()
        node.file_slots.new("diffcol")
        tree.links.new(layers.outputs["DiffCol"], node.inputs["diffcol"])
        bpy.ops.render.render()
        image = bpy.data.images.load(os.path.join(folder, sorted(os.listdir(folder))[0]))
        image.colorspace_settings.name = "Non-Color"
        w, h = image.size
        flat = np.empty(w * h * 4, np.float32)
        image.pixels.foreach_get(flat)
        np.save(out / f"{name}.npy", flat.reshape(h, w, 4)[::-1])
        bpy.data.images.remove(image)


def projected_points(scene, camera, obj, points) -> list:
    """Where object-space points land in the camera's frame: (x, y) in [0, 1], top-left origin."""
    from bpy_extras.object_utils import world_to_camera_view

    found = []
    for p in points:
        co = world_to_camera_view(scene, camera, obj.matrix_world @ Vector(p))
        found.append([co.x, 1.0 - co.y])
    return found


def scenario_project(args: dict, out: Path) -> dict:
    """The cube turned 30 degrees, two faces selected in Edit Mode (one facing the camera,
    one facing away); Project from View with keyword arguments, then renders of the result
    from the camera and from a moved camera."""
    scene, camera, cube = stage((128, 128))
    cube.rotation_euler = (0.0, 0.0, math.radians(30))
    bpy.context.view_layer.update()
    select_only(cube)
    normals = [cube.matrix_world.to_3x3() @ p.normal for p in cube.data.polygons]
    front = min(range(len(normals)), key=lambda i: normals[i].y)
    back = max(range(len(normals)), key=lambda i: normals[i].y)
    select_faces(cube, {front, back})
    bpy.ops.object.mode_set(mode="EDIT")
    props = scene.brushlink
    props.prompt, props.seed, props.bake_size, props.seam_blend = "scene prompt", "5", 64, 30
    keep = ("prompt", "seed", "bake_size", "seam_blend", "project_size", "controlnet")
    facts: dict = {"scene_before": {k: getattr(props, k) for k in keep}}
    jobs = capture_jobs()
    op = functools.partial(
        bpy.ops.brushlink.project_from_view,
        prompt="mossy stone",
        seed_text="3000000000",
        steps=int(args.get("steps", 2)),
        project_size=128,
        bake_size=256,
        seam_blend=6,
        model="tiny",
    )
    run_operator(op, facts)
    facts["scene_after"] = {k: getattr(props, k) for k in keep}
    facts["status"] = props.status
    facts["edit_mode_after"] = cube.mode
    bpy.ops.object.mode_set(mode="OBJECT")
    if jobs:
        facts["job"] = job_facts(jobs[0]["job"], out, "project")
    facts["faces"] = face_facts(cube)
    facts["front"], facts["back"] = front, back
    facts.update(material_facts(cube))
    facts["images"] = {i.name: image_facts(i) for i in bpy.data.images if i.users or i.packed_file}
    texture = bpy.data.images.get("Projected: Cube")
    view = bpy.data.images.get("View: mossy stone")
    if texture is None or view is None:
        return facts
    save_png(texture, out / "texture")
    save_png(view, out / "view")
    # points on the front face (object space: the face at y = -1), seen from both cameras
    grid = [(x, -1.0, z) for x in np.linspace(-0.5, 0.5, 7) for z in np.linspace(-0.5, 0.5, 7)]
    facts["points_a"] = projected_points(scene, camera, cube, grid)
    render_pass(scene, out, "render_a")
    camera.location = (3.0, -9.0, 0.8)
    direction = Vector((0.0, 0.0, 0.0)) - camera.location
    camera.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
    bpy.context.view_layer.update()
    facts["points_b"] = projected_points(scene, camera, cube, grid)
    render_pass(scene, out, "render_b")
    save_png(texture, out / "texture_after_move")
    return facts


def scenario_project_seam(args: dict, out: Path) -> dict:
    """A grid facing the camera, its left half selected: the projection blended into the
    rest over ``seam_blend`` texels, and (the same result) with a hard edge."""
    scene, camera, cube = stage((96, 96))
    bpy.data.objects.remove(cube)
    bpy.ops.mesh.primitive_grid_add(
        x_subdivisions=8, y_subdivisions=8, size=5, rotation=(math.radians(90), 0.0, 0.0)
    )
    grid = bpy.context.active_object
    material = bpy.data.materials.new("blue")
    material.use_nodes = True
    bsdf = material.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (0.0, 0.05, 0.6, 1.0)
    grid.data.materials.append(material)
    select_faces(grid, {p.index for p in grid.data.polygons if p.center.x < 0})
    hard = bpy.data.objects.new("Grid hard", grid.data.copy())
    hard.matrix_world = grid.matrix_world
    hard.data.materials[0] = material.copy()
    scene.collection.objects.link(hard)
    select_only(grid)
    bpy.ops.object.mode_set(mode="EDIT")
    jobs = capture_jobs()
    facts: dict = {}
    op = functools.partial(
        bpy.ops.brushlink.project_from_view,
        prompt="orange moss",
        seed_text="11",
        steps=2,
        project_size=96,
        bake_size=128,
        seam_blend=int(args.get("blend", 12)),
        model="tiny",
    )
    run_operator(op, facts)
    bpy.ops.object.mode_set(mode="OBJECT")
    facts["status"] = scene.brushlink.status
    if not jobs or "result" not in jobs[0]:
        return facts
    # the same picture with a hard edge, onto the copy: the placement once more, blend 0
    where = jobs[0]["where"]
    projection = module("projection")
    hard_target = projection.Target("Grid hard", where.targets[0].faces, where.targets[0].uv)
    settings = projection.ProjectionSettings(128, 0, dict(where.settings.made_with))
    again = projection.Projection(where.request, where.camera, [hard_target], settings)
    facts["hard_status"] = again.result(jobs[0]["result"])
    save_png(bpy.data.images["Projected: Grid"], out / "blended")
    save_png(bpy.data.images["Projected: Grid hard"], out / "hard")
    # a second projection onto the grid paints into its projected texture, not a new one
    images = sorted(i.name for i in bpy.data.images)
    target = projection.Target("Grid", where.targets[0].faces, where.targets[0].uv)
    settings = projection.ProjectionSettings(512, 12, dict(where.settings.made_with))
    projection.Projection(where.request, where.camera, [target], settings).result(jobs[0]["result"])
    facts["new_images_again"] = sorted(
        i.name for i in bpy.data.images if i.name not in images and not i.name.startswith("View")
    )
    save_png(bpy.data.images["Projected: Grid"], out / "again")
    facts["faces"] = face_facts(grid)
    return facts


# ----------------------------------------------------------------------------- restyle


def scenario_restyle(args: dict, out: Path) -> dict:
    """Render the scene, restyle the render (with its depth), then the same through the
    "restyle every render" handler."""
    scene, camera, cube = stage((64, 48))
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 4
    views, restyle = module("views"), module("restyle")
    bpy.ops.render.render()
    restyle.poll()  # the setting is off: the render is let go
    before = sorted(i.name for i in bpy.data.images)
    images = module("images")
    save_pixels(images.decode_png(views.render_png(scene)), out / "render_before")
    jobs = capture_jobs()
    facts: dict = {"images_before": before}
    op = functools.partial(
        bpy.ops.brushlink.restyle_render, prompt="an oil painting", strength=0.5, seed=3
    )
    run_operator(op, facts)
    facts["status"] = scene.brushlink.status
    save_pixels(images.decode_png(views.render_png(scene)), out / "render_after")
    facts["new_images"] = [
        image_facts(i) for i in bpy.data.images if i.name not in before and i.packed_file
    ]
    if jobs:
        facts["job"] = job_facts(jobs[0]["job"], out, "restyle")
    facts["pending_after_operator"] = restyle.PENDING.qsize()
    # the handler: on, render, and the main thread's timer callback picks the render up
    props = scene.brushlink
    props.restyle_renders = True
    props.style_prompt = "a watercolour"
    props.strength = 0.4
    bpy.ops.render.render()
    facts["pending_after_render"] = restyle.PENDING.qsize()
    restyle.poll()
    facts["pending_after_poll"] = restyle.PENDING.qsize()
    facts["jobs"] = len(jobs)
    if len(jobs) > 1:
        facts["handler_job"] = job_facts(jobs[1]["job"], out, "handler")
    facts["images_after"] = sorted(i.name for i in bpy.data.images)
    return facts


# ----------------------------------------------------------------------------- keywords


def scenario_keywords(args: dict, out: Path) -> dict:
    """Operators' keyword arguments override the scene's settings and leave them unchanged."""
    scene = bpy.context.scene
    select_only(bpy.data.objects["Cube"])
    props = scene.brushlink
    props.prompt, props.seed, props.texture_model = "scene prompt", "5", "tiny"
    props.width = props.height = 64
    props.steps = 2
    keep = ("prompt", "seed", "width", "height", "steps", "seamless", "texture_model")
    snapshot = {k: getattr(props, k) for k in keep}
    facts: dict = {"scene_before": snapshot, "calls": {}}
    fill = bpy.ops.brushlink.texture_fill
    calls = {
        "text_seed": dict(prompt="kw prompt", seed_text="3000000000", seamless=False, width=96),
        "int_seed": dict(prompt="kw two", seed=7),
        "scene": {},
        "bad_seed": dict(seed_text="abc"),
        "bad_object": dict(object="No Such Object"),
    }
    for name, keywords in calls.items():
        before = {i.name for i in bpy.data.images}
        result: dict = {}
        run_operator(functools.partial(fill, **keywords), result)
        made = [i for i in bpy.data.images if i.name not in before]
        result["made"] = [image_facts(i) for i in made]
        result["scene_after"] = {k: getattr(props, k) for k in keep}
        facts["calls"][name] = result
    refresh: dict = {}
    run_operator(bpy.ops.brushlink.refresh, refresh)
    wm = bpy.context.window_manager
    refresh["models"] = [[i.name, i.family] for i in wm.brushlink_models]
    refresh["controlnets"] = [[i.name, i.family] for i in wm.brushlink_controlnets]
    facts["refresh"] = refresh
    return facts


SCENES = {
    "project_depth": scenario_project_depth,
    "project": scenario_project,
    "project_seam": scenario_project_seam,
    "restyle": scenario_restyle,
    "keywords": scenario_keywords,
}
