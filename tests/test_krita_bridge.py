"""The Krita bridge in real Krita (headless) against a real brushlink server.

One kritarunner launch installs the built zip with Krita's own plugin importer into a temporary
resource folder and runs every scenario of tests/krita/brushlink_krita_scenarios.py; the tests
below assert on the JSON report it writes.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import pytest

from brushlink.bridges.krita.bundle import build

HERE = Path(__file__).resolve().parent
KRITARUNNER = shutil.which("kritarunner")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def report(server, bundle: Path, astronaut, coffee, tmp_path_factory) -> dict:
    assert KRITARUNNER, "Krita is not installed (apt-get install krita python3-pyqt5)"
    work = tmp_path_factory.mktemp("krita")
    photos = {}
    for name, image in (("astronaut", astronaut), ("coffee", coffee)):
        photos[name] = str(work / f"{name}.png")
        cv2.imwrite(photos[name], cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA))
    config = {
        "zip": str(bundle),
        "url": server.url,
        "down_url": f"ws://127.0.0.1:{_free_port()}/v1",
        "photos": photos,
        "workdir": str(work),
        "report": str(work / "report.json"),
        "hang_s": 420,  # the driver dumps every thread's stack and exits, within pytest's limit
    }
    (work / "config.json").write_text(json.dumps(config))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(work / "home"),
        "QT_QPA_PLATFORM": "offscreen",
        # Krita's config, resources and installed plugins all land in the temporary folder.
        "XDG_DATA_HOME": str(work / "data"),
        "XDG_CONFIG_HOME": str(work / "config"),
        "XDG_CACHE_HOME": str(work / "cache"),
        "XDG_RUNTIME_DIR": str(work / "runtime"),
        "BRUSHLINK_HOME": str(server.home),  # the plugin finds the token here by itself
        "BRUSHLINK_KRITA_TEST": str(work / "config.json"),
        "PYTHONPATH": str(HERE / "krita"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    (work / "runtime").mkdir(mode=0o700)
    proc = subprocess.run(
        [KRITARUNNER, "-s", "brushlink_krita_scenarios"],
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    path = Path(config["report"])
    hang = work / "hang.txt"
    stacks = hang.read_text()[-4000:] if hang.exists() else ""
    assert path.exists(), (
        f"Krita wrote no report (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{stacks}"
    )
    report = json.loads(path.read_text())
    report["krita_exit_code"] = proc.returncode
    report["krita_log_tail"] = proc.stdout[-2000:] + proc.stderr[-2000:]
    return report


def _ok(report: dict, name: str) -> dict:
    entry = report.get(name)
    assert entry is not None, f"scenario {name} did not run: {sorted(report)}"
    assert entry["ok"], entry.get("traceback", entry.get("error"))
    return entry


# ----------------------------------------------------------------------------- bundle


def test_bundle_holds_plugin_core_and_pure_python_websockets(bundle: Path) -> None:
    names = zipfile.ZipFile(bundle).namelist()
    assert "brushlink.desktop" in names
    assert "brushlink_krita/" in names  # Krita's importer looks for the folder entry
    for module in ("api", "docker", "selection", "layers", "core", "runner"):
        assert f"brushlink_krita/{module}.py" in names
    for module in ("blocking", "client", "codec", "host", "protocol", "regions", "request"):
        assert f"brushlink_krita/_plugin/{module}.py" in names
    assert "brushlink_krita/vendor/websockets/asyncio/client.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyd", ".c"))]
    desktop = zipfile.ZipFile(bundle).read("brushlink.desktop").decode()
    assert "X-KDE-Library=brushlink_krita" in desktop


def test_bundle_builds_the_same_zip_twice(tmp_path: Path, bundle: Path) -> None:
    again = build(tmp_path)
    assert again.read_bytes() == bundle.read_bytes()


def test_bundle_cli(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "brushlink.server.cli.main", "bundle", "krita", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.glob("brushlink-krita-*.zip"))


# ----------------------------------------------------------------------------- in Krita


def test_plugin_installs_with_krita_importer_and_uses_its_own_core(report: dict) -> None:
    entry = _ok(report, "install")
    assert entry["imported"] == ["brushlink_krita"]
    assert entry["plugin_file"].startswith(entry["pykrita"])
    assert entry["websockets_file"].startswith(entry["pykrita"])
    assert entry["core_module"] == "brushlink_krita._plugin.host"
    assert not entry["installed_brushlink_loaded"]
    assert "fill" in entry["models"]


def test_krita_exits_cleanly_after_the_jobs(report: dict) -> None:
    # Qt objects freed by Python after Krita's teardown used to crash it on exit.
    assert report["krita_exit_code"] == 0, report["krita_log_tail"]


def test_no_exception_escapes_to_krita(report: dict) -> None:
    # Krita turns an exception escaping a Qt callback into a traceback dialog.
    assert not report.get("uncaught"), "\n".join(report["uncaught"])


def test_rectangular_inpaint_fills_the_selection_only(report: dict) -> None:
    entry = _ok(report, "rect_inpaint")
    assert entry["type"] == "paintlayer"
    assert entry["name"] == "[brushlink] inpaint"  # the fill engine has no seed
    assert entry["bounds"] == [300, 100, 120, 80]  # exactly the selection
    assert entry["layers"][-1] == entry["name"]
    assert entry["magenta_left"] == 0  # the patch painted over the photo is gone
    diff = entry["diff"]
    assert diff["outside"] == 0
    assert diff["inside"] > 0.9 * diff["inside_total"]
    assert entry["alpha_min"] == 255
    # plausible: the fill takes the colours around the hole, not black or a flat default
    hole, ring = entry["hole_mean"], entry["ring_mean"]
    assert max(abs(a - b) for a, b in zip(hole, ring, strict=True)) < 30
    assert entry["saved_prompt_kind"] == "inpaint"


def test_soft_elliptical_selection_stays_soft_and_grows_a_little(report: dict) -> None:
    entry = _ok(report, "soft_ellipse_inpaint")
    diff = entry["diff"]
    assert diff["inside"] > 0.9 * diff["inside_total"]
    # the server grew the selection by its default (4 px here) and feathered the edge: the
    # layer's alpha is never below the selection's coverage, and stops a few pixels past it
    assert entry["alpha_below_mask"] == 0
    assert entry["soft_alpha_levels"] >= 4  # a feathered ramp, not a hard edge
    x, y, w, h = entry["bounds"]
    sx, sy, sw, sh = entry["selection_bounds"]
    assert x < sx and y < sy and x + w > sx + sw and y + h > sy + sh
    assert x >= sx - 5 and y >= sy - 5 and x + w <= sx + sw + 5 and y + h <= sy + sh + 5


def test_documents_of_other_colour_depths_get_an_8_bit_layer(report: dict) -> None:
    entry = _ok(report, "sixteen_bit_document")
    assert entry["doc_depth"] == "U16"
    assert entry["layer_space"] == ["RGBA", "U8"]
    assert entry["bounds"] == [64, 64, 96, 64]
    assert entry["outside_changed"] == 0
    assert entry["inside_changed"] > 0.9 * 96 * 64


def test_style_sketch_of_the_whole_canvas_is_grayscale(report: dict) -> None:
    entry = _ok(report, "style_sketch_canvas")
    assert entry["bounds"] == [0, 0, 512, 512]
    assert entry["name"].startswith("[brushlink] sketch")
    assert entry["max_channel_spread"] <= 2
    assert entry["alpha_min"] == 255


def test_candidates_form_a_group_to_pick_from(report: dict) -> None:
    entry = _ok(report, "generate_candidates_group")
    assert entry["type"] == "grouplayer"
    assert entry["name"] == "[brushlink] red brick wall texture"
    assert len(entry["children"]) == 3
    # seeds 7, 8, 9 drawn, ranked by CLIP: the names carry them, best first
    seeds = sorted(int(n.rsplit("(", 1)[1].rstrip(")")) for n in entry["children"])
    assert seeds == [7, 8, 9]
    assert entry["visible"] == [True, False, False]
    assert entry["child_bounds"] == [[40, 40, 200, 160]] * 3  # at the selection, no margin
    blue, green, red = entry["best_mean_bgr"]
    assert red > green + 20 and red > blue + 20  # a red prompt gives red pixels
    assert entry["diff"]["outside"] == 0
    assert entry["applied_name"] == entry["children"][0]
    assert entry["applied_name"] in entry["after_apply"]
    assert entry["name"] not in entry["after_apply"]
    assert entry["applied_name"] not in entry["after_discard"]
    assert entry["pixels_restored"]


def test_style_takes_the_colours_of_a_reference_layer(report: dict) -> None:
    entry = _ok(report, "style_from_a_reference_layer")
    assert entry["bounds"] == [64, 64, 256, 192]
    assert entry["diff"]["outside"] == 0
    assert entry["diff"]["inside"] > 0.9 * entry["diff"]["inside_total"]
    blue, green, red = entry["after_mean_bgr"]
    assert blue > red + 30  # the coffee's browns turned to the palette's blues
    assert entry["before_mean_bgr"][2] > entry["before_mean_bgr"][0]


def test_cancel_mid_run_ends_the_job_and_adds_nothing(report: dict) -> None:
    entry = _ok(report, "cancel_while_running")
    assert entry["steps_seen"], "the job never reported progress"
    assert entry["error"]["code"] == "cancelled"
    assert not entry["node"]
    assert entry["layers_unchanged"]


def test_excluded_layers_are_hidden_from_the_server(report: dict) -> None:
    entry = _ok(report, "excluded_layers_are_not_sent")
    assert entry["first_pixel"]["with"] == [0, 0, 255, 255]
    assert entry["first_pixel"]["without"] != [0, 0, 255, 255]
    assert entry["overlay_visible"]


def test_errors_are_clear_and_change_nothing(report: dict) -> None:
    entry = _ok(report, "errors_leave_the_document_alone")
    errors = entry["errors"]
    assert errors["server_down"]["code"] == "server_unavailable"
    assert "cannot be reached" in errors["server_down"]["message"]
    assert errors["wrong_token"]["code"] == "unauthorized"
    assert errors["unknown_model"]["code"] == "unknown_model"
    assert errors["bad_option"]["code"] == "invalid_field"
    assert "colour" in errors["bad_option"]["message"]
    assert errors["silent_server"]["code"] == "server_unavailable"
    assert "did not finish within 1 s" in errors["silent_server"]["message"]
    assert errors["no_selection"]["code"] == "invalid_field"
    assert "selection" in errors["no_selection"]["message"]
    assert entry["layers_unchanged"]
    assert entry["pixels_unchanged"]


def test_docker_generates_reports_and_discards(report: dict) -> None:
    entry = _ok(report, "docker_round_trip")
    assert entry["connected"].startswith("Connected")
    assert "fill" in entry["models"]
    assert entry["busy_while_running"]
    assert entry["status_done"] == "Done: [brushlink] patch the table"
    assert any(n.startswith("[brushlink] patch the table") for n in entry["layers"])
    assert not any(n.startswith("[brushlink]") for n in entry["after_discard"])
    assert entry["status_bad_exclude"] == (
        "Cannot start: There is no layer named `No such layer` to exclude."
    )
    assert not entry["started_anyway"]
    assert entry["status_down"].startswith("Failed: ")
    assert "cannot be reached" in entry["status_down"]
    assert entry["layers_after_error"] == entry["after_discard"]
    assert entry["reconnected"].startswith("Connected")
    assert entry["restored_prompt"] == "patch the table"
    assert entry["restored_mode"] == "inpaint"
    assert entry["restored_seed"] is None  # random seed stays random


def test_docker_shows_progress_and_previews(report: dict) -> None:
    entry = _ok(report, "docker_generate_with_previews")
    assert entry["status"] == "Done: [brushlink] red brick wall texture (3)"
    assert entry["progress_max"] > 1  # the bar followed the server's steps
    assert entry["preview_shown"]
    assert "[brushlink] red brick wall texture (3)" in entry["layers"]


def test_last_prompt_is_saved_in_the_kra(report: dict) -> None:
    entry = _ok(report, "settings_travel_with_the_kra")
    assert entry["prompt"] == "a saved prompt"
    assert entry["model"] == "fill"
    assert any(n.startswith("[brushlink] a saved prompt") for n in entry["layers"])
