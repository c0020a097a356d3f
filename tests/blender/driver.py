"""Runs inside Blender (the ``bpy`` module's Python): install the extension zip, run one scenario.

    python driver.py ZIP SCENARIO OUT_DIR [key=value ...]

The extension is installed exactly as a user's Blender would install it (``package_install_files``
into the user repository; ``BLENDER_USER_RESOURCES`` points at a temporary folder). The scenario
writes ``OUT_DIR/facts.json`` (what it observed) and PNGs of the images it produced; the pytest
side asserts on them. No assertion lives here, so a failure shows up in pytest's report.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

import bpy
from common import (
    cancel_midway,
    image_facts,
    load_image,
    material_facts,
    run_operator,
    run_threaded,
    save_png,
)
from scenes import SCENES


def install(zip_path: str) -> str:
    bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="user_default", enable_on_install=True
    )
    return "bl_ext.user_default.brushlink"


def scenario_texture_fill(args: dict, out: Path) -> dict:
    scene = bpy.context.scene
    obj = bpy.data.objects["Cube"]
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    if args.get("drop_material") == "1":
        obj.data.materials.clear()
    if args.get("no_uv") == "1":
        while obj.data.uv_layers:
            obj.data.uv_layers.remove(obj.data.uv_layers[0])
    props = scene.brushlink
    props.prompt = args.get("prompt", "mossy stone wall")
    props.width = int(args.get("width", 256))
    props.height = int(args.get("height", 256))
    props.seed = str(args.get("seed", 7))
    props.seamless = args.get("seamless", "1") == "1"
    props.derived_maps = args.get("derived", "0") == "1"
    props.texture_model = args.get("model", "")
    props.steps = int(args.get("steps", 0))
    images_before = sorted(i.name for i in bpy.data.images)
    materials_before = sorted(m.name for m in bpy.data.materials)
    facts: dict = {"images_before": images_before, "materials_before": materials_before}
    if args.get("cancel_at_step"):
        kill = int(args.get("kill_pid", 0))
        cancel_midway(bpy.ops.brushlink.texture_fill, facts, int(args["cancel_at_step"]), kill)
    else:
        run_operator(bpy.ops.brushlink.texture_fill, facts)
    if args.get("twice") == "1":
        facts["first_nodes"] = material_facts(obj)["nodes"]
        props.seed = str(int(props.seed) + 1)
        run_operator(bpy.ops.brushlink.texture_fill, facts.setdefault("second", {}))
    tex = obj.active_material and obj.active_material.node_tree.nodes.get("brushlink texture")
    facts["projection"] = tex.projection if tex else None
    facts["images_after"] = sorted(i.name for i in bpy.data.images)
    facts["materials_after"] = sorted(m.name for m in bpy.data.materials)
    facts.update(material_facts(obj))
    facts["status"] = props.status
    facts["images"] = {}
    for image in bpy.data.images:
        if image.name.startswith("Texture:"):
            facts["images"][image.name] = image_facts(image)
            kind = image.name.rsplit(" ", 1)[-1]
            maps = ("normal", "roughness", "height", "occlusion")
            save_png(image, out / (kind if kind in maps else "texture"))
    if args.get("save") and facts["returned"] == ["FINISHED"]:
        blend = out / "scene.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))
        facts["blend"] = str(blend)
    return facts


def scenario_reopen(args: dict, out: Path) -> dict:
    """Open a saved .blend in a fresh Blender: is the packed texture still there?"""
    bpy.ops.wm.open_mainfile(filepath=args["blend"])
    facts: dict = material_facts(bpy.data.objects["Cube"])
    facts["images"] = {}
    for image in bpy.data.images:
        if image.name.startswith("Texture:"):
            facts["images"][image.name] = image_facts(image)
            save_png(image, out / "reopened")
    return facts


def scenario_inpaint(args: dict, out: Path) -> dict:
    scene = bpy.context.scene
    image = load_image(args["image"], "photo")
    props = scene.brushlink
    props.source_image = image
    props.inpaint_model = args.get("model", "fill")
    if args.get("mask"):
        props.mask_image = load_image(args["mask"], "mask")
    facts: dict = {"images_before": sorted(i.name for i in bpy.data.images)}
    save_png(image, out / "before")
    if args.get("threaded") == "1":
        run_threaded(bpy.ops.brushlink.inpaint_image, facts, lambda: save_png(image, out / "early"))
    else:
        run_operator(bpy.ops.brushlink.inpaint_image, facts)
    facts["images_after"] = sorted(i.name for i in bpy.data.images)
    facts["status"] = props.status
    facts["image"] = image_facts(image)
    save_png(image, out / "after")
    if args.get("revert") == "1":
        run_operator(bpy.ops.brushlink.revert_inpaint, facts.setdefault("revert", {}))
        save_png(image, out / "reverted")
    return facts


def scenario_style(args: dict, out: Path) -> dict:
    scene = bpy.context.scene
    image = load_image(args["image"], "photo")
    props = scene.brushlink
    props.source_image = image
    props.style_model = args.get("model", "filters")
    props.style_mode = args.get("mode", "NAMED")
    props.style = args.get("style", "sketch")
    if args.get("reference"):
        props.reference_image = load_image(args["reference"], "reference")
    facts: dict = {"images_before": sorted(i.name for i in bpy.data.images)}
    save_png(image, out / "source")
    run_operator(bpy.ops.brushlink.style_image, facts)
    facts["images_after"] = sorted(i.name for i in bpy.data.images)
    facts["status"] = props.status
    new = [i for i in bpy.data.images if i.name not in facts["images_before"]]
    facts["new_images"] = [image_facts(i) for i in new]
    for i, img in enumerate(new):
        save_png(img, out / f"styled{i}")
    save_png(image, out / "source_after")
    return facts


def scenario_settings(args: dict, out: Path) -> dict:
    """Report what the extension registered (operators, panels, preferences)."""
    package = "bl_ext.user_default.brushlink"
    prefs = bpy.context.preferences.addons[package].preferences
    module = sys.modules[package]
    from bl_ext.user_default.brushlink import preferences  # type: ignore[import-not-found]

    cancel: dict = {}
    run_operator(bpy.ops.brushlink.cancel, cancel)  # no job running
    no_object: dict = {}
    bpy.context.view_layer.objects.active = None
    bpy.context.scene.brushlink.prompt = "mossy stone wall"
    run_operator(bpy.ops.brushlink.texture_fill, no_object)
    camera: dict = {}
    bpy.context.view_layer.objects.active = bpy.data.objects["Camera"]
    run_operator(bpy.ops.brushlink.texture_fill, camera)
    return {
        "cancel_without_job": cancel,
        "fill_without_object": no_object,
        "fill_on_camera": camera,
        "operators": sorted(n for n in dir(bpy.ops.brushlink) if not n.startswith("_")),
        "panels": sorted(
            c
            for c in (
                "BRUSHLINK_PT_view3d",
                "BRUSHLINK_PT_image_editor",
                "BRUSHLINK_PT_shader_editor",
            )
            if hasattr(bpy.types, c)
        ),
        "scene_props": hasattr(bpy.types.Scene, "brushlink"),
        "prefs_url": prefs.url,
        "url": preferences.server_url(),
        "token_found": preferences.server_token() is not None,
        "plugin_from": sys.modules["brushlink.plugin"].__path__[0],
        "websockets_from": sys.modules["websockets"].__file__
        if "websockets" in sys.modules
        else None,
        "module_file": module.__file__,
    }


SCENARIOS = {
    "texture_fill": scenario_texture_fill,
    "reopen": scenario_reopen,
    "inpaint": scenario_inpaint,
    "style": scenario_style,
    "settings": scenario_settings,
    **SCENES,
}


def main() -> int:
    zip_path, scenario, out_dir, *pairs = sys.argv[1:]
    args = dict(pair.split("=", 1) for pair in pairs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    install(zip_path)
    if args.get("url"):
        prefs = bpy.context.preferences.addons["bl_ext.user_default.brushlink"].preferences
        prefs.url = args["url"]
        prefs.token = args.get("token", "")
    try:
        facts = SCENARIOS[scenario](args, out)
    except Exception:
        facts = {"driver_error": traceback.format_exc()}
    # Disabling runs the extension's unregister (closes its client, drops its timer), which
    # also lets the bpy module shut down cleanly.
    bpy.ops.preferences.addon_disable(module="bl_ext.user_default.brushlink")
    facts["disabled_cleanly"] = (
        "bl_ext.user_default.brushlink" not in bpy.context.preferences.addons
    )
    (out / "facts.json").write_text(json.dumps(facts, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
