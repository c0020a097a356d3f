"""The user's flow in real Krita with a window (under Xvfb): the zip is imported with Krita's
plugin importer and enabled the way its dialog enables it, Krita starts and loads the plugin
itself, and the docker inpaints a selection of a photo against a real server.

The driving happens in tests/krita/gui/, a small plugin that writes a JSON report and quits.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cv2

from brushlink.bridges.krita.bundle import build

HERE = Path(__file__).resolve().parent
IMPORTER = "/usr/share/krita/pykrita/plugin_importer/plugin_importer.py"


def test_docker_in_a_real_krita_window_inpaints_the_selection(server, coffee, tmp_path) -> None:
    assert shutil.which("krita"), "Krita is not installed (apt-get install krita python3-pyqt5)"
    assert shutil.which("xvfb-run"), "Xvfb is not installed (apt-get install xvfb xauth)"
    bundle = build(tmp_path / "dist")
    data, config = tmp_path / "data", tmp_path / "config"
    resources = data / "krita"
    resources.mkdir(parents=True)
    config.mkdir()
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
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = subprocess.run(
        ["xvfb-run", "-a", "krita", "--nosplash"],
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
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
    assert proc.returncode == 0, log  # Krita quit cleanly through File > Quit
