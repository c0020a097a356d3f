"""What the driver's scenarios share: saving pixels, calling operators, reading facts."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import bpy
import numpy as np


def save_png(image: bpy.types.Image, path: Path) -> None:
    """Write pixels as they are in memory (top row first) without touching the datablock."""
    width, height = image.size
    flat = np.empty(width * height * image.channels, np.float32)
    image.pixels.foreach_get(flat)
    rgba = flat.reshape(height, width, image.channels)[::-1]
    np.save(path.with_suffix(".npy"), np.clip(rgba * 255 + 0.5, 0, 255).astype(np.uint8))


def load_image(path: str, name: str) -> bpy.types.Image:
    image = bpy.data.images.load(path, check_existing=False)
    image.name = name
    return image


def run_operator(op, facts: dict) -> None:
    """Call an operator; record its return value or the report it raised."""
    try:
        facts["returned"] = sorted(op())
    except RuntimeError as exc:
        facts["returned"] = ["RAISED"]
        facts["report"] = str(exc)


def run_threaded(op, facts: dict, snapshot) -> None:
    """The UI path: the operator returns at once, the job runs on a worker thread, and only
    the main thread's drain (what the ``bpy.app.timers`` callback does) applies its events."""
    package = sys.modules["bl_ext.user_default.brushlink.worker"]
    worker = package.WORKER
    worker.block = False
    run_operator(op, facts)
    facts["running_after_return"] = len(worker.running())
    facts["status_after_return"] = bpy.context.scene.brushlink.status
    snapshot()  # nothing may have changed before a drain on the main thread
    while worker.running():
        time.sleep(0.02)
        worker.drain()
    facts["status"] = bpy.context.scene.brushlink.status


def cancel_midway(op, facts: dict, step: int, kill_pid: int = 0) -> None:
    """UI path: start the job, press Cancel once the server reports ``step``, wait for the end."""
    worker = sys.modules["bl_ext.user_default.brushlink.worker"].WORKER
    worker.block = False
    props = bpy.context.scene.brushlink
    run_operator(op, facts)
    cancelled = False
    while worker.running():
        time.sleep(0.02)
        worker.drain()
        if not cancelled and _step(props.status) >= step:
            previews = [i for i in bpy.data.images if i.name.startswith("Texture:")]
            facts["preview_before_cancel"] = [image_facts(i) for i in previews]
            if kill_pid:  # the server dies mid-job: Cancel must still end the job
                os.kill(kill_pid, signal.SIGKILL)
            facts["cancel"] = {}
            run_operator(bpy.ops.brushlink.cancel, facts["cancel"])
            cancelled = True
    facts["status"] = props.status


def _step(status: str) -> int:
    """The step number in a status like "Texture fill: step 3/150" (0 before any progress)."""
    if ": step " not in status:
        return 0
    return int(status.rsplit(": step ", 1)[1].split("/")[0])


def material_facts(obj: bpy.types.Object) -> dict:
    material = obj.active_material
    if material is None:
        return {"material": None}
    tree = material.node_tree
    links = [
        [link.from_node.name, link.from_socket.name, link.to_node.name, link.to_socket.name]
        for link in tree.links
    ]
    nodes = {
        n.name: {"type": n.type, "image": getattr(n, "image", None) and n.image.name}
        for n in tree.nodes
    }
    return {
        "material": material.name,
        "links": links,
        "nodes": nodes,
        "slots": len(obj.material_slots),
    }


def image_facts(image: bpy.types.Image) -> dict:
    made = image.get("brushlink")
    return {
        "made_with": made.to_dict() if made is not None else None,
        "name": image.name,
        "size": list(image.size),
        "packed": image.packed_file is not None,
        "colorspace": image.colorspace_settings.name,
    }
