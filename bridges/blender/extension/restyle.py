"""Restyle Every Render: after each render, the render restyled by the prompt (off by default).

Blender calls ``render_post`` handlers on the render's own thread in the UI, so the handler only
puts the scene into a queue (a thread-safe put: it reads nothing of ``bpy`` and never waits).
A ``bpy.app.timers`` callback on the main thread looks at the queue twice a second; once no
render job is running (an animation renders its frames back to back: the last one is
restyled), it starts one Restyle Render for each scene whose setting is on, exactly as the
operator would (``view_operators.build_restyle``), and the job runs on a worker thread as
every other job. The render pipeline is never held up, and ``bpy`` is only touched on the main
thread. Depth renders of our own (``views.render_depth``) are not counted as renders.
"""

from __future__ import annotations

import queue
from typing import Any

import bpy

from brushlink.plugin.errors import BrushlinkError

from . import views
from .settings import Settings

POLL_SECONDS = 0.5
PENDING: queue.SimpleQueue[Any] = queue.SimpleQueue()


@bpy.app.handlers.persistent
def on_render_post(scene: Any, depsgraph: Any = None) -> None:
    if not views.OWN_RENDERS:  # a Python counter, not bpy: safe on any thread
        PENDING.put(scene)


def poll() -> float:
    """Main thread: restyle what was rendered since the last look (returns the next delay)."""
    if bpy.app.is_job_running("RENDER"):
        return POLL_SECONDS
    scenes: list[Any] = []
    while True:
        try:
            scene = PENDING.get_nowait()
        except queue.Empty:
            break
        if all(scene is not s for s in scenes):
            scenes.append(scene)
    for scene in scenes:
        try:
            wanted = scene.brushlink.restyle_renders
        except (ReferenceError, AttributeError):  # the scene is gone
            continue
        if wanted:
            start(scene)
    return POLL_SECONDS


def start(scene: bpy.types.Scene) -> None:
    """Start a Restyle Render of ``scene``'s last render from its settings; problems are
    reported like any job's."""
    from .operators import _report_later
    from .view_operators import _RESTYLE, build_restyle
    from .worker import WORKER, Outcome

    context = type("SceneContext", (), {"scene": scene})()
    try:
        job, where = build_restyle(scene, Settings(None, context, _RESTYLE))
    except (ValueError, BrushlinkError) as exc:
        text = getattr(exc, "message", None) or str(exc)
        _report_later(Outcome("ERROR", f"Restyle of the render failed: {text}"))
        return
    outcome = WORKER.start(job, where, _report_later, scene)
    if outcome is not None:  # background mode: it ran to its end already
        _report_later(outcome)


def register() -> None:
    if on_render_post not in bpy.app.handlers.render_post:
        bpy.app.handlers.render_post.append(on_render_post)
    if not bpy.app.background and not bpy.app.timers.is_registered(poll):
        bpy.app.timers.register(poll, first_interval=POLL_SECONDS, persistent=True)


def unregister() -> None:
    if on_render_post in bpy.app.handlers.render_post:
        bpy.app.handlers.render_post.remove(on_render_post)
    if bpy.app.timers.is_registered(poll):
        bpy.app.timers.unregister(poll)
