"""The Blender extension in real Blender (the ``bpy`` module) against a real brushlink server.

Blender runs in its own virtual environment (``.venv-blender``, only ``bpy`` and what it needs,
like a user's Blender): the extension must bring websockets and the client core in its wheels.
Each test installs the bundled zip into a fresh user folder, runs one scenario of
``tests/blender/driver.py`` and asserts on the facts and pixels it wrote.
"""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from fixtures.blender import Blender, brushlink_command, free_port, photo

from brushlink.bridges.blender import bundle

# ----------------------------------------------------------------------------- bundle


def test_bundle_is_an_installable_reproducible_extension(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*brushlink_command(), "bundle", "blender", "-o", str(tmp_path / "a")],
        capture_output=True,
        text=True,
        check=True,
    )
    first = Path(proc.stdout.strip())
    assert first.parent == tmp_path / "a" and first.name == "brushlink-blender-0.1.0.zip"
    second = bundle.build(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()  # same sources, same zip
    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
        manifest = archive.read("blender_manifest.toml").decode()
        import tomllib

        data = tomllib.loads(manifest)
        assert data["id"] == "brushlink"
        assert "network" in data["permissions"]
        assert len(data["tagline"]) <= 64
        for wheel in data["wheels"]:
            assert wheel.removeprefix("./") in names
            assert wheel.endswith("-py3-none-any.whl")
            with zipfile.ZipFile(archive.open(wheel.removeprefix("./"))) as whl:
                inner = whl.namelist()
                assert not [n for n in inner if n.endswith((".so", ".pyd", ".c"))]
                assert any(n.endswith(".dist-info/RECORD") for n in inner)
        assert {"__init__.py", "operators.py", "worker.py", "materials.py"} <= set(names)
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        # Host glue only: nothing in the extension imports torch, and only Blender's numpy.
        for name in names:
            if name.endswith(".py"):
                assert "import torch" not in archive.read(name).decode()


def test_extension_registers_from_its_own_wheels(blender: Blender, server) -> None:
    facts, _ = blender.run("settings")
    assert facts["operators"] == [
        "cancel",
        "inpaint_image",
        "project_from_view",
        "refresh",
        "report",
        "restyle_render",
        "revert_inpaint",
        "style_image",
        "texture_fill",
    ]
    assert facts["panels"] == [
        "BRUSHLINK_PT_image_editor",
        "BRUSHLINK_PT_shader_editor",
        "BRUSHLINK_PT_view3d",
    ]
    assert facts["scene_props"]
    # The client core and websockets come from the extension's wheels, not from this checkout.
    assert "/extensions/" in facts["plugin_from"]
    assert "/extensions/" in facts["websockets_from"]
    assert facts["token_found"]  # read from BRUSHLINK_HOME, no setting typed
    assert facts["disabled_cleanly"]
    # Checks that need no server: reported at once, in words.
    assert facts["cancel_without_job"] == {"returned": ["CANCELLED"]}
    for case in ("fill_without_object", "fill_on_camera"):
        assert facts[case]["returned"] == ["RAISED"]
        assert "Select an object that can have a material" in facts[case]["report"]


# ----------------------------------------------------------------------------- inpaint


def test_inpaint_painted_alpha_regenerates_only_the_hole(
    blender: Blender, server, astronaut: np.ndarray, tmp_path: Path
) -> None:
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    holed = small.copy()
    holed[165:185, 30:50, 3] = 0  # "erased" with an Erase Alpha brush, on the orange suit
    holed[165:185, 30:50, :3] = 0
    path = tmp_path / "holed.png"
    cv2.imwrite(str(path), cv2.cvtColor(holed, cv2.COLOR_RGBA2BGRA))
    facts, out = blender.run("inpaint", url=server.url, image=path, revert=1)
    assert facts["returned"] == ["FINISHED"], facts.get("report")
    assert facts["images_after"] == facts["images_before"]  # in place, no new image
    before, after = np.load(out / "before.npy"), np.load(out / "after.npy")
    assert np.array_equal(before, holed)
    hole = np.zeros(before.shape[:2], bool)
    hole[165:185, 30:50] = True
    # the server grows a 20 px hole by 4 px to cover its edge: beyond that, bit-identical
    grown = np.zeros(before.shape[:2], bool)
    grown[160:190, 25:55] = True
    assert np.array_equal(after[~grown], before[~grown])
    assert (after[hole][:, 3] == 255).all()  # the hole is filled, opaque
    # Filled from the suit around it: no longer the black hole, and orange-red like the suit.
    fill_mean = after[hole][:, :3].astype(float).mean(axis=0)
    assert fill_mean.max() > 80, fill_mean
    assert fill_mean[0] > fill_mean[1] and fill_mean[0] > fill_mean[2], fill_mean
    # Revert Inpaint puts the pixels back.
    assert facts["revert"]["returned"] == ["FINISHED"]
    assert np.array_equal(np.load(out / "reverted.npy"), before)


def test_inpaint_with_a_mask_image(
    blender: Blender, server, coffee: np.ndarray, tmp_path: Path
) -> None:
    path, source = photo(tmp_path, coffee, "coffee")
    mask = np.zeros((256, 256, 4), np.uint8)
    mask[..., 3] = 255
    mask[40:90, 60:120, :3] = 255  # white = regenerate
    mask_path = tmp_path / "mask.png"
    cv2.imwrite(str(mask_path), cv2.cvtColor(mask, cv2.COLOR_RGBA2BGRA))
    facts, out = blender.run("inpaint", url=server.url, image=path, mask=mask_path)
    assert facts["returned"] == ["FINISHED"], facts.get("report")
    before, after = np.load(out / "before.npy"), np.load(out / "after.npy")
    region = mask[..., 0] > 0
    grown = cv2.dilate(region.astype(np.uint8), np.ones((13, 13), np.uint8)) > 0  # + grow
    assert np.array_equal(after[~grown], before[~grown])
    assert np.abs(after[region].astype(int) - before[region]).mean() > 1  # it did change


def test_inpaint_without_a_mask_says_what_to_do(
    blender: Blender, server, coffee: np.ndarray, tmp_path: Path
) -> None:
    path, _ = photo(tmp_path, coffee, "coffee")
    facts, out = blender.run("inpaint", url=server.url, image=path)
    assert facts["returned"] == ["RAISED"]
    assert "Erase Alpha" in facts["report"]
    assert np.array_equal(np.load(out / "after.npy"), np.load(out / "before.npy"))


# ----------------------------------------------------------------------------- style


def test_style_sketch_makes_a_new_grayscale_image(
    blender: Blender, server, chelsea: np.ndarray, tmp_path: Path
) -> None:
    path, _ = photo(tmp_path, chelsea, "chelsea")
    facts, out = blender.run("style", url=server.url, image=path, style="sketch")
    assert facts["returned"] == ["FINISHED"], facts.get("report")
    (new,) = facts["new_images"]
    assert new["name"] == "photo (sketch)"
    assert new["size"] == [256, 256]
    assert new["packed"]
    styled = np.load(out / "styled0.npy").astype(int)
    assert np.abs(styled[..., 0] - styled[..., 1]).max() <= 2  # grey: R = G = B
    assert np.abs(styled[..., 1] - styled[..., 2]).max() <= 2
    assert styled[..., :3].std() > 10  # lines and shading, not a blank page
    assert np.array_equal(np.load(out / "source_after.npy"), np.load(out / "source.npy"))


def test_style_like_a_reference_takes_its_colours(
    blender: Blender, server, chelsea: np.ndarray, astronaut: np.ndarray, tmp_path: Path
) -> None:
    path, source = photo(tmp_path, chelsea, "chelsea")
    ref_path, reference = photo(tmp_path, astronaut, "astronaut", size=128)
    facts, out = blender.run(
        "style", url=server.url, image=path, mode="REFERENCE", reference=ref_path
    )
    assert facts["returned"] == ["FINISHED"], facts.get("report")
    (new,) = facts["new_images"]
    assert new["name"] == "photo (like reference)"
    assert new["size"] == [256, 256]
    styled = np.load(out / "styled0.npy")[..., :3].reshape(-1, 3).mean(axis=0)
    before = source[..., :3].reshape(-1, 3).mean(axis=0)
    target = reference[..., :3].reshape(-1, 3).mean(axis=0)
    assert np.abs(styled - target).sum() < 0.5 * np.abs(before - target).sum(), (
        styled,
        before,
        target,
    )


# ----------------------------------------------------------------------------- errors


def test_server_down_is_a_report_and_nothing_changes(
    blender: Blender, coffee: np.ndarray, tmp_path: Path
) -> None:
    path, _ = photo(tmp_path, coffee, "coffee")
    down = f"ws://127.0.0.1:{free_port()}/v1"
    facts, out = blender.run("style", url=down, image=path, style="sketch")
    assert facts["returned"] == ["RAISED"]
    assert "server_unavailable" in facts["report"]
    assert facts["images_after"] == facts["images_before"]
    facts, _ = blender.run("texture_fill", url=down)
    assert facts["returned"] == ["RAISED"]
    assert "server_unavailable" in facts["report"]
    assert facts["materials_after"] == facts["materials_before"]
    assert facts["images_after"] == facts["images_before"]


def test_wrong_token_is_a_report_and_nothing_changes(
    blender: Blender, server, coffee: np.ndarray, tmp_path: Path
) -> None:
    path, _ = photo(tmp_path, coffee, "coffee")
    holed = tmp_path / "holed.png"
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    img[10:30, 10:30, 3] = 0
    cv2.imwrite(str(holed), img)
    facts, out = blender.run("inpaint", url=server.url, token="not-the-token", image=holed)
    assert facts["returned"] == ["RAISED"]
    assert "unauthorized" in facts["report"]
    assert "token" in facts["report"]
    assert np.array_equal(np.load(out / "after.npy"), np.load(out / "before.npy"))


def test_ui_path_returns_at_once_and_applies_on_the_main_thread(
    blender: Blender, server, coffee: np.ndarray, tmp_path: Path
) -> None:
    path, source = photo(tmp_path, coffee, "coffee")
    holed = source.copy()
    holed[50:80, 50:90, 3] = 0
    cv2.imwrite(str(path), cv2.cvtColor(holed, cv2.COLOR_RGBA2BGRA))
    facts, out = blender.run("inpaint", url=server.url, image=path, threaded=1)
    assert facts["returned"] == ["FINISHED"]
    assert facts["running_after_return"] == 1
    assert facts["status_after_return"].startswith("Inpaint")
    before = np.load(out / "before.npy")
    assert np.array_equal(np.load(out / "early.npy"), before)  # untouched until drained
    after = np.load(out / "after.npy")
    hole = holed[..., 3] == 0
    grown = cv2.dilate(hole.astype(np.uint8), np.ones((11, 11), np.uint8)) > 0  # + grow
    assert np.array_equal(after[~grown], before[~grown])
    assert (after[hole][:, 3] == 255).all()
    assert facts["status"].startswith("Inpainted")


def test_bundle_refuses_a_core_that_imports_what_blender_lacks() -> None:
    with pytest.raises(RuntimeError, match="imports numpy"):
        bundle.check_host_safe({"brushlink/plugin/x.py": b"import json\nimport numpy as np\n"})
    bundle.check_host_safe(
        {"brushlink/plugin/y.py": b"import json\nfrom websockets import frames\n"}
    )


def test_cancel_ends_a_job_whose_server_died(server_factory, extension_zip, tmp_path) -> None:
    from fixtures.tiny_sd import build_tiny_pipeline, save_single_file

    home = tmp_path / "home"
    save_single_file(
        build_tiny_pipeline(seed=4), home / "models" / "checkpoints" / "tiny.safetensors"
    )
    doomed = server_factory("--device", "cpu", home=home)
    blender = Blender(extension_zip, tmp_path, home)
    facts, _ = blender.run(
        "texture_fill",
        url=doomed.url,
        model="tiny",
        width=64,
        height=64,
        steps=100,
        drop_material=1,
        cancel_at_step=7,
        kill_pid=doomed.process.pid,
    )
    assert doomed.process.wait() != 0  # killed mid-job
    assert facts["cancel"]["returned"] == ["FINISHED"]
    assert facts["status"] == "Texture fill cancelled."
    assert facts["images_after"] == facts["images_before"]  # the preview went with it
    assert facts["materials_after"] == facts["materials_before"]
