"""The scripting API (Krita's Scripter, tests) and the one job flow the docker uses too.

    import brushlink_krita
    layer = brushlink_krita.inpaint("a red balloon", model="fill")
    group = brushlink_krita.style(style="sketch", candidates=3)
    brushlink_krita.apply(group)

``generate``, ``inpaint`` and ``style`` block until the result layers exist (Qt events keep
being processed meanwhile, so Krita stays responsive) and return the new layer, or the group
of candidates. Failures raise a ``BrushlinkError`` subclass (``ServerUnavailable``,
``Unauthorized``, the server's own error...), and the document is left as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from krita import Krita
from PyQt5.QtCore import QEventLoop, QTimer

from . import layers
from .core import errors, protocol
from .options import JobOptions
from .runner import Connection, RemoteJob, as_brushlink_error
from .selection import build_request
from .settings import Settings, save_to_document

log = logging.getLogger("brushlink.krita")

DoneCallback = Callable[[Any, "errors.BrushlinkError | None"], None]


def connection(url: str | None = None, token: str | None = None) -> Connection:
    """The shared connection for ``url``/``token``, defaults from the plugin's settings."""
    settings = Settings.load()
    return Connection.get(url or settings.resolved_url(), token or settings.resolved_token())


def start(
    options: JobOptions,
    document=None,
    *,
    on_done: DoneCallback,
    on_event: Callable[[protocol.Message], None] | None = None,
    url: str | None = None,
    token: str | None = None,
) -> RemoteJob:
    """Submit a job without waiting. ``on_done(layer_or_group, error)`` runs on the main thread
    once the layers exist (or with the error). Problems found before submitting raise."""
    document = document or Krita.instance().activeDocument()
    job, placement = build_request(document, options)
    above = _insertion_point(document)

    def finished(result: protocol.Result | None, error: BaseException | None) -> None:
        if error is not None:
            on_done(None, as_brushlink_error(error))
            return
        try:
            node = layers.place_results(placement, options.label(), result.result_images(), above)
        except Exception as exc:
            on_done(None, as_brushlink_error(exc))
            return
        try:
            save_to_document(document, options)
        except Exception:  # losing the remembered prompt must not lose the result
            log.exception("brushlink: could not store the options in the document")
        on_done(node, None)

    return RemoteJob(connection(url, token), job, finished, on_event).start()


def _insertion_point(document):
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


def run(options: JobOptions, document=None, *, timeout: float | None = None, **where: Any):
    """Start a job and wait (processing Qt events) until its layers exist; returns them."""
    outcome: dict[str, Any] = {}
    loop = QEventLoop()

    def done(node, error) -> None:
        outcome["node"], outcome["error"] = node, error
        loop.quit()

    job = start(options, document, on_done=done, **where)
    if timeout is None:
        timeout = Settings.load().timeout or None
    timer = None
    if timeout:

        def give_up() -> None:
            # Even a server that stopped answering cannot hold the caller, nor add a
            # layer after it has been told the job failed.
            job.abandon()
            done(None, errors.ServerUnavailable(f"The job did not finish within {timeout:g} s."))

        timer = QTimer()
        timer.setSingleShot(True)
        timer.timeout.connect(give_up)
        timer.start(int(timeout * 1000))
    if not job.finished:
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


def _blocking(mode: str, prompt: str, document, options: dict[str, Any]):
    where = {k: options.pop(k) for k in ("url", "token", "timeout") if k in options}
    return run(JobOptions.build(mode, prompt, **options), document, **where)


def generate(prompt: str, document=None, **options: Any):
    """A new image from ``prompt`` over the selection's box (or the canvas)."""
    return _blocking("generate", prompt, document, options)


def inpaint(prompt: str = "", document=None, **options: Any):
    """Regenerate the selected region; the new layer is limited to the selection."""
    return _blocking("inpaint", prompt, document, options)


def style(prompt: str = "", document=None, **options: Any):
    """Restyle the selection (or the canvas): ``style="sketch"`` or ``reference="Layer"``."""
    return _blocking("style", prompt, document, options)


def apply(node, merge: bool = False):
    """Keep a result (the visible candidate of a group); ``merge`` merges it down."""
    return layers.apply(node, merge)


def discard(node) -> None:
    """Remove a result layer or group."""
    layers.discard(node)


def models(url: str | None = None, token: str | None = None) -> list[dict[str, Any]]:
    """The server's models (blocks while connecting)."""
    return list(connection(url, token).ensure_connected().models)
