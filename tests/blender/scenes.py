"""Driver scenarios for operators' keyword arguments: each runs the extension's operators and
writes facts and pixels; the pytest side asserts on them.
"""

from __future__ import annotations

import functools
from pathlib import Path

import bpy
from common import image_facts, run_operator


def select_only(*objects: bpy.types.Object) -> None:
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj in objects)
    bpy.context.view_layer.objects.active = objects[0]


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
    return facts


SCENES = {
    "keywords": scenario_keywords,
}
