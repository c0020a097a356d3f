"""Scenarios: live painting with the built-in model, and the history of results."""

import os
import statistics
import time

from krita import Krita, Selection
from krita_helpers import CONFIG, URL, names, open_photo, rect, rect_selection, scenario, wait_until


class Recorder:
    """The live session's connection, recording each job it sends."""

    def __init__(self, runner):
        self.runner = runner
        self.sent = []

    def start(self, job, on_done, on_event=None):
        req = job.request
        self.sent.append(
            {
                "kind": req.kind,
                "strength": req.strength,
                "seed": req.seed,
                "steps": req.steps,
                "image": [job.image.width, job.image.height, job.image.layout],
                "mask": job.mask is not None,
            }
        )
        return self.runner.start(job, on_done, on_event)


def stroke(node, x, y, colour, size=24):
    """What a brush stroke does to a layer's pixels (Krita's brush engine is not scriptable
    headless)."""
    node.setPixelData(bytes(colour) * size * size, x, y, size, size)


@scenario
def live_painting():
    import brushlink_krita
    from brushlink_krita.live import PREVIEW, LiveSession
    from brushlink_krita.options import KritaJob

    doc = Krita.instance().createDocument(256, 256, "live", "RGBA", "U8", "", 72.0)
    paint = doc.createNode("Paint", "paintlayer")
    doc.rootNode().addChildNode(paint, None)
    paint.setPixelData(bytes([90, 120, 150, 255]) * 256 * 256, 0, 0, 256, 256)
    doc.setActiveNode(paint)
    doc.setSelection(Selection())
    settings = {"model": "builtin", "strength": 0.6, "steps": 100}
    recorder = Recorder(brushlink_krita.connection(URL))

    def options():
        return KritaJob.build("style", "red brick wall texture", **settings)

    session = LiveSession(doc, options, lambda: recorder)
    session.start()  # the first job goes out at once, slow (100 steps)
    info = {"preview_added": PREVIEW in names(doc), "first_in_flight": session.running is not None}
    info["active_node"] = doc.activeNode().name() if doc.activeNode() else None
    wait_until(lambda: False, limit_s=0.2)
    stroke(paint, 20, 20, (0, 0, 255, 255))  # a stroke while it runs: that job is stale
    wait_until(lambda: session.stats["cancelled"] >= 1, limit_s=5)
    info["cancelled_after_stroke"] = session.stats["cancelled"]
    info["in_flight_after_cancel"] = session.running is not None
    settings["steps"] = None  # live painting's own quick draw (LIVE_STEPS) from here on
    wait_until(lambda: session.stats["shown"] >= 1, limit_s=120)
    info["after_first"] = dict(session.stats)
    preview = doc.nodeByName(PREVIEW)
    first = bytes(preview.pixelData(0, 0, 256, 256))
    # Latency: a stroke, then the preview layer updated (median of five).
    latencies, jobs = [], []
    for i in range(5):
        shown = session.stats["shown"]
        wait_until(lambda: False, limit_s=0.5)
        started = time.perf_counter()
        stroke(paint, 20 + 45 * i, 120, (40 * i, 200, 40, 255), size=40)
        wait_until(lambda s=shown: session.stats["shown"] > s, limit_s=120)
        latencies.append(time.perf_counter() - started)
        jobs.append(session.job_s)
    info["latency_ms"] = [round(s * 1000) for s in latencies]
    info["median_latency_ms"] = round(statistics.median(latencies) * 1000)
    info["median_job_ms"] = round(statistics.median(jobs) * 1000)
    info["best_latency_ms"] = round(min(latencies) * 1000)
    latest = bytes(preview.pixelData(0, 0, 256, 256))
    info["preview_changed"] = latest != first
    info["stats"] = dict(session.stats)
    info["sent"] = recorder.sent
    kept = session.apply()
    info["applied"] = {
        "name": kept.name(),
        "same_as_preview": bytes(kept.pixelData(0, 0, 256, 256)) == latest,
        "bounds": rect(kept),
    }
    info["history_kinds"] = [e.kind for e in brushlink_krita.results(doc)]
    session.stop()
    info["after_stop"] = names(doc)
    info["cpu_count"] = os.cpu_count()
    return info


@scenario
def history_applies_again():
    import brushlink_krita
    from brushlink_krita import history

    doc = open_photo("coffee")
    rect_selection(doc, 50, 60, 96, 64)
    first = brushlink_krita.generate("red brick wall texture", doc, model="builtin", seed=21,
                                     url=URL, timeout=300)  # fmt: skip
    first_px = bytes(first.pixelData(50, 60, 96, 64))
    rect_selection(doc, 150, 100, 64, 64)
    second = brushlink_krita.inpaint("", doc, model="fill", url=URL, timeout=300)
    wait_until(lambda: not history._pending, limit_s=30)  # the pixels are stored
    entries = brushlink_krita.results(doc)
    info = {
        "entries": [
            {
                "prompt": e.prompt,
                "seed": e.seed,
                "model": e.model,
                "kind": e.kind,
                "box": e.box,
                "thumb_bytes": len(e.thumbnail_png()),
                "size": e.size,
            }  # fmt: skip
            for e in entries
        ],
        "annotations": sorted(doc.annotationTypes()),
    }
    brushlink_krita.discard(first)
    brushlink_krita.discard(second)
    again = brushlink_krita.apply_again(entries[-1], doc)  # the oldest: the brick wall
    info["again"] = {
        "name": again.name(),
        "bounds": rect(again),
        "same_pixels": bytes(again.pixelData(50, 60, 96, 64)) == first_px,
    }
    # The history travels with the .kra.
    path = os.path.join(CONFIG["workdir"], "history.kra")
    doc.setBatchmode(True)
    doc.saveAs(path)
    doc.waitForDone()
    doc.close()
    reopened = Krita.instance().openDocument(path)
    kept = brushlink_krita.results(reopened)
    info["reopened"] = [e.prompt for e in kept]
    layer = brushlink_krita.apply_again(kept[-1].id, reopened)
    info["reopened_same_pixels"] = bytes(layer.pixelData(50, 60, 96, 64)) == first_px
    return info
