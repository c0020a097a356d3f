"""Operators' keyword arguments in real Blender, against a real server.

The server holds the tiny Stable Diffusion 1.x checkpoint of ``fixtures/tiny_sd.py`` ("tiny"),
so no download is needed. The scenarios are in ``tests/blender/scenes.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_blender import BLENDER_PYTHON, Blender

from brushlink.bridges.blender import bundle


@pytest.fixture(scope="module")
def view_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert BLENDER_PYTHON.exists(), f"No Blender Python at {BLENDER_PYTHON}"
    return bundle.build(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def guided_server(tmp_path_factory: pytest.TempPathFactory):
    """A server with the checkpoint "tiny"."""
    from conftest import ServerProcess
    from fixtures.tiny_sd import build_tiny_pipeline, save_single_file

    home = tmp_path_factory.mktemp("guided-home")
    pipe = build_tiny_pipeline(seed=4)
    save_single_file(pipe, home / "models" / "checkpoints" / "tiny.safetensors")
    server = ServerProcess(home=home, args=["--device", "cpu"]).start(timeout=180)
    yield server
    server.stop()


@pytest.fixture
def guided(view_zip: Path, guided_server, tmp_path: Path) -> Blender:
    return Blender(view_zip, tmp_path, guided_server.home)


# ----------------------------------------------------------------------------- keywords


def test_keywords_override_the_scene_and_leave_it_unchanged(guided: Blender, guided_server) -> None:
    facts, _ = guided.run("keywords", url=guided_server.url)
    calls = facts["calls"]
    for name in ("text_seed", "int_seed", "scene"):
        assert calls[name]["returned"] == ["FINISHED"], calls[name].get("report")
    for call in calls.values():
        assert call["scene_after"] == facts["scene_before"]
    (text_seed,) = calls["text_seed"]["made"]
    assert text_seed["made_with"]["prompt"] == "kw prompt"
    assert text_seed["made_with"]["seed"] == "3000000000"  # past 2^31 - 1
    assert text_seed["made_with"]["tile"] == "none"  # seamless=False
    assert text_seed["size"] == [96, 64]  # width=96, the scene's height
    (int_seed,) = calls["int_seed"]["made"]
    assert int_seed["made_with"]["seed"] == "7"
    assert int_seed["made_with"]["tile"] == "xy"  # the scene's Seamless
    (scene,) = calls["scene"]["made"]
    assert scene["made_with"]["prompt"] == "scene prompt" and scene["made_with"]["seed"] == "5"
    assert calls["bad_seed"]["returned"] == ["RAISED"]
    assert "whole number up to 4294967295" in calls["bad_seed"]["report"]
    assert calls["bad_object"]["returned"] == ["RAISED"]
    assert "No Such Object" in calls["bad_object"]["report"]
