"""The camera's view in real Blender: Project from View, Restyle Render, PBR maps' numbers and
operators' keyword arguments, against a real server.

The server holds the tiny Stable Diffusion 1.x checkpoint of ``fixtures/tiny_sd.py`` ("tiny")
and a ControlNet made from its UNet (``ControlNetModel.from_unet``, random zero convolutions so
the depth picture reaches the image), saved as a diffusers folder in ``models/controlnet/``:
the real loading and guided pipelines run, with no download. The scenarios are in
``tests/blender/scenes.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
from fixtures.blender import BLENDER_PYTHON, REPO, Blender

from brushlink.bridges.blender import bundle

EXTENSION = REPO / "bridges" / "blender" / "extension"


@pytest.fixture(scope="module")
def view_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert BLENDER_PYTHON.exists(), f"No Blender Python at {BLENDER_PYTHON}"
    return bundle.build(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def guided_server(tmp_path_factory: pytest.TempPathFactory):
    """A server with the checkpoint "tiny" (SD 1.x) and the ControlNet "tiny-depth" for it."""
    import torch
    from conftest import ServerProcess
    from diffusers import ControlNetModel
    from fixtures.tiny_sd import build_tiny_pipeline, save_single_file

    home = tmp_path_factory.mktemp("guided-home")
    pipe = build_tiny_pipeline(seed=4)
    save_single_file(pipe, home / "models" / "checkpoints" / "tiny.safetensors")
    net = ControlNetModel.from_unet(pipe.unet, conditioning_embedding_out_channels=(8, 16, 16, 16))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # zero convolutions start at zero: give them weights so depth counts
        for conv in [*net.controlnet_down_blocks, net.controlnet_mid_block]:
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.3)
    net.save_pretrained(home / "models" / "controlnet" / "tiny-depth", safe_serialization=True)
    server = ServerProcess(home=home, args=["--device", "cpu"]).start(timeout=180)
    yield server
    server.stop()


@pytest.fixture
def guided(view_zip: Path, guided_server, tmp_path: Path) -> Blender:
    return Blender(view_zip, tmp_path, guided_server.home)


@pytest.fixture
def plain(view_zip: Path, server, tmp_path: Path) -> Blender:
    """Blender against the session's server: no checkpoint, no ControlNet."""
    return Blender(view_zip, tmp_path, server.home)


def _module(name: str):
    """An extension module that needs no ``bpy`` (numpy only), loaded from its file."""
    spec = importlib.util.spec_from_file_location(f"ext_{name}", EXTENSION / f"{name}.py")
    assert spec is not None and spec.loader is not None
    found = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(found)
    return found


# ----------------------------------------------------------------------------- depth


def test_depth_sent_for_a_plane_in_front_of_a_cube(guided: Blender, guided_server) -> None:
    facts, out = guided.run("project_depth", url=guided_server.url)
    assert "refused" not in facts, facts.get("refused")
    request = facts["request"]
    assert request["kind"] == "generate"
    assert request["model"] == "tiny"
    assert (request["width"], request["height"]) == (96, 64)  # the camera's 3:2 frame
    (control,) = request["controls"]
    assert control["model"] == "tiny-depth"
    assert control["preprocessor"] == "depth"
    assert control["image"] == 0
    assert facts["slots"] == [["control", 0]]  # the depth travels as a control frame
    grey = np.load(out / "depth_control0.npy")[..., 0].astype(int)
    assert grey.shape == (64, 96)
    # Selected: the plane (depth 6) and the cube, whose front face is at depth 9. Near is
    # bright: the plane is 255; the farthest surface is 10 % grey (26), never the background's
    # 0. The camera looks along +Y from y = -10 with a 50 mm lens (39.6 degrees across): the
    # plane covers columns 12-44, the cube 33-63, rows 16-48 and 18-46.
    plane = grey[22:42, 16:30]
    cube = grey[22:42, 48:60]
    assert (plane == 255).all(), np.unique(plane)
    assert (np.abs(cube - 26) <= 1).all(), np.unique(cube)  # planar depth: one value
    assert (grey[:, :6] == 0).all() and (grey[:, -6:] == 0).all()  # nothing there
    assert set(np.unique(grey)) <= {0, 25, 26, 255}  # a pixel is one surface: no blending
    # the raw Z pass kept for the occlusion test: the two depths, in scene units
    z = np.load(out / "zpass.npy")
    assert np.allclose(z[22:42, 16:30], 6.0, atol=1e-3)
    assert np.allclose(z[22:42, 48:60], 9.0, atol=1e-3)
    # building the job left no temporary scene or image behind
    assert facts["scenes_after"] == ["Scene"]
    assert facts["images_after"] == facts["images_before"]


def test_project_without_a_controlnet_says_what_to_install(plain: Blender, server) -> None:
    facts, _ = plain.run("project_depth", url=server.url)
    assert "No depth ControlNet is installed" in facts["refused"]
    assert "models/controlnet/" in facts["refused"]


# ----------------------------------------------------------------------------- projection


def _face_mask(face: dict, size: int) -> np.ndarray:
    corners = np.array(face["uv"]) * size
    corners[:, 1] = size - corners[:, 1]  # UV v runs up, rows run down
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(corners - 0.5).astype(np.int32)], 1)
    return mask.astype(bool)


def _sample(pixels: np.ndarray, points: list) -> np.ndarray:
    h, w = pixels.shape[:2]
    return np.array([pixels[int(y * h), int(x * w), :3] for x, y in points], float)


def _srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0, 1)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def test_projection_lands_on_selected_front_faces_and_stays_when_the_camera_moves(
    guided: Blender, guided_server
) -> None:
    facts, out = guided.run("project", url=guided_server.url)
    assert facts["returned"] == ["FINISHED"], facts.get("report")
    # keyword arguments were used, the panel's settings were left alone
    assert facts["scene_after"] == facts["scene_before"]
    request = facts["job"]["request"]
    assert request["prompt"] == "mossy stone" and request["seed"] == 3_000_000_000
    assert request["controls"][0]["preprocessor"] == "depth"
    view = facts["images"]["View: mossy stone"]
    assert view["made_with"]["seed"] == "3000000000"
    texture_facts = facts["images"]["Projected: Cube"]
    assert texture_facts["packed"] and texture_facts["size"] == [256, 256]
    assert texture_facts["made_with"]["projected_on"] == "Cube"
    assert ["brushlink texture", "Color", "Principled BSDF", "Base Color"] in facts["links"]
    assert ["brushlink uv", "UV", "brushlink texture", "Vector"] in facts["links"]
    assert facts["edit_mode_after"] == "EDIT"
    texture = np.load(out / "texture.npy").astype(int)
    faces = facts["faces"]
    masks = [_face_mask(face, 256) for face in faces]
    # What was not projected onto keeps the cube's colour (0.8 linear grey: 231 in sRGB).
    kernel = np.ones((3, 3), np.uint8)
    front = masks[facts["front"]]
    others = np.zeros_like(front)
    for i, mask in enumerate(masks):
        if i != facts["front"]:
            others |= cv2.erode(mask.astype(np.uint8), kernel) > 0
    assert (np.abs(texture[others][:, :3] - 231) <= 1).all()
    # That includes the back face: selected, but it faces away (and is hidden): nothing.
    assert faces[facts["back"]]["selected"]
    # The front face (selected, turned 30 degrees from the camera) took the picture: inside
    # the 6-texel fade from the selection's edge every texel changed.
    inner = cv2.erode(front.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    assert inner.sum() > 1000
    assert (np.abs(texture[inner][:, :3] - 231).max(axis=1) > 0).mean() > 0.99
    assert (texture[..., 3] == 255).all()
    # The render from the camera shows the generated view on that face, and after the camera
    # moved (3 units right, 1 up, turned to the cube) the same points show the same colours:
    # the picture is baked onto the surface. Were it stuck to the screen instead, the moved
    # camera would see other colours there (the check below compares both).
    generated = np.load(out / "view.npy")[..., :3].astype(float)
    before = _srgb(np.load(out / "render_a.npy")) * 255
    after = _srgb(np.load(out / "render_b.npy")) * 255
    seen_a = _sample(before, facts["points_a"])
    seen_b = _sample(after, facts["points_b"])
    wanted = _sample(generated, facts["points_a"])
    on_screen = _sample(generated, facts["points_b"])
    error_a = np.abs(seen_a - wanted).mean()
    error_b = np.abs(seen_b - wanted).mean()
    assert error_a < 12, error_a
    assert error_b < 12, error_b
    assert np.abs(seen_b - on_screen).mean() > 2 * error_b + 2
    assert np.array_equal(np.load(out / "texture_after_move.npy"), np.load(out / "texture.npy"))


def test_projection_blends_into_the_rest_without_a_seam(guided: Blender, guided_server) -> None:
    facts, out = guided.run("project_seam", url=guided_server.url)
    assert facts["returned"] == ["FINISHED"], facts.get("report")
    blended = np.load(out / "blended.npy")[..., :3].astype(float)
    hard = np.load(out / "hard.npy")[..., :3].astype(float)
    # The grid's UVs span the texture; its left half (columns 0-63) was selected.
    step_b = np.abs(np.diff(blended, axis=1)).mean(axis=(0, 2))  # per column boundary
    step_h = np.abs(np.diff(hard, axis=1)).mean(axis=(0, 2))
    inside = np.median(step_b[8:40])  # the picture's own texture, well inside the selection
    seam_h = step_h[60:68].max()
    seam_b = step_b[48:80].max()
    print(f"seam steps: hard {seam_h:.1f}, blended {seam_b:.1f}, inside {inside:.1f}")
    assert seam_h > 4 * max(inside, 1.0)  # a hard edge is a visible seam...
    # ...the blend spreads it over its 12 texels: a smoothstep's steepest step is 1.5 / 12 of
    # the difference, on top of the picture's own texture
    assert seam_b < 0.25 * seam_h
    assert seam_b < 1.5 * seam_h / 12 + inside + 3
    # unselected half: exactly the grid's own colour in both
    assert np.array_equal(blended[:, 70:], hard[:, 70:])
    assert np.ptp(blended[:, 70:], axis=(0, 1)).max() <= 1
    # projecting again paints into the same texture (its size, not the Bake Size): the picture
    # over itself changes nothing inside, the fade band takes more of it, the rest stays
    assert facts["new_images_again"] == []
    again = np.load(out / "again.npy")[..., :3].astype(float)
    assert again.shape == blended.shape
    assert np.abs(again[:, :40] - blended[:, :40]).max() <= 1
    assert np.array_equal(again[:, 64:], blended[:, 64:])
    assert (
        np.abs(again[:, 56:64] - hard[:, 56:64]).mean()
        < np.abs(blended[:, 56:64] - hard[:, 56:64]).mean()
    )


# ----------------------------------------------------------------------------- restyle


def test_restyle_render_with_depth_and_after_every_render(guided: Blender, guided_server) -> None:
    facts, out = guided.run("restyle", url=guided_server.url)
    assert facts["returned"] == ["FINISHED"], facts.get("report")
    (new,) = facts["new_images"]
    assert new["size"] == [64, 48]  # the render's size
    assert new["name"] == "Render Result (an oil painting)"
    request = facts["job"]["request"]
    assert request["kind"] == "style" and request["strength"] == 0.5 and request["seed"] == 3
    assert request["controls"][0]["preprocessor"] == "depth"
    assert facts["job"]["slots"] == [["image", 0], ["control", 0]]
    depth = np.load(out / "restyle_control0.npy")
    assert depth.shape[:2] == (48, 64)
    assert depth[..., 0].max() == 255 and depth[..., 0].min() == 0  # the cube, the void
    assert "depth through “tiny-depth”" in facts["status"]
    # the render itself is untouched, though a depth pass was rendered meanwhile
    assert np.array_equal(np.load(out / "render_after.npy"), np.load(out / "render_before.npy"))
    # the handler: nothing queued by our own depth renders; one render, one restyle
    assert facts["pending_after_operator"] == 0
    assert facts["pending_after_render"] == 1
    assert facts["pending_after_poll"] == 0
    assert facts["jobs"] == 2
    assert facts["handler_job"]["request"]["prompt"] == "a watercolour"
    assert "Render Result (a watercolour)" in facts["images_after"]


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
    # Refresh lists what the server offers, for the panel's fields
    assert facts["refresh"]["returned"] == ["FINISHED"]
    assert ["tiny", "sd1"] in facts["refresh"]["models"]
    assert facts["refresh"]["controlnets"] == [["tiny-depth", "sd1"]]


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


def test_seam_weight_fades_in_inside_the_selection() -> None:
    seams = _module("seams")
    mask = np.zeros((8, 40, 4), np.float32)
    mask[..., 2] = 1.0  # every texel on some face
    mask[:, :20, 0] = mask[:, :20, 1] = 1.0  # the left half selected, fully weighted
    weight = seams.weight(mask, feather=10)
    row = weight[4]
    assert (row[20:] == 0).all()  # unselected: untouched
    assert row[19] < 0.05 and 0 < row[15] < 1 and (row[:11] == 1).all()
    assert (np.diff(row[:20]) <= 0).all()  # falls steadily towards the edge
    old = np.zeros((8, 40, 4), np.float32)
    new = np.ones((8, 40, 4), np.float32)
    laid = seams.lay_over(old, new, weight)
    assert np.array_equal(laid[:, 20:], old[:, 20:])
