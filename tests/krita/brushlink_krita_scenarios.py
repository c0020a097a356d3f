"""Runs inside real Krita: `QT_QPA_PLATFORM=offscreen kritarunner -s brushlink_krita_scenarios`.

Reads its settings from the JSON file named by BRUSHLINK_KRITA_TEST, installs the plugin zip
with Krita's own importer, runs every scenario against a real brushlink server and writes a JSON
report that tests/test_krita_bridge.py asserts on. A scenario that raises is recorded with its
error and traceback; the next one still runs.
"""

import faulthandler
import importlib.util
import json
import math
import os
import socket
import sys
import time
import traceback

from krita import Krita, Selection
from PyQt5 import sip
from PyQt5.QtCore import QEventLoop, QTimer

with open(os.environ["BRUSHLINK_KRITA_TEST"]) as _config:
    CONFIG = json.load(_config)
REPORT = {}
IMPORTER = "/usr/share/krita/pykrita/plugin_importer/plugin_importer.py"


# --------------------------------------------------------------------------- helpers


def install_bundle():
    spec = importlib.util.spec_from_file_location("krita_plugin_importer", IMPORTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    resources = Krita.instance().getAppDataLocation()
    imported = module.PluginImporter(CONFIG["zip"], resources, lambda plugin: True).import_all()
    pykrita = os.path.join(resources, "pykrita")
    sys.path.insert(0, pykrita)
    return [p["name"] for p in imported], pykrita


def open_photo(name):
    doc = Krita.instance().openDocument(CONFIG["photos"][name])
    doc.waitForDone()
    return doc


def pixels(doc):
    doc.refreshProjection()
    doc.waitForDone()
    return bytes(doc.pixelData(0, 0, doc.width(), doc.height()))


def names(doc):
    return [n.name() for n in doc.topLevelNodes()]


def rect(node):
    r = node.bounds()
    return [r.x(), r.y(), r.width(), r.height()]


def soft_ellipse(doc, cx, cy, rx, ry, soft):
    """A selection shaped like an ellipse whose edge fades over `soft` pixels."""
    w, h = doc.width(), doc.height()
    mask = bytearray(w * h)
    for y in range(max(0, cy - ry - soft), min(h, cy + ry + soft + 1)):
        for x in range(max(0, cx - rx - soft), min(w, cx + rx + soft + 1)):
            d = math.hypot((x - cx) / rx, (y - cy) / ry)  # 1.0 on the ellipse
            edge = (1.0 - d) * min(rx, ry) / soft + 0.5  # 0..1 across the soft band
            mask[y * w + x] = max(0, min(255, round(edge * 255)))
    sel = Selection()
    sel.setPixelData(bytes(mask), 0, 0, w, h)
    doc.setSelection(sel)
    return bytes(mask)


def rect_selection(doc, x, y, w, h):
    sel = Selection()
    sel.select(x, y, w, h, 255)
    doc.setSelection(sel)
    mask = bytearray(doc.width() * doc.height())
    for row in range(y, y + h):
        mask[row * doc.width() + x : row * doc.width() + x + w] = b"\xff" * w
    return bytes(mask)


def compare(before, after, mask):
    """Changed pixels where the mask is 0, where it is 255, and where it is in between."""
    out = {"outside": 0, "inside": 0, "inside_total": 0, "soft_total": 0, "soft_changed": 0}
    for i, m in enumerate(mask):
        changed = before[4 * i : 4 * i + 4] != after[4 * i : 4 * i + 4]
        if m == 0:
            out["outside"] += changed
        elif m == 255:
            out["inside_total"] += 1
            out["inside"] += changed
        else:
            out["soft_total"] += 1
            out["soft_changed"] += changed
    return out


def mean_bgr(data, width, box, inside):
    x0, y0, w, h = box
    sums, count = [0, 0, 0], 0
    for y in range(y0, y0 + h):
        for x in range(x0, x0 + w):
            if inside(x, y):
                i = 4 * (y * width + x)
                for c in range(3):
                    sums[c] += data[i + c]
                count += 1
    return [s / max(count, 1) for s in sums]


def layer_alpha(node, box):
    data = bytes(node.pixelData(*box))
    return data[3::4]


def wait_until(condition, limit_s=180):
    """Process Qt events until condition() holds (the limit only guards against a hang)."""
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(20)
    deadline = time.monotonic() + limit_s

    def check():
        if condition() or time.monotonic() > deadline:
            loop.quit()

    timer.timeout.connect(check)
    timer.start()
    if not condition():
        loop.exec_()
    timer.stop()
    return condition()


def scenario(fn):
    def run():
        started = time.monotonic()
        try:
            result = fn() or {}
            result["ok"] = True
        except Exception as exc:
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            result["traceback"] = traceback.format_exc()
        result["seconds"] = round(time.monotonic() - started, 3)
        REPORT[fn.__name__] = result

    run.__name__ = fn.__name__
    return run


def error_info(exc):
    return {"type": type(exc).__name__, "code": getattr(exc, "code", None), "message": str(exc)}


# --------------------------------------------------------------------------- scenarios

URL = CONFIG["url"]
EXACT = {"grow": 0, "feather": 0}  # the server regenerates exactly the selection


@scenario
def install():
    imported, pykrita = install_bundle()
    import brushlink_krita
    import websockets

    return {
        "imported": imported,
        "plugin_file": brushlink_krita.__file__,
        "pykrita": pykrita,
        "websockets_file": websockets.__file__,
        "core_module": brushlink_krita.core.host.__name__,
        "installed_brushlink_loaded": "brushlink" in sys.modules,
        "models": [m.name for m in brushlink_krita.models(url=URL)],
        "welcome_styles": {m.name: m.styles for m in brushlink_krita.models(url=URL)},
    }


@scenario
def rect_inpaint():
    import brushlink_krita

    doc = open_photo("coffee")
    # Something to remove: a magenta patch on its own layer, inside the selection.
    blemish = doc.createNode("Blemish", "paintlayer")
    doc.rootNode().addChildNode(blemish, None)
    blemish.setPixelData(bytes([255, 0, 255, 255]) * 60 * 30, 330, 125, 60, 30)
    mask = rect_selection(doc, 300, 100, 120, 80)
    before = pixels(doc)
    layer = brushlink_krita.inpaint("", doc, model="fill", inpaint=EXACT, url=URL, timeout=300)
    after = pixels(doc)
    w = doc.width()
    hole = mean_bgr(after, w, (300, 100, 120, 80), lambda x, y: True)
    ring = mean_bgr(
        before,
        w,
        (280, 80, 160, 120),
        lambda x, y: not (300 <= x < 420 and 100 <= y < 180),
    )
    original = mean_bgr(before, w, (300, 100, 120, 80), lambda x, y: True)
    alpha = layer_alpha(layer, (300, 100, 120, 80))
    magenta = sum(
        1
        for y in range(100, 180)
        for x in range(300, 420)
        if after[4 * (y * w + x) + 1] < 80
        and after[4 * (y * w + x)] > 180
        and after[4 * (y * w + x) + 2] > 180
    )
    return {
        "name": layer.name(),
        "type": layer.type(),
        "bounds": rect(layer),
        "layers": names(doc),
        "diff": compare(before, after, mask),
        "hole_mean": hole,
        "ring_mean": ring,
        "original_mean": original,
        "alpha_min": min(alpha),
        "magenta_left": magenta,
        "saved_prompt_kind": brushlink_krita.settings.load_from_document(doc).kind,
    }


@scenario
def soft_ellipse_inpaint():
    import brushlink_krita

    doc = open_photo("astronaut")
    mask = soft_ellipse(doc, 380, 150, 60, 40, 10)
    before = pixels(doc)
    # the server's default grow and feather: the layer reaches a few pixels past the selection
    layer = brushlink_krita.inpaint("", doc, model="fill", url=URL, timeout=300)
    after = pixels(doc)
    box = rect(layer)
    alpha = bytes(layer.pixelData(0, 0, doc.width(), doc.height()))[3::4]
    soft_alpha = [a for a, m in zip(alpha, mask, strict=True) if 0 < a < 255]
    return {
        "name": layer.name(),
        "bounds": box,
        "diff": compare(before, after, mask),
        "alpha_below_mask": sum(a + 1 < m for a, m in zip(alpha, mask, strict=True)),
        "selection_bounds": [
            doc.selection().x(),
            doc.selection().y(),
            doc.selection().width(),
            doc.selection().height(),
        ],  # fmt: skip
        "soft_alpha_levels": len(set(soft_alpha)),
        "layers": names(doc),
    }


@scenario
def sixteen_bit_document():
    import brushlink_krita

    doc = open_photo("coffee")
    doc.setColorSpace("RGBA", "U16", "sRGB-elle-V2-srgbtrc.icc")
    doc.waitForDone()
    rect_selection(doc, 64, 64, 96, 64)
    before = pixels(doc)  # 8 bytes a pixel
    layer = brushlink_krita.inpaint("", doc, model="fill", inpaint=EXACT, url=URL, timeout=300)
    after = pixels(doc)
    w = doc.width()
    outside_changed = sum(
        before[8 * i : 8 * i + 8] != after[8 * i : 8 * i + 8]
        for i in range(len(before) // 8)
        if not (64 <= i % w < 160 and 64 <= i // w < 128)
    )
    inside_changed = sum(
        before[8 * i : 8 * i + 8] != after[8 * i : 8 * i + 8]
        for i in range(len(before) // 8)
        if 64 <= i % w < 160 and 64 <= i // w < 128
    )
    return {
        "doc_depth": doc.colorDepth(),
        "layer_space": [layer.colorModel(), layer.colorDepth()],
        "bounds": rect(layer),
        "outside_changed": outside_changed,
        "inside_changed": inside_changed,
    }


@scenario
def style_sketch_canvas():
    import brushlink_krita

    doc = open_photo("astronaut")
    doc.setSelection(Selection())  # nothing selected: the whole canvas
    layer = brushlink_krita.style(style="sketch", document=doc, url=URL, timeout=300)
    data = bytes(layer.pixelData(0, 0, doc.width(), doc.height()))
    spread = max(max(data[i : i + 3]) - min(data[i : i + 3]) for i in range(0, len(data), 4 * 97))
    return {
        "name": layer.name(),
        "bounds": rect(layer),
        "max_channel_spread": spread,
        "alpha_min": min(data[3::4]),
    }


@scenario
def generate_candidates_group():
    import brushlink_krita

    doc = open_photo("coffee")
    mask = rect_selection(doc, 40, 40, 200, 160)
    before = pixels(doc)
    group = brushlink_krita.generate(
        "red brick wall texture", doc, candidates=3, seed=7, url=URL, timeout=600
    )
    after = pixels(doc)
    children = list(reversed(group.childNodes()))
    best = bytes(children[0].pixelData(40, 40, 200, 160))
    info = {
        "type": group.type(),
        "name": group.name(),
        "children": [c.name() for c in children],
        "visible": [c.visible() for c in children],
        "child_bounds": [rect(c) for c in children],
        "best_mean_bgr": mean_bgr(best, 200, (0, 0, 200, 160), lambda x, y: True),
        "diff": compare(before, after, mask),
    }
    kept = brushlink_krita.apply(group)
    info["applied_name"] = kept.name()
    info["after_apply"] = names(doc)
    brushlink_krita.discard(kept)
    info["after_discard"] = names(doc)
    info["pixels_restored"] = pixels(doc) == before
    return info


@scenario
def style_from_a_reference_layer():
    import brushlink_krita

    doc = open_photo("coffee")
    palette = doc.createNode("Palette", "paintlayer")
    doc.rootNode().addChildNode(palette, None)
    ramp = b"".join(bytes([120 + y, 40 + y // 4, 20, 255]) * 128 for y in range(128))
    palette.setPixelData(ramp, 0, 0, 128, 128)  # shades of blue, top-left corner
    palette.setVisible(False)
    mask = rect_selection(doc, 64, 64, 256, 192)
    before = pixels(doc)
    layer = brushlink_krita.style(
        document=doc, model="filters", reference="Palette", url=URL, timeout=300
    )
    after = pixels(doc)
    w = doc.width()
    return {
        "name": layer.name(),
        "bounds": rect(layer),
        "diff": compare(before, after, mask),
        "before_mean_bgr": mean_bgr(before, w, (64, 64, 256, 192), lambda x, y: True),
        "after_mean_bgr": mean_bgr(after, w, (64, 64, 256, 192), lambda x, y: True),
    }


@scenario
def cancel_while_running():
    import brushlink_krita
    from brushlink_krita.core import protocol
    from brushlink_krita.options import KritaJob

    doc = open_photo("coffee")
    doc.setSelection(Selection())
    before_layers = names(doc)
    state = {"done": False, "steps_seen": []}
    job = {}

    def on_event(event):
        if isinstance(event, protocol.Progress) and event.step >= 1:
            state["steps_seen"].append([event.step, event.total])
            job["job"].cancel()  # as the docker's Cancel button does, mid-run

    def on_done(node, error):
        state.update(done=True, node=node, error=error)

    options = KritaJob.build("generate", "blue water", model="builtin", steps=100)
    job["job"] = brushlink_krita.start(options, doc, on_done=on_done, on_event=on_event, url=URL)
    wait_until(lambda: state["done"], limit_s=600)
    error = state.get("error")
    return {
        "error": error_info(error) if error else None,
        "node": state.get("node") is not None,
        "steps_seen": state["steps_seen"][:3],
        "layers_unchanged": names(doc) == before_layers,
    }


@scenario
def excluded_layers_are_not_sent():
    import brushlink_krita
    from brushlink_krita.images import png_to_bgra
    from brushlink_krita.options import KritaJob
    from brushlink_krita.selection import build_job

    doc = open_photo("coffee")
    overlay = doc.createNode("Overlay", "paintlayer")
    doc.rootNode().addChildNode(overlay, None)
    overlay.setPixelData(bytes([0, 0, 255, 255]) * 64 * 64, 0, 0, 64, 64)  # opaque red
    doc.setSelection(Selection())
    seen = {}
    for exclude in ([], ["Overlay"]):
        job, placement = build_job(doc, KritaJob.build("style", exclude=exclude))
        box = placement.box
        bgra = png_to_bgra(job.image, box.width, box.height)
        seen["with" if not exclude else "without"] = list(bgra[:4])
    return {
        "first_pixel": seen,
        "overlay_visible": overlay.visible(),
        "modules": brushlink_krita.__name__,
    }


@scenario
def errors_leave_the_document_alone():
    import brushlink_krita

    doc = open_photo("coffee")
    rect_selection(doc, 10, 10, 50, 50)
    before_layers, before = names(doc), pixels(doc)
    found = {}
    cases = {
        "server_down": {"url": CONFIG["down_url"]},
        "wrong_token": {"url": URL, "token": "not-the-token"},
        "unknown_model": {"url": URL, "model": "no-such-model"},
        "bad_option": {"url": URL, "colour": "blue"},
    }
    # A server that accepts connections and never answers: only the call's timeout ends it.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    cases["silent_server"] = {
        "url": f"ws://127.0.0.1:{silent.getsockname()[1]}/v1",
        "model": "fill",
        "timeout": 1,
    }
    for case, kwargs in cases.items():
        kwargs.setdefault("timeout", 120)
        try:
            brushlink_krita.inpaint("", doc, **kwargs)
            found[case] = None
        except Exception as exc:
            found[case] = error_info(exc)
    silent.close()
    doc.setSelection(Selection())
    try:
        brushlink_krita.inpaint("", doc, url=URL, model="fill")
        found["no_selection"] = None
    except Exception as exc:
        found["no_selection"] = error_info(exc)
    return {
        "errors": found,
        "layers_unchanged": names(doc) == before_layers,
        "pixels_unchanged": pixels(doc) == before,
    }


@scenario
def docker_round_trip():
    from brushlink_krita.docker import BrushlinkDocker
    from brushlink_krita.settings import Settings

    Settings(url=URL).save()
    doc = open_photo("coffee")
    rect_selection(doc, 200, 200, 64, 48)
    docker = BrushlinkDocker()
    docker.document_override = doc
    wait_until(lambda: docker.status.text() != "Connecting…")
    status_connected = docker.status.text()
    docker.mode.setCurrentText("inpaint")
    models = [docker.model.itemText(i) for i in range(docker.model.count())]
    docker.model.setCurrentText("fill")
    docker.prompt.setPlainText("patch the table")
    docker.generate_button.click()
    busy = not docker.generate_button.isEnabled()
    wait_until(lambda: docker.job is None)
    info = {
        "connected": status_connected,
        "models": models,
        "busy_while_running": busy,
        "status_done": docker.status.text(),
        "layers": names(doc),
    }
    docker.discard_button.click()
    info["after_discard"] = names(doc)
    # A mistake caught before sending: said in the status line, nothing starts.
    docker.exclude.setText("No such layer")
    docker.generate_button.click()
    info["status_bad_exclude"] = docker.status.text()
    info["started_anyway"] = docker.job is not None
    docker.exclude.setText("")
    # A stopped server: the message lands in the docker, nothing raises.
    docker.url.setText(CONFIG["down_url"])
    docker.generate_button.click()
    wait_until(lambda: docker.job is None)
    info["status_down"] = docker.status.text()
    info["layers_after_error"] = names(doc)
    # Reconnect to the live server again (a fresh connection, the models listed anew).
    docker.url.setText(URL)
    docker.reconnect_button.click()
    wait_until(lambda: docker.status.text() != "Connecting…")
    info["reconnected"] = docker.status.text()
    # The document remembers the last prompt; a fresh docker shows it.
    fresh = BrushlinkDocker()
    fresh.document_override = doc
    fresh.canvasChanged(None)
    info["restored_prompt"] = fresh.prompt.toPlainText()
    info["restored_mode"] = fresh.mode.currentText()
    info["restored_seed"] = None if fresh.random_seed.isChecked() else fresh.seed.value()
    # In Krita a docker belongs to the main window; these two have no parent: free them now.
    sip.delete(docker)
    sip.delete(fresh)
    return info


@scenario
def docker_generate_with_previews():
    from brushlink_krita.docker import BrushlinkDocker
    from brushlink_krita.settings import Settings

    Settings(url=URL).save()
    doc = open_photo("astronaut")
    doc.setSelection(Selection())
    docker = BrushlinkDocker()
    docker.document_override = doc
    wait_until(lambda: docker.status.text() != "Connecting…")
    seen = {"progress_max": 0}
    original_event = docker._event

    def spy(event):  # watch the bar as events arrive, then let the docker handle them
        original_event(event)
        seen["progress_max"] = max(seen["progress_max"], docker.progress.maximum())

    docker._event = spy
    docker.mode.setCurrentText("generate")
    docker.model.setCurrentText("builtin")
    docker.prompt.setPlainText("red brick wall texture")
    docker.random_seed.setChecked(False)
    docker.seed.setValue(3)
    docker.generate_button.click()
    wait_until(lambda: docker.job is None, limit_s=600)
    pixmap = docker.preview.pixmap()
    info = {
        "status": docker.status.text(),
        "preview_shown": pixmap is not None and not pixmap.isNull(),
        "progress_max": seen["progress_max"],
        "layers": names(doc),
    }
    sip.delete(docker)
    return info


@scenario
def settings_travel_with_the_kra():
    import brushlink_krita
    from brushlink_krita.settings import load_from_document

    doc = open_photo("coffee")
    rect_selection(doc, 100, 100, 40, 40)
    brushlink_krita.inpaint("a saved prompt", doc, model="fill", url=URL)
    path = os.path.join(CONFIG["workdir"], "saved.kra")
    doc.setBatchmode(True)
    doc.saveAs(path)
    doc.waitForDone()
    doc.close()
    again = Krita.instance().openDocument(path)
    saved = load_from_document(again)
    return {
        "prompt": saved.request.prompt if saved else None,
        "model": saved.request.model if saved else None,
        "layers": names(again),
    }


def record_uncaught(exc_type, exc, tb):
    """Krita shows a modal traceback dialog for an exception escaping a Qt callback (and a
    headless run hangs on it); the plugin must never let one escape. Record it instead."""
    REPORT.setdefault("uncaught", []).append("".join(traceback.format_exception(exc_type, exc, tb)))


def __main__(args):
    started = time.monotonic()
    sys.excepthook = record_uncaught
    # A hang must end with the stacks of every thread, not a silent kill.
    hang_log = open(os.path.join(CONFIG["workdir"], "hang.txt"), "w")  # noqa: SIM115
    faulthandler.dump_traceback_later(CONFIG.get("hang_s", 480), exit=True, file=hang_log)
    for run in (
        install,
        rect_inpaint,
        soft_ellipse_inpaint,
        sixteen_bit_document,
        style_sketch_canvas,
        style_from_a_reference_layer,
        generate_candidates_group,
        cancel_while_running,
        excluded_layers_are_not_sent,
        errors_leave_the_document_alone,
        docker_round_trip,
        docker_generate_with_previews,
        settings_travel_with_the_kra,
    ):
        if run is not install and not REPORT.get("install", {}).get("ok"):
            break
        if CONFIG.get("only") and run.__name__ not in ("install", *CONFIG["only"].split(",")):
            continue  # a developer's shortcut: run some scenarios only
        run()
    REPORT["total_seconds"] = round(time.monotonic() - started, 3)
    if "brushlink_krita" in sys.modules:
        sys.modules["brushlink_krita"].shutdown()
    # kritarunner never closes documents itself; left open, Krita frees them after its own
    # teardown once a docker has been created, and crashes on exit.
    for doc in Krita.instance().documents():
        doc.close()
    with open(CONFIG["report"], "w") as f:
        json.dump(REPORT, f, indent=1)
