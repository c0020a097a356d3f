"""The Krita bridge in real Krita (headless) against real brushlink servers.

One kritarunner launch installs the built zip with Krita's own plugin importer into a temporary
resource folder and runs every scenario of tests/krita/ (brushlink_krita_scenarios.py lists
them); the tests below assert on the JSON report it writes. A second server holds a tiny SD 1.x
checkpoint, a tiny ControlNet and a tiny LoRA for the guided scenarios.

    BRUSHLINK_KRITA_ONLY=live_painting,history_applies_again pytest tests/test_krita_bridge.py

runs only those scenarios (the tests of the others are skipped).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from fixtures.krita_run import free_port, guided_home, only, run_scenarios

from brushlink.bridges.krita.bundle import build

pytestmark = pytest.mark.timeout(1500)  # one Krita launch runs every scenario


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def sd_server(tmp_path_factory: pytest.TempPathFactory):
    from conftest import ServerProcess

    home = guided_home(tmp_path_factory.mktemp("sd-home"))
    server = ServerProcess(home=home, args=["--device", "cpu"]).start(timeout=180)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def report(server, sd_server, bundle: Path, astronaut, coffee, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("krita")
    photos = {}
    for name, image in (("astronaut", astronaut), ("coffee", coffee)):
        photos[name] = str(work / f"{name}.png")
        cv2.imwrite(photos[name], cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA))
    config = {
        "zip": str(bundle),
        "url": server.url,
        "sd_url": sd_server.url,
        "sd_token": sd_server.token,
        "down_url": f"ws://127.0.0.1:{free_port()}/v1",
        "photos": photos,
        "hang_s": 1200,  # the driver dumps every thread's stack and exits, within pytest's limit
    }
    return run_scenarios(config, work, server.home, timeout=1320)


def _ok(report: dict, name: str) -> dict:
    if only() and name not in (*only(), "install"):
        pytest.skip(f"only {','.join(only())} ran")
    entry = report.get(name)
    assert entry is not None, f"scenario {name} did not run: {sorted(report)}"
    assert entry["ok"], entry.get("traceback", entry.get("error"))
    return entry


# ----------------------------------------------------------------------------- in Krita


def test_plugin_installs_with_krita_importer_and_uses_its_own_core(report: dict) -> None:
    entry = _ok(report, "install")
    assert entry["imported"] == ["brushlink_krita"]
    assert entry["plugin_file"].startswith(entry["pykrita"])
    assert entry["websockets_file"].startswith(entry["pykrita"])
    assert entry["core_module"] == "brushlink_krita._plugin.host"
    assert not entry["installed_brushlink_loaded"]
    assert "fill" in entry["models"]
    assert entry["encoding"] == "bgra8"  # loopback: results come as Krita's own bytes


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


def test_docker_shows_progress_previews_and_seeds_above_2_31(report: dict) -> None:
    entry = _ok(report, "docker_generate_with_previews")
    # a seed of the whole 32-bit unsigned range reaches the server and names the layer
    assert entry["status"] == "Done: [brushlink] red brick wall texture (3000000000)"
    assert entry["progress_max"] > 1  # the bar followed the server's steps
    assert entry["preview_shown"]
    assert "[brushlink] red brick wall texture (3000000000)" in entry["layers"]


def test_last_prompt_is_saved_in_the_kra(report: dict) -> None:
    entry = _ok(report, "settings_travel_with_the_kra")
    assert entry["prompt"] == "a saved prompt"
    assert entry["model"] == "fill"
    assert any(n.startswith("[brushlink] a saved prompt") for n in entry["layers"])


# ----------------------------------------------------------------------------- guided, live


def test_control_layer_is_the_control_picture_cropped_like_the_image(report: dict) -> None:
    entry = _ok(report, "control_layer_job")
    for kind in ("style", "generate", "inpaint"):
        job = entry[kind]
        x, y, w, h = job["box"]
        assert job["request_size"] == [w, h]
        if kind != "generate":
            assert job["image_size"] == [w, h]
        # both controls travel as raw B, G, R, A frames of exactly the request's box
        assert job["kinds"] == ["Pixels", "Pixels"] and job["layouts"] == ["bgra8", "bgra8"]
        assert job["sizes"] == [[w, h], [w, h]]
        assert ["control", 0] in job["slots"] and ["control", 1] in job["slots"]
        assert job["controls"] == [
            {"model": "tiny-lineart", "image": 0, "preprocessor": "lineart", "strength": 0.8,
             "end": 1.0},
            {"model": "tiny-lineart", "image": 1, "preprocessor": "depth", "strength": 1.0,
             "end": 0.5},
        ]  # fmt: skip
        # the hidden vector layer's lines, on white paper (Qt's rounding: at most 1 apart);
        # the depth layer as it is
        assert job["sketch_vs_layer_on_white"] <= 1
        assert job["depth_vs_layer"] == 0
        assert job["sketch_dark_pixels"] > 200
    assert entry["style"]["box"] == [100, 80, 120, 96]  # the selection, snapped to 8
    assert entry["inpaint"]["box"] != entry["style"]["box"]  # plus the server's context


def test_control_layers_and_loras_steer_a_real_job(report: dict) -> None:
    entry = _ok(report, "control_layers_steer_the_picture")
    assert ["tiny-lineart", "controlnet", "sd1"] in entry["addons"]
    assert ["tiny-lora", "lora", "sd1"] in entry["addons"]
    assert entry["a_differs_from_plain"] > 10  # the picture follows the control layer
    assert entry["b_differs_from_a"] > 10  # another line art, another picture
    assert entry["strength_0_vs_plain"] == 0  # strength 0: exactly the unguided picture
    assert entry["lora_differs_from_plain"] > 10
    assert not [n for n in entry["layers_left"] if n.startswith("[brushlink]")]


def test_upscale_builds_its_request_and_places_its_layer(report: dict) -> None:
    entry = _ok(report, "upscale_request_and_placement")
    wire = entry["whole_wire"]
    assert wire["kind"] == "upscale"
    assert wire["upscale"] == {"scale": 2, "refine": "tiny", "strength": 0.25}
    assert wire["width"] is None and wire["height"] is None
    assert entry["whole_image"] == ["Pixels", 600, 400]  # the whole canvas, raw
    assert entry["whole_out"] == [0, 0, 1200, 800]
    assert entry["part_wire_upscale"]["scale"] == 4
    assert entry["part_image"] == [64, 48]  # exactly the selection
    assert entry["part_out"] == [40, 30, 256, 192]
    assert entry["label"] == "upscale ×4"
    assert entry["part_layer"] == {"bounds": [40, 30, 256, 192], "canvas": [600, 400]}
    whole = entry["whole_layer"]
    assert whole["canvas"] == [1200, 800] and whole["bounds"] == [0, 0, 1200, 800]
    assert whole["background_bounds"] == [0, 0, 1200, 800]  # the layers grew with the canvas
    # end to end: the server's upscale engine
    assert "lanczos-sharp" in entry["server_upscalers"]
    assert entry["real_whole"] == {
        "name": "[brushlink] upscale ×2", "bounds": [0, 0, 1024, 1024], "canvas": [1024, 1024]
    }  # fmt: skip
    assert entry["real_part"] == {"bounds": [100, 60, 200, 160], "canvas": [1024, 1024]}
    assert entry["refined"] == {"bounds": [0, 0, 256, 256], "canvas": [256, 256]}


def test_raw_pixels_go_out_and_come_back(report: dict) -> None:
    entry = _ok(report, "raw_pixels_both_ways")
    assert entry["sent_image"] == ["Pixels", "bgra8"]
    assert entry["sent_mask"] == ["Pixels", "gray8"]
    assert entry["result_data"] == ["Pixels", "bgra8"]
    assert entry["encoding"] == "bgra8"
    assert entry["layer_equals_canvas"] == 0  # no colour lost on the way


def test_live_painting_follows_strokes_cancels_stale_jobs_and_applies(report: dict) -> None:
    entry = _ok(report, "live_painting")
    assert entry["preview_added"] and entry["first_in_flight"]
    assert entry["cancelled_after_stroke"] >= 1  # the stroke made the running job stale
    stats = entry["stats"]
    assert stats["max_in_flight"] == 1  # never two live jobs out
    assert stats["issued"] >= 5 and stats["shown"] >= 4 and not stats["failed"]
    assert all(s["kind"] == "style" and s["strength"] == 0.6 for s in entry["sent"])
    assert len({s["seed"] for s in entry["sent"]}) == 1  # one seed: no flicker between strokes
    assert all(s["image"] == [256, 256, "bgra8"] for s in entry["sent"])
    assert entry["preview_changed"]
    assert entry["applied"]["same_as_preview"]
    assert entry["applied"]["name"].startswith("[brushlink] red brick wall texture (")
    assert entry["history_kinds"] == ["style"]
    assert "[brushlink] live preview" not in entry["after_stop"]
    assert entry["applied"]["name"] in entry["after_stop"]
    assert entry["median_latency_ms"] < 3000


def test_history_keeps_results_and_applies_them_again(report: dict) -> None:
    entry = _ok(report, "history_applies_again")
    newest, oldest = entry["entries"]
    assert (oldest["prompt"], oldest["seed"], oldest["model"]) == (
        "red brick wall texture", 21, "builtin"
    )  # fmt: skip
    assert (newest["kind"], newest["model"]) == ("inpaint", "fill")
    assert oldest["thumb_bytes"] > 100 and oldest["size"] > 0
    assert "brushlink/history" in entry["annotations"]
    assert entry["again"]["same_pixels"]
    assert entry["again"]["name"] == "[brushlink] red brick wall texture (21)"
    assert entry["reopened"] == ["", "red brick wall texture"]
    assert entry["reopened_same_pixels"]


def test_docker_shows_only_each_modes_fields(report: dict) -> None:
    entry = _ok(report, "docker_modes")
    assert entry["status"].startswith("Connected")
    modes = entry["modes"]
    common = {"negative", "seed", "steps", "guidance"}
    assert set(modes["generate"]["shown"]) == {
        "prompt", "strength", "candidates", "tile", "controls", "loras", "keep", *common
    }  # fmt: skip
    assert set(modes["inpaint"]["shown"]) == {
        "prompt", "candidates", "controls", "loras", "keep", "edges", "exclude", *common
    }  # fmt: skip
    assert set(modes["style"]["shown"]) == {
        "prompt", "strength", "reference", "candidates", "controls", "loras", "keep",
        "exclude", *common,
    }  # fmt: skip
    assert set(modes["upscale"]["shown"]) == {"scale", "refine", "exclude"}
    assert set(modes["live"]["shown"]) == {
        "prompt", "strength", "controls", "loras", "exclude", *common
    }  # fmt: skip
    for mode, seen in modes.items():
        assert seen["not_hidden"] == seen["shown"], mode
    assert [modes[m]["button"] for m in modes] == [
        "Generate", "Inpaint", "Restyle", "Upscale", "Start live"
    ]  # fmt: skip
    assert [modes[m]["kind"] for m in modes] == [
        "generate", "inpaint", "style", "upscale", "style"
    ]  # fmt: skip
    (control,) = entry["options"]["controls"]
    assert control["layer"] == "Sketch" and control["preprocessor"] == "scribble"
    assert control["model"] == "tiny-lineart" and control["strength"] == 0.7
    assert entry["options"]["loras"] == [["tiny-lora", 1.0]]
    assert entry["saved_controls"] == ["Sketch"]  # kept with the document
    assert entry["restored_controls"] == entry["options"]["controls"]
    assert entry["upscale_options"] == {"scale": 4, "refine": "tiny", "strength": 0.3}
    upscaled = entry["docker_upscale"]
    assert upscaled["status"] == "Done: [brushlink] upscale ×2"
    assert upscaled["canvas"] == [256, 256] and "[brushlink] upscale ×2" in upscaled["layers"]
