"""The Blender extension's newer parts in real Blender: PBR maps' numbers and operators' keyword
arguments, against a real server.

The server holds the tiny Stable Diffusion 1.x checkpoint of ``fixtures/tiny_sd.py`` ("tiny"),
so no download is needed. The scenarios are in ``tests/blender/scenes.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from test_blender import BLENDER_PYTHON, REPO, Blender

from brushlink.bridges.blender import bundle

EXTENSION = REPO / "bridges" / "blender" / "extension"


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


def _module(name: str):
    """An extension module that needs no ``bpy`` (numpy only), loaded from its file."""
    spec = importlib.util.spec_from_file_location(f"ext_{name}", EXTENSION / f"{name}.py")
    assert spec is not None and spec.loader is not None
    found = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(found)
    return found


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


# ----------------------------------------------------------------------------- numpy parts


def test_pbr_maps_follow_their_formulas() -> None:
    maps = _module("maps")
    rng = np.random.default_rng(0)
    texture = np.full((64, 64, 4), 0.5, np.float32)
    texture[22:26, 22:26, :3] = 0.05  # a dark pit
    texture[40:44, 40:44, :3] = 0.95  # a bright bump
    out = maps.derive_maps(texture)
    assert out.height.min() == 0.0 and out.height.max() == 1.0
    assert out.occlusion[23, 23] < 0.5  # the pit is occluded
    assert out.occlusion[42, 42] == 1.0 and out.occlusion[5, 5] == 1.0  # bump, flat: open
    assert out.occlusion.min() >= maps.AO_FLOOR and out.occlusion.max() <= 1.0
    assert np.isclose(out.roughness[25, 25], 0.9)  # darkest
    # seamless in, seamless out: the wrapped edges of each map step like their insides
    tiled = np.tile(texture, (1, 2, 1))
    wide = maps.derive_maps(tiled)
    assert np.allclose(wide.normal[:, :64], wide.normal[:, 64:], atol=1e-5)
    assert np.allclose(wide.occlusion[:, :64], wide.occlusion[:, 64:], atol=1e-5)
    # box blur: the mean of the window, any radius
    values = rng.uniform(size=(9, 11)).astype(np.float32)
    padded = np.pad(values, 2, mode="wrap")
    expected = np.mean([padded[dy : dy + 9, dx : dx + 11] for dy in range(5) for dx in range(5)], 0)
    assert np.allclose(maps.box_blur(values, 2), expected, atol=1e-6)
