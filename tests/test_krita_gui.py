"""The user's flow in real Krita with a window (under Xvfb): the zip is imported with Krita's
plugin importer and enabled the way its dialog enables it, Krita starts and loads the plugin
itself, and the docker inpaints a selection of a photo against a real server; Krita's own
Undo and Redo take the result away and bring it back in one step; the docker shows each
mode's fields only (screenshots in BRUSHLINK_KRITA_SHOTS, default: the test's temporary
folder); live painting follows a stroke.

The driving happens in tests/krita/gui/, a small plugin that writes a JSON report and quits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import pytest
from fixtures.krita_run import guided_home

from brushlink.bridges.krita.bundle import build

HERE = Path(__file__).resolve().parent
IMPORTER = "/usr/share/krita/pykrita/plugin_importer/plugin_importer.py"
PROMPTED = {"negative", "seed", "steps", "guidance", "controls", "loras", "prompt"}
# what each mode shows, the advanced settings unfolded (the server has a checkpoint, a
# ControlNet and a LoRA, and no VAE)
VISIBLE = {
    "generate": PROMPTED | {"strength", "candidates", "tile", "keep"},
    "inpaint": PROMPTED | {"candidates", "keep", "edges", "exclude"},
    # (no named styles: the checkpoint restyles by its prompt)
    "style": PROMPTED | {"strength", "reference", "candidates", "keep", "exclude"},
    "upscale": {"scale", "refine", "exclude"},
    "live": PROMPTED | {"strength", "exclude"},
}


@pytest.fixture(scope="module")
def guided_server(tmp_path_factory: pytest.TempPathFactory):
    from conftest import ServerProcess

    home = guided_home(tmp_path_factory.mktemp("gui-home"))
    server = ServerProcess(home=home, args=["--device", "cpu"]).start(timeout=180)
    yield server
    server.stop()


@pytest.mark.timeout(900)
def test_docker_in_a_real_krita_window(guided_server, coffee, tmp_path) -> None:
    assert shutil.which("krita"), "Krita is not installed (apt-get install krita python3-pyqt5)"
    assert shutil.which("xvfb-run"), "Xvfb is not installed (apt-get install xvfb xauth)"
    server = guided_server
    bundle = build(tmp_path / "dist")
    data, config = tmp_path / "data", tmp_path / "config"
    resources = data / "krita"
    resources.mkdir(parents=True)
    config.mkdir()
    shots = Path(os.environ.get("BRUSHLINK_KRITA_SHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    # Krita's own importer, as Tools > Scripts > Import Python Plugin from File runs it.
    subprocess.run(["/usr/bin/python3", IMPORTER, str(bundle), str(resources)], check=True)
    pykrita = resources / "pykrita"
    shutil.copytree(HERE / "krita" / "gui" / "brushlink_gui_check", pykrita / "brushlink_gui_check")
    shutil.copy(HERE / "krita" / "gui" / "brushlink_gui_check.desktop", pykrita)
    # What the importer's "enable the plugin?" answer writes, plus the docker's server URL.
    (config / "kritarc").write_text(
        "[python]\nenable_brushlink_krita=true\nenable_brushlink_gui_check=true\n\n"
        f"[brushlink]\nurl={server.url}\n"
    )
    photo = tmp_path / "coffee.png"
    cv2.imwrite(str(photo), cv2.cvtColor(coffee, cv2.COLOR_RGBA2BGRA))
    report_path = tmp_path / "report.json"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "XDG_DATA_HOME": str(data),
        "XDG_CONFIG_HOME": str(config),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "BRUSHLINK_HOME": str(server.home),
        "BRUSHLINK_KRITA_GUI_REPORT": str(report_path),
        "BRUSHLINK_KRITA_GUI_PHOTO": str(photo),
        "BRUSHLINK_KRITA_GUI_SHOTS": str(shots),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1600x1200x24", "krita", "--nosplash"],
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )
    log = (proc.stdout + proc.stderr)[-3000:]
    assert report_path.exists(), f"no report (exit {proc.returncode}):\n{log}"
    report = json.loads(report_path.read_text())
    assert "error" not in report, report["error"]
    assert report["plugin_loaded"]
    assert report["docker_found"] == 1 and report["docker_class"] == "BrushlinkDocker"
    assert report["repeat_action"]
    assert report["status_connected"].startswith("Connected")
    assert report["busy"]
    assert report["status_done"] == "Done: [brushlink] inpaint"
    assert "[brushlink] inpaint" in report["layers"]
    # the 120 x 80 selection, grown by the server's default 4 px (1 % of its diagonal, at least 4)
    assert report["bounds"] == [296, 96, 128, 88]
    assert report["outside_changed"] == 0
    assert report["inside_changed"] > 0.9 * 120 * 80

    # one undo step per result: Ctrl+Z takes it all away, Ctrl+Shift+Z brings it back
    assert report["undo_steps_added"] == 1
    assert "[brushlink] inpaint" not in report["after_undo"]
    assert report["undo_restores_pixels"]
    assert report["after_redo"] == report["layers"]
    group = report["group"]
    assert group["error"] is None and group["type"] == "grouplayer" and group["children"] == 2
    assert group["undo_steps_added"] == 1  # the whole group of candidates: one step
    assert not [n for n in group["after_one_undo"] if n.startswith("[brushlink] red")]

    vector = report["vector_control"]
    assert vector["type"] == "vectorlayer"
    assert vector["size"] == [*vector["box"][2:], "bgra8"]
    assert vector["dark_pixels"] > 100 and vector["max_diff"] <= 1

    for mode, expected in VISIBLE.items():
        seen = report["modes"][mode]
        assert set(seen["visible"]) == expected, mode
        assert seen["history_visible"]
        assert seen["discard_visible"] == (mode != "live")
        assert (shots / f"docker-{mode}.png").stat().st_size > 1000
        assert (shots / f"window-{mode}.png").stat().st_size > 1000
    assert report["modes"]["live"]["button"] == "Start live"

    live = report["live"]
    assert live["button"] == "Stop live"
    assert live["stats"]["shown"] >= 2 and live["stats"]["max_in_flight"] == 1
    assert live["status_applied"].startswith("Applied: [brushlink] red brick wall texture (")
    assert "[brushlink] live preview" not in live["after_stop"]
    assert any(n.startswith("[brushlink] red brick wall texture (") for n in live["after_stop"])
    assert live["history"] >= 2
    assert proc.returncode == 0, log  # Krita quit cleanly through File > Quit
