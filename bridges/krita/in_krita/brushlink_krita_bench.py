"""Runs inside real Krita (`kritarunner -s brushlink_krita_bench`), driven by
`brushlink bench krita` (bridges/krita/bench.py), which says what to do in the JSON file named
by BRUSHLINK_KRITA_BENCH.

For each canvas (a photo at 1024² and 2048²) and each encoding (raw B, G, R, A pixels, what the
plugin negotiates on loopback; PNG, what a remote link carries), one job whose model time is
next to nothing (``style`` with ``model="filters"``, ``style="detail"``, ``strength=0``) is
timed in the plugin's own code, part by part:

    read     the canvas read out of Krita into the job (``selection.build_job``)
    out      the request on its way in: from the submit's arrival at the server until its
             images are all there (the server's ``queued_s`` less its ``decode_s``; PNG: plus
             encoding the canvas on the client first, as for a remote link)
    server   the server's decode and encode (the result's ``metadata.timings``)
    back     the client's wait less everything the server's clock accounts for: the result's
             transfer and the client reading it
    write    the result written into a new layer (``layers.place_results``; PNG: its decode)

The model's own time (``run_s``) is reported beside them and left out of the total.
"""

import importlib.util
import json
import os
import statistics
import sys
import time
import traceback

from krita import Krita

with open(os.environ["BRUSHLINK_KRITA_BENCH"]) as _config:
    CONFIG = json.load(_config)
IMPORTER = "/usr/share/krita/pykrita/plugin_importer/plugin_importer.py"
PARTS = ("read", "out", "server", "back", "write")


def install_bundle():
    spec = importlib.util.spec_from_file_location("krita_plugin_importer", IMPORTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    resources = Krita.instance().getAppDataLocation()
    module.PluginImporter(CONFIG["zip"], resources, lambda plugin: True).import_all()
    sys.path.insert(0, os.path.join(resources, "pykrita"))


def one_job(doc, runner, raw):
    from brushlink_krita import layers
    from brushlink_krita.core import frames
    from brushlink_krita.options import KritaJob
    from brushlink_krita.selection import build_job

    job = KritaJob.build("style", model="filters", style="detail", strength=0.0)
    job.use_selection = False
    t0 = time.perf_counter()
    sent, placement = build_job(doc, job)
    t1 = time.perf_counter()
    if not raw:
        sent.image = frames.to_png(sent.image)  # what the client does for a remote link
    encoded = time.perf_counter()
    result = runner.run(sent, timeout=120)
    t2 = time.perf_counter()
    pixels = layers.result_pixels(placement, result.images)
    node = layers.place_results(placement, "bench", result.images, None, pixels)
    t3 = time.perf_counter()
    node.remove()
    timings = result.metadata["timings"]
    # On the server's clock, from the submit's arrival: its frames came in and were decoded
    # (queued_s, for a job that waits behind none), the model ran, the result was encoded.
    # The rest of the client's wait is the result's way back.
    on_server = timings["queued_s"] + timings["run_s"] + timings["encode_s"]
    return {
        "read": t1 - t0,
        "out": (encoded - t1) + timings["queued_s"] - timings["decode_s"],
        "server": timings["decode_s"] + timings["encode_s"],
        "back": (t2 - encoded) - on_server,
        "write": t3 - t2,
        "model": timings["run_s"],
        "result": type(result.images[0].data).__name__,
    }


def bench(photo, raw, repeats):
    from brushlink_krita.core import host

    doc = Krita.instance().openDocument(photo)
    doc.waitForDone()
    encodings = ("bgra8", "png") if raw else ("png",)
    runner = host.HostRunner(CONFIG["url"], CONFIG["token"], encodings=encodings)
    try:
        one_job(doc, runner, raw)  # warm-up: the connection, the engine
        runs = [one_job(doc, runner, raw) for _ in range(repeats)]
    finally:
        runner.close(wait=1)
        doc.close()
    out = {part: statistics.median(r[part] for r in runs) * 1000 for part in (*PARTS, "model")}
    out["total"] = statistics.median(sum(r[p] for p in PARTS) for r in runs) * 1000
    out["result"] = runs[0]["result"]
    return out


def __main__(args):
    report = {"runs": []}
    try:
        install_bundle()
        for side, photo in sorted(CONFIG["photos"].items(), key=lambda kv: int(kv[0])):
            for raw in (True, False):
                row = bench(photo, raw, CONFIG.get("repeats", 5))
                row.update(side=int(side), encoding="raw bgra8" if raw else "png")
                report["runs"].append(row)
    except Exception:
        report["error"] = traceback.format_exc()
    for doc in Krita.instance().documents():
        doc.close()
    with open(CONFIG["report"], "w") as f:
        json.dump(report, f, indent=1)
