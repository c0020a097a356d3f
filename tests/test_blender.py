"""The Blender extension in real Blender (the ``bpy`` module) against a real brushlink server.

Blender runs in its own virtual environment (``.venv-blender``, only ``bpy`` and what it needs,
like a user's Blender): the extension must bring websockets and the client core in its wheels.
Each test installs the bundled zip into a fresh user folder, runs one scenario of
``tests/blender/driver.py`` and asserts on the facts and pixels it wrote.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from brushlink.bridges.blender import bundle

REPO = Path(__file__).resolve().parents[1]
DRIVER = REPO / "tests" / "blender" / "driver.py"
BLENDER_PYTHON = Path(
    os.environ.get("BRUSHLINK_BLENDER_PYTHON", REPO / ".venv-blender" / "bin" / "python")
)


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert BLENDER_PYTHON.exists(), (
        f"No Blender Python at {BLENDER_PYTHON}: run "
        "`python3.11 -m venv .venv-blender && .venv-blender/bin/pip install bpy==4.2.23 'numpy<2'`"
    )
    return bundle.build(tmp_path_factory.mktemp("bundle"))


class Blender:
    """Runs driver scenarios in fresh Blender processes."""

    def __init__(self, zip_path: Path, tmp: Path, home: Path | None) -> None:
        self.zip_path, self.tmp, self.home = zip_path, tmp, home
        self.runs = 0

    def run(self, scenario: str, **args: object) -> tuple[dict, Path]:
        self.runs += 1
        out = self.tmp / f"{scenario}-{self.runs}"
        resources = self.tmp / f"resources-{self.runs}"
        resources.mkdir()
        env = {**os.environ, "BLENDER_USER_RESOURCES": str(resources)}
        env.pop("PYTHONPATH", None)
        if self.home is not None:
            env["BRUSHLINK_HOME"] = str(self.home)
        pairs = [f"{k}={v}" for k, v in args.items() if v is not None]
        proc = subprocess.run(
            [str(BLENDER_PYTHON), str(DRIVER), str(self.zip_path), scenario, str(out), *pairs],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
            cwd=self.tmp,
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output
        assert "Traceback" not in output, output
        facts = json.loads((out / "facts.json").read_text())
        assert "driver_error" not in facts, facts["driver_error"]
        return facts, out


@pytest.fixture
def blender(extension_zip: Path, server, tmp_path: Path) -> Blender:
    return Blender(extension_zip, tmp_path, server.home)


@pytest.fixture(scope="module")
def sd_server(tmp_path_factory: pytest.TempPathFactory):
    """A server with a generate-capable model: a Stable Diffusion 1.x checkpoint with the real
    architecture and small random weights, built in code (no download), named "tiny"."""
    from conftest import ServerProcess
    from fixtures.tiny_sd import build_tiny_pipeline, save_single_file

    home = tmp_path_factory.mktemp("sd-home")
    save_single_file(
        build_tiny_pipeline(seed=4), home / "models" / "checkpoints" / "tiny.safetensors"
    )
    server = ServerProcess(home=home, args=["--device", "cpu"]).start(timeout=180)
    yield server
    server.stop()


@pytest.fixture
def blender_sd(extension_zip: Path, sd_server, tmp_path: Path) -> Blender:
    return Blender(extension_zip, tmp_path, sd_server.home)


def photo(tmp: Path, image: np.ndarray, name: str, size: int = 256) -> tuple[Path, np.ndarray]:
    """Save an RGBA photo (resized square) as PNG; returns the path and the pixels saved."""
    small = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    path = tmp / f"{name}.png"
    cv2.imwrite(str(path), cv2.cvtColor(small, cv2.COLOR_RGBA2BGRA))
    return path, small


def generate_models(server) -> list[str]:
    proc = subprocess.run(
        [*_brushlink(), "models", "--home", str(server.home), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [m["name"] for m in json.loads(proc.stdout) if "generate" in m["kinds"]]


def _brushlink() -> list[str]:
    import sys

    return [sys.executable, "-m", "brushlink.server.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- bundle


def test_bundle_is_an_installable_reproducible_extension(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*_brushlink(), "bundle", "blender", "-o", str(tmp_path / "a")],
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


# ----------------------------------------------------------------------------- texture fill


def test_texture_fill_with_a_model_that_cannot_generate_changes_nothing(
    blender: Blender, server
) -> None:
    facts, _ = blender.run("texture_fill", url=server.url, model="fill")
    assert facts["returned"] == ["RAISED"]
    assert "unsupported" in facts["report"]
    assert "Traceback" not in facts["report"]
    assert facts["images_after"] == facts["images_before"]
    assert facts["materials_after"] == facts["materials_before"]
    assert facts["nodes"].keys() == {"Principled BSDF", "Material Output"}
    assert "failed" in facts["status"]


def test_texture_fill_needs_a_prompt(blender: Blender, server) -> None:
    facts, _ = blender.run("texture_fill", url=server.url, prompt="")
    assert facts["returned"] == ["RAISED"]
    assert "Prompt" in facts["report"]
    assert facts["images_after"] == facts["images_before"]


def test_texture_fill_wires_a_seamless_packed_texture(blender_sd: Blender, sd_server) -> None:
    assert "tiny" in generate_models(sd_server)
    facts, out = blender_sd.run(
        "texture_fill",
        url=sd_server.url,
        model="tiny",
        width=192,
        height=128,
        steps=4,
        drop_material=1,
        save=1,
    )
    assert facts["returned"] == ["FINISHED"], facts.get("report")
    # A material was created for the cube and the texture drives Base Color.
    assert facts["material"] == "brushlink mossy stone wall"
    assert facts["materials_after"] == sorted([*facts["materials_before"], facts["material"]])
    assert facts["slots"] == 1
    assert ["brushlink texture", "Color", "Principled BSDF", "Base Color"] in facts["links"]
    assert ["Principled BSDF", "BSDF", "Material Output", "Surface"] in facts["links"]
    (name, image), *_ = facts["images"].items()
    assert name == "Texture: mossy stone wall"
    assert facts["nodes"]["brushlink texture"]["image"] == name
    assert image["size"] == [192, 128]
    assert image["packed"]
    assert image["made_with"] == {
        "prompt": "mossy stone wall",
        "negative_prompt": "",
        "model": "tiny",
        "seed": "7",  # text: seeds go past a Blender integer property's 2^31 - 1
        "tile": "xy",  # Seamless is on by default
        "steps": 4,
    }
    assert facts["status"].startswith("“Texture: mossy stone wall” (192×128, seed 7)")
    pixels = np.load(out / "texture.npy").astype(np.int16)
    assert pixels[..., :3].std() > 2  # a picture, not a flat colour
    assert (pixels[..., 3] == 255).all()
    # Seamless: the step across each wrapped edge is like a step between neighbours inside.
    inner_x = np.abs(np.diff(pixels[:, :, :3], axis=1)).mean()
    inner_y = np.abs(np.diff(pixels[:, :, :3], axis=0)).mean()
    wrap_x = np.abs(pixels[:, 0, :3] - pixels[:, -1, :3]).mean()
    wrap_y = np.abs(pixels[0, :, :3] - pixels[-1, :, :3]).mean()
    assert wrap_x < 2.0 * inner_x + 2, (wrap_x, inner_x)
    assert wrap_y < 2.0 * inner_y + 2, (wrap_y, inner_y)
    # Saved with the .blend: a fresh Blender opens it with the texture still packed.
    reopened, out2 = blender_sd.run("reopen", blend=facts["blend"])
    assert reopened["images"][name]["packed"]
    assert reopened["images"][name]["made_with"] == image["made_with"]
    assert ["brushlink texture", "Color", "Principled BSDF", "Base Color"] in reopened["links"]
    assert np.array_equal(np.load(out2 / "reopened.npy"), np.load(out / "texture.npy"))


def test_texture_fill_with_the_builtin_model_is_red_and_seamless(blender: Blender, server) -> None:
    """The artist's flow on a fresh install: no model chosen, so the server's default (the
    model that ships with brushlink) paints it; "red" must give red, the edges must meet."""
    assert "builtin" in generate_models(server), "the builtin model's weights are missing"
    # a seed past 2^31 - 1, Blender's largest integer property: seeds are 32-bit unsigned
    facts, out = blender.run(
        "texture_fill",
        url=server.url,
        prompt="red bricks",
        width=256,
        height=256,
        seed=3_000_000_000,
    )
    assert facts["returned"] == ["FINISHED"], facts.get("report")
    assert ["brushlink texture", "Color", "Principled BSDF", "Base Color"] in facts["links"]
    (image,) = facts["images"].values()
    assert image["made_with"]["model"] == "builtin"
    assert image["made_with"]["seed"] == "3000000000"
    assert "seed 3000000000" in facts["status"]
    assert image["made_with"]["tile"] == "xy"
    pixels = np.load(out / "texture.npy")[..., :3].astype(np.int16)
    red, green, blue = pixels.reshape(-1, 3).mean(axis=0)
    assert red > 150 and green < 90 and blue < 90, (red, green, blue)
    # This model's textures are smooth inside (steps of about 1 level between neighbours), so a
    # seam would stand out: without tiling its wrapped edges differ by about 20 levels.
    inner_x = np.abs(np.diff(pixels, axis=1)).mean()
    inner_y = np.abs(np.diff(pixels, axis=0)).mean()
    wrap_x = np.abs(pixels[:, 0] - pixels[:, -1]).mean()
    wrap_y = np.abs(pixels[0] - pixels[-1]).mean()
    assert wrap_x < 2.0 * inner_x + 2, (wrap_x, inner_x)
    assert wrap_y < 2.0 * inner_y + 2, (wrap_y, inner_y)


def test_texture_fill_derived_maps_are_wired(blender_sd: Blender, sd_server) -> None:
    facts, out = blender_sd.run(
        "texture_fill", url=sd_server.url, model="tiny", width=128, height=128, steps=4, derived=1
    )
    assert facts["returned"] == ["FINISHED"], facts.get("report")
    assert facts["material"] == "Material"  # the cube's own material, reused
    assert facts["materials_after"] == facts["materials_before"]
    links = facts["links"]
    # occlusion darkens the colour on its way into Base Color
    assert ["brushlink texture", "Color", "brushlink occlusion mix", "A"] in links
    assert ["brushlink occlusion", "Color", "brushlink occlusion mix", "B"] in links
    assert ["brushlink occlusion mix", "Result", "Principled BSDF", "Base Color"] in links
    assert ["brushlink roughness", "Color", "Principled BSDF", "Roughness"] in links
    assert ["brushlink normal", "Color", "brushlink normal map", "Color"] in links
    assert ["brushlink normal map", "Normal", "Principled BSDF", "Normal"] in links
    assert ["brushlink height", "Color", "brushlink displacement", "Height"] in links
    assert ["brushlink displacement", "Displacement", "Material Output", "Displacement"] in links
    kinds = ("normal", "roughness", "height", "occlusion")
    extra = [i for n, i in facts["images"].items() if n.endswith(kinds)]
    assert len(extra) == 4
    assert all(i["packed"] and i["colorspace"] == "Non-Color" for i in extra)
    normal = np.load(out / "normal.npy").astype(float) / 255 * 2 - 1
    assert (normal[..., 2] > 0).all()  # every normal points out of the surface
    lengths = np.linalg.norm(normal[..., :3], axis=2)
    assert np.abs(lengths - 1).max() < 0.05
    rough = np.load(out / "roughness.npy")[..., 0].astype(float) / 255
    assert rough.min() >= 0.35 and rough.max() <= 0.95
    texture = np.load(out / "texture.npy")[..., :3].astype(float) @ [0.2126, 0.7152, 0.0722]
    # Roughness follows the texture's darkness (luminance): darker pixels are rougher.
    assert np.corrcoef(texture.ravel(), rough.ravel())[0, 1] < -0.95
    # Height is the (slightly blurred) luminance over its whole range; occlusion is 1 on
    # most of it and darker only in hollows, never below its floor of 0.2.
    height = np.load(out / "height.npy")[..., 0].astype(float) / 255
    assert height.min() <= 1 / 255 and height.max() >= 254 / 255
    assert np.corrcoef(texture.ravel(), height.ravel())[0, 1] > 0.8
    ao = np.load(out / "occlusion.npy")[..., 0].astype(float) / 255
    assert ao.min() >= 0.2 - 1 / 255 and ao.max() == 1.0
    assert ao[height > 0.8].mean() > ao[height < 0.2].mean()  # hollows darker than tops


def test_a_second_fill_reuses_the_node_and_meshes_without_uvs_get_box_projection(
    blender_sd: Blender, sd_server
) -> None:
    facts, _ = blender_sd.run(
        "texture_fill",
        url=sd_server.url,
        model="tiny",
        width=64,
        height=64,
        steps=2,
        no_uv=1,
        twice=1,
    )
    assert facts["returned"] == ["FINISHED"], facts.get("report")
    assert facts["second"]["returned"] == ["FINISHED"], facts["second"].get("report")
    assert facts["nodes"].keys() == facts["first_nodes"].keys()  # no node piles up
    assert facts["nodes"]["brushlink texture"]["image"] == "Texture: mossy stone wall.001"
    assert ["brushlink coordinates", "Generated", "brushlink texture", "Vector"] in facts["links"]
    assert facts["projection"] == "BOX"


def test_previews_show_then_cancel_leaves_no_texture_and_no_material(
    blender_sd: Blender, sd_server
) -> None:
    facts, _ = blender_sd.run(
        "texture_fill",
        url=sd_server.url,
        model="tiny",
        width=64,
        height=64,
        steps=100,
        drop_material=1,
        cancel_at_step=12,
    )
    assert facts["returned"] == ["FINISHED"]  # the UI path: started
    # The server previews every 5 steps: the texture image showed them while it generated.
    (preview,) = facts["preview_before_cancel"]
    assert preview["name"] == "Texture: mossy stone wall"
    assert preview["size"] == [64, 64]
    assert facts["cancel"]["returned"] == ["FINISHED"]
    assert facts["status"] == "Texture fill cancelled."
    assert facts["images_after"] == facts["images_before"]  # previews removed again
    assert facts["materials_after"] == facts["materials_before"]
    assert facts["material"] is None


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
