"""Runs inside real Krita: `QT_QPA_PLATFORM=offscreen kritarunner -s brushlink_krita_scenarios`.

Reads its settings from the JSON file named by BRUSHLINK_KRITA_TEST, installs the plugin zip
with Krita's own importer, runs every scenario against a real brushlink server and writes a JSON
report that tests/test_krita_bridge.py asserts on. A scenario that raises is recorded with its
error and traceback; the next one still runs. CONFIG["only"] (BRUSHLINK_KRITA_ONLY on the
pytest side) names the scenarios to run, comma separated.

The scenarios live beside this file: scenarios_jobs (the blocking API), scenarios_docker (the
docker), scenarios_guided (control layers, LoRAs, upscale, raw pixels, undo-friendly layers)
and scenarios_live (live painting, the history).
"""

import faulthandler
import json
import os
import sys
import time
import traceback

import scenarios_docker
import scenarios_guided
import scenarios_jobs
import scenarios_live
from krita import Krita
from krita_helpers import CONFIG, REPORT

SCENARIOS = (
    scenarios_jobs.install,
    scenarios_jobs.rect_inpaint,
    scenarios_jobs.soft_ellipse_inpaint,
    scenarios_jobs.sixteen_bit_document,
    scenarios_jobs.style_sketch_canvas,
    scenarios_jobs.style_from_a_reference_layer,
    scenarios_jobs.generate_candidates_group,
    scenarios_jobs.cancel_while_running,
    scenarios_jobs.excluded_layers_are_not_sent,
    scenarios_jobs.errors_leave_the_document_alone,
    scenarios_guided.control_layer_job,
    scenarios_guided.control_layers_steer_the_picture,
    scenarios_guided.upscale_request_and_placement,
    scenarios_guided.raw_pixels_both_ways,
    scenarios_live.live_painting,
    scenarios_live.history_applies_again,
    scenarios_docker.docker_round_trip,
    scenarios_docker.docker_generate_with_previews,
    scenarios_docker.docker_modes,
    scenarios_docker.settings_travel_with_the_kra,
)


def record_uncaught(exc_type, exc, tb):
    """Krita shows a modal traceback dialog for an exception escaping a Qt callback (and a
    headless run hangs on it); the plugin must never let one escape. Record it instead."""
    REPORT.setdefault("uncaught", []).append("".join(traceback.format_exception(exc_type, exc, tb)))


def __main__(args):
    started = time.monotonic()
    sys.excepthook = record_uncaught
    # A hang must end with the stacks of every thread, not a silent kill.
    hang_log = open(os.path.join(CONFIG["workdir"], "hang.txt"), "w")  # noqa: SIM115
    faulthandler.enable(file=hang_log)  # a crash, too, leaves the Python stacks
    faulthandler.dump_traceback_later(CONFIG.get("hang_s", 480), exit=True, file=hang_log)
    only = [n for n in (CONFIG.get("only") or "").split(",") if n]
    for run in SCENARIOS:
        if run.__name__ != "install" and not REPORT.get("install", {}).get("ok"):
            break
        if only and run.__name__ not in ("install", *only):
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
