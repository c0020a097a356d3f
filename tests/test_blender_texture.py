"""Texture Fill in real Blender against a real server: seamless packed textures, derived PBR
maps wired into the material, previews and cancel (harness in ``fixtures/blender.py``)."""

from __future__ import annotations

import numpy as np
from fixtures.blender import Blender, generate_models

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
