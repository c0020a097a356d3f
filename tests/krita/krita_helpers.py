"""Helpers shared by the scenarios that run inside real Krita (see brushlink_krita_scenarios)."""

import importlib.util
import json
import math
import os
import sys
import time
import traceback

from krita import Krita, Selection
from PyQt5.QtCore import QEventLoop, QTimer

with open(os.environ["BRUSHLINK_KRITA_TEST"]) as _config:
    CONFIG = json.load(_config)
REPORT = {}
IMPORTER = "/usr/share/krita/pykrita/plugin_importer/plugin_importer.py"
URL = CONFIG["url"]
EXACT = {"grow": 0, "feather": 0}  # the server regenerates exactly the selection


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
