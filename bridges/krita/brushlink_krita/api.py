"""The scripting API (Krita's Scripter, tests) and the one job flow the docker uses too.

    import brushlink_krita
    layer = brushlink_krita.inpaint("a red balloon", inpaint={"grow": 8})
    group = brushlink_krita.style(style="sketch", candidates=3)
    brushlink_krita.apply(group)
    layer = brushlink_krita.generate("a castle", model="sd15", controls=[
        {"layer": "Sketch", "model": "lineart-sd15", "preprocessor": "lineart", "strength": 0.8}])
    big = brushlink_krita.upscale(scale=2)

``generate``, ``inpaint``, ``style`` and ``upscale`` take the request's fields by name
(``model``, ``strength``, ``seed``, ``candidates``, ``inpaint``, ``loras``, ``vae``,
``upscale``, ``options``, ...) and Krita's own (``reference``, ``exclude``, ``use_selection``,
``controls``). They block until the result layers exist (Qt events keep being processed
meanwhile, so Krita stays responsive) and return the new layer, or the group of candidates.
Each result is one undo step and is kept in the document's history. Failures raise a
``BrushlinkError`` subclass (``ServerUnavailable``, ``Unauthorized``, the server's own
error...), and the document is left as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from krita import Krita
from PyQt5.QtCore import QEventLoop, QTimer

from . import history, layers, runner
from .core import errors, host, protocol
from .options import KritaJob
from .runner import as_brushlink_error
from .selection import build_job
from .settings import Settings, save_to_document

log = logging.getLogger("brushlink.krita")

DoneCallback = Callable[[Any, "errors.BrushlinkError | None"], None]


def connection(url: str | None = None, token: str | None = None) -> host.HostRunner:
    """The shared runner for ``url``/``token``, defaults from the plugin's settings."""
    settings = Settings.load()
    return runner.runner(url or settings.resolved_url(), token or settings.resolved_token())


def reconnect(url: str | None = None, token: str | None = None) -> host.HostRunner:
    """A fresh runner for ``url``/``token``: the old connection is closed, so the next one
    sees a restarted server's models."""
    settings = Settings.load()
    url, token = url or settings.resolved_url(), token or settings.resolved_token()
    runner.forget(url, token)
    return runner.runner(url, token)


def start(
    job: KritaJob,
    document=None,
    *,
    on_done: DoneCallback,
    on_event: Callable[[protocol.Message], None] | None = None,
    url: str | None = None,
    token: str | None = None,
) -> host.RunningJob:
    """Submit a job without waiting. ``on_done(layer_or_group, error)`` runs on the main thread
    once the layers exist (or with the error). Problems found before submitting raise."""
    document = document or Krita.instance().activeDocument()
    sent, placement = build_job(document, job)
    above = insertion_point(document)

    def finished(result: protocol.Result | None, error: errors.BrushlinkError | None) -> None:
        runner.MAIN.release()
        if error is not None or result is None:
            on_done(None, as_brushlink_error(error or errors.InternalError()))
            return
        if job.kind == "upscale" and not job.request.upscale.refine:
            for image in result.images:
                image.seed = None  # a plain upscale draws nothing: its seed means nothing
        try:
            pixels = layers.result_pixels(placement, result.images)
            node = layers.place_results(placement, job.label(), result.images, above, pixels)
        except Exception as exc:
            on_done(None, as_brushlink_error(exc))
            return
        try:
            save_to_document(document, job)
            model = str(result.metadata.get("model") or "")
            for image, bgra in zip(result.images, pixels, strict=True):
                history.record(document, job, model, placement.out, image.seed, bgra)
        except Exception:  # losing the remembered prompt must not lose the result
            log.exception("brushlink: could not store the options or history in the document")
        on_done(node, None)

    runner.MAIN.hold()
    return connection(url, token).start(sent, finished, on_event)


def insertion_point(document):
    """The node new layers go above: the active layer (a mask's layer, not the mask)."""
    node = document.activeNode()
    while node is not None and node.type().endswith("mask"):
        parent = node.parentNode()
        if parent is None or parent.parentNode() is None:
            return None  # a global selection mask: add on top of the image
        node = parent
    if node is None or node.parentNode() is None:
        return None  # no active layer, or the root itself: add on top
    return node


def run(job: KritaJob, document=None, *, timeout: float | None = None, **where: Any):
    """Start a job and wait (processing Qt events) until its layers exist; returns them."""
    outcome: dict[str, Any] = {}
    loop = QEventLoop()

    def done(node, error) -> None:
        outcome["node"], outcome["error"] = node, error
        loop.quit()

    running = start(job, document, on_done=done, **where)
    if timeout is None:
        timeout = Settings.load().timeout or None
    timer = None
    if timeout:

        def give_up() -> None:
            # Even a server that stopped answering cannot hold the caller, nor add a
            # layer after it has been told the job failed.
            running.abandon()
            runner.MAIN.release()
            done(None, errors.ServerUnavailable(f"The job did not finish within {timeout:g} s."))

        timer = QTimer()
        timer.setSingleShot(True)
        timer.timeout.connect(give_up)
        timer.start(int(timeout * 1000))
    if not running.finished and "node" not in outcome:
        loop.exec_()
    if timer is not None:
        timer.stop()
    node, error = outcome.pop("node"), outcome.pop("error")
    if error is None:
        return node
    try:
        raise error
    finally:
        # The traceback holds this frame: without this, error -> frame -> error is a cycle
        # that keeps the document alive until Krita has gone (and crashes it on exit).
        del error, node, document


def _blocking(kind: str, prompt: str, document, settings: dict[str, Any]):
    where = {k: settings.pop(k) for k in ("url", "token", "timeout") if k in settings}
    return run(KritaJob.build(kind, prompt, **settings), document, **where)


def generate(prompt: str, document=None, **settings: Any):
    """A new image from ``prompt`` over the selection's box (or the canvas)."""
    return _blocking("generate", prompt, document, settings)


def inpaint(prompt: str = "", document=None, **settings: Any):
    """Regenerate the selected region (with no prompt: remove what is there); the new layer
    is limited to the grown, feathered selection."""
    return _blocking("inpaint", prompt, document, settings)


def style(prompt: str = "", document=None, **settings: Any):
    """Restyle the selection (or the canvas): ``style="sketch"``, ``reference="Layer"``, or a
    prompt with ``strength``."""
    return _blocking("style", prompt, document, settings)


def upscale(document=None, scale: int = 2, **settings: Any):
    """Upscale the selection (into a new layer) or the whole image (the canvas grows with it):
    ``scale`` 2 or 4 (the model's `accepts.scales`); ``refine="<checkpoint>"`` and
    ``strength`` redraw the upscaled picture with a checkpoint."""
    params = dict(settings.pop("upscale", None) or {})
    params.setdefault("scale", scale)
    for key in ("refine", "strength"):
        if key in settings:
            params[key] = settings.pop(key)
    settings["upscale"] = params
    return _blocking("upscale", settings.pop("prompt", ""), document, settings)


def live(
    prompt: str = "",
    document=None,
    *,
    url: str | None = None,
    token: str | None = None,
    **settings: Any,
):
    """Start live painting on ``document``: each change of the canvas regenerates the selection
    (or the canvas) into a preview layer. Returns the ``LiveSession``: ``apply()`` keeps the
    current picture as a layer, ``stop()`` ends it and removes the preview."""
    from .live import LiveSession

    document = document or Krita.instance().activeDocument()
    settings.setdefault("strength", 0.5)
    job = KritaJob.build("style", prompt, **settings)
    build_job(document, job)  # a mistake is raised here, before anything changes
    session = LiveSession(
        document, lambda: KritaJob.from_dict(job.to_dict()) or job, lambda: connection(url, token)
    )
    session.start()
    return session


def results(document=None) -> list:
    """The document's history of results, newest first (``history.Entry``: ``id``, ``prompt``,
    ``seed``, ``model``, ``box``, ``thumbnail_png()``)."""
    return history.entries(document or Krita.instance().activeDocument())


def apply_again(entry, document=None):
    """A result from the history (an ``Entry`` or its ``id``) as a new layer, exactly as it
    came, in one undo step."""
    document = document or Krita.instance().activeDocument()
    return history.apply_again(document, entry, insertion_point(document))


def apply(node, merge: bool = False):
    """Keep a result (the visible candidate of a group); ``merge`` merges it down."""
    return layers.apply(node, merge)


def discard(node) -> None:
    """Remove a result layer or group."""
    layers.discard(node)


def models(url: str | None = None, token: str | None = None) -> list:
    """The server's models, as ``ModelCard``s (blocks while connecting)."""
    return list(connection(url, token).welcome().models)
