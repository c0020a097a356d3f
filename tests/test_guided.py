"""Guided generation through the diffusers engine and the server, with tiny models saved in the
published file layouts (kohya and PEFT LoRAs, original-layout and folder ControlNets, A1111
embeddings, a standalone VAE) in a ComfyUI models/ folder and an A1111 one, loaded through the
same loaders a user's files go through."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from fixtures.engine_jobs import engine_job, untouched
from fixtures.guided_models import comfy_models

from brushlink.plugin.errors import UnknownModel, Unsupported
from brushlink.plugin.request import Control, LoraRef, Request
from brushlink.server.engines.base import JobContext
from brushlink.server.engines.diffusers.engine import DiffusersEngine

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return comfy_models(tmp_path_factory.mktemp("comfy") / "models")


@pytest.fixture(scope="module")
def engine(comfy: Path) -> DiffusersEngine:
    return DiffusersEngine([comfy], device="cpu")


def picture(seed: int, size: int = 64) -> np.ndarray:
    """A different black-and-white block picture per seed, as RGBA (a sketch's edges)."""
    rng = np.random.default_rng(seed)
    blocks = (rng.random((size // 8, size // 8)) > 0.5).astype(np.uint8) * 255
    grey = np.kron(blocks, np.ones((8, 8), np.uint8))
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGBA)


def run(engine: DiffusersEngine, pictures: list[np.ndarray] | None = None, **fields) -> np.ndarray:
    images = {k: fields.pop(k) for k in ("image", "mask") if k in fields}
    request = Request(
        prompt=fields.pop("prompt", "a cat"), model=fields.pop("model", "tiny"), steps=3, **fields
    )
    if request.kind == "generate":
        request.width = request.height = 64
    job = engine_job(engine, request, seed=5, controls=pictures, **images)
    return engine.run(job, JobContext()).images[0].image


def test_every_add_on_is_listed_with_its_type_and_family(engine: DiffusersEngine) -> None:
    found = {(a.name, a.type, a.family) for a in engine.addons()}
    assert found == {
        ("style", "lora", "sd1"),
        ("grain", "lora", "sd1"),
        ("peft-style", "lora", "sd1"),
        ("xl-style", "lora", "sdxl"),
        ("edges", "controlnet", "sd1"),
        ("depth", "controlnet", "sd1"),
        ("shiny", "embedding", "sd1"),
        ("other", "vae", ""),
    }
    [tiny] = [m for m in engine.models() if m.name == "tiny"]
    assert set(tiny.accepts.addons) == {"lora", "controlnet", "vae", "embedding"}


def test_a_lora_at_weight_zero_is_the_picture_without_it_and_never_leaks(engine) -> None:
    plain = run(engine)
    assert np.array_equal(run(engine, loras=[LoraRef("style", 0.0)]), plain)
    styled = run(engine, loras=[LoraRef("style", 1.0)])
    assert np.abs(styled.astype(int) - plain).mean() > 1
    assert np.array_equal(run(engine), plain)  # the next job without it: the original again
    stronger = run(engine, loras=[LoraRef("style", 2.0)])
    assert np.abs(stronger.astype(int) - plain).mean() > np.abs(styled.astype(int) - plain).mean()


def test_two_loras_stack_and_both_published_layouts_load(engine) -> None:
    plain = run(engine)
    one = run(engine, loras=[LoraRef("style")])
    two = run(engine, loras=[LoraRef("style"), LoraRef("grain")])
    grain = run(engine, loras=[LoraRef("grain")])
    assert not np.array_equal(two, one) and not np.array_equal(two, grain)
    peft = run(engine, loras=[LoraRef("peft-style")])
    assert np.abs(peft.astype(int) - plain).mean() > 1


def test_a_lora_for_another_family_or_a_missing_one_is_refused_before_queueing(engine) -> None:
    with pytest.raises(Unsupported, match="for SDXL") as err:
        engine_job(engine, Request(model="tiny", loras=[LoraRef("xl-style")]))
    assert err.value.field == "loras[0].name"
    with pytest.raises(UnknownModel, match="style, grain|grain, peft-style"):
        engine_job(engine, Request(model="tiny", loras=[LoraRef("nope")]))


def test_a_control_picture_steers_the_picture_and_strength_zero_is_unguided(engine) -> None:
    plain = run(engine)
    edges = [Control("edges", image=0)]
    one = run(engine, [picture(1)], controls=edges)
    other = run(engine, [picture(2)], controls=edges)
    assert np.abs(one.astype(int) - plain).mean() > 1
    assert not np.array_equal(one, other)  # two pictures, two results
    unguided = run(engine, [picture(1)], controls=[Control("edges", image=0, strength=0.0)])
    assert np.array_equal(unguided, plain)


def test_two_controls_stack_single_file_and_folder(engine) -> None:
    both = [Control("edges", image=0), Control("depth", image=1, preprocessor="depth")]
    one = run(engine, [picture(1)], controls=both[:1])
    two = run(engine, [picture(1), picture(3)], controls=both)
    assert not np.array_equal(one, two)


def test_controls_guide_inpainting_and_keep_the_rest_untouched(engine, astronaut) -> None:
    image = np.ascontiguousarray(cv2.resize(astronaut, (96, 96)))
    mask = np.zeros((96, 96), np.uint8)
    mask[30:60, 30:60] = 255
    base = {"kind": "inpaint", "prompt": "a flower", "image": image, "mask": mask}
    plain = run(engine, **base)
    guided = run(engine, [picture(4, 96)], controls=[Control("edges", image=0)], **dict(base))
    assert not np.array_equal(plain, guided)
    keep = untouched(mask)
    assert np.array_equal(guided[keep], image[keep])


def test_controls_guide_style_too(engine, chelsea) -> None:
    image = np.ascontiguousarray(cv2.resize(chelsea, (64, 48)))
    base = {"kind": "style", "prompt": "oil", "image": image, "strength": 0.8}
    plain = run(engine, **base)
    guided = run(engine, [picture(5)], controls=[Control("edges", image=0)], **dict(base))
    assert not np.array_equal(plain, guided) and guided.shape == image.shape


def test_an_embedding_is_called_by_its_name_in_the_prompt_and_then_forgotten(engine) -> None:
    plain = run(engine, prompt="a shiny cat", model="tiny")
    bare = DiffusersEngine([engine.model_roots[0]], device="cpu")  # same files
    assert np.array_equal(plain, run(bare, prompt="a shiny cat"))
    without = run(engine, prompt="a cat")
    assert not np.array_equal(plain, without)  # the word loaded the embedding's vectors
    assert np.array_equal(run(engine, prompt="a cat"), without)  # unloaded after the job


def test_a_vae_for_one_job_only(engine) -> None:
    plain = run(engine)
    other = run(engine, vae="other")
    assert np.abs(other.astype(int) - plain).mean() > 1
    assert np.array_equal(run(engine), plain)


def test_an_a1111_models_folder_is_found_as_it_is(tmp_path: Path, comfy: Path) -> None:
    root = tmp_path / "webui" / "models"
    for src, dst in (("checkpoints", "Stable-diffusion"), ("loras", "Lora"), ("controlnet", "ControlNet"), ("vae", "VAE")):  # fmt: skip
        (root / dst).mkdir(parents=True)
        for item in (comfy / src).iterdir():  # copies: a link out of the folder is refused
            copy = shutil.copytree if item.is_dir() else shutil.copy2
            copy(item, root / dst / item.name)
    a1111 = DiffusersEngine([root], device="cpu")
    assert {m.name for m in a1111.models()} == {"tiny", "xl"}
    assert {a.name for a in a1111.addons()} >= {"style", "edges", "depth", "other"}
    engine = DiffusersEngine([comfy], device="cpu")
    fields = {"loras": [LoraRef("style")], "controls": [Control("edges", image=0)]}
    assert np.array_equal(run(a1111, [picture(1)], **fields), run(engine, [picture(1)], **fields))


def test_the_command_line_and_the_wire_take_loras_and_controls(
    server_factory, comfy: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    server = server_factory("--models", str(comfy))
    sketch = tmp_path / "sketch.png"
    cv2.imwrite(str(sketch), picture(7)[..., :3])
    common = ["--model", "tiny", "--size", "64x64", "--steps", "2", "--seed", "3"]

    def generate(name: str, *extra: str) -> np.ndarray:
        out = tmp_path / f"{name}.png"
        cmd = [sys.executable, "-m", "brushlink.server.cli.main", "generate", "a cat", *common]
        cmd += [*extra, "--server", server.url, "--token", server.token, "-o", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return cv2.imread(str(out))

    plain = generate("plain")
    guided = generate("guided", "--lora", "style:0.8", "--control", "edges:" + str(sketch))
    assert np.abs(guided.astype(int) - plain).mean() > 1
    assert np.array_equal(generate("again"), plain)
    refused = subprocess.run(
        [sys.executable, "-m", "brushlink.server.cli.main", "generate", "a cat", *common,
         "--lora", "xl-style", "--server", server.url, "--token", server.token,
         "-o", str(tmp_path / "no.png")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert refused.returncode == 1 and "[unsupported]" in refused.stderr
    assert "for SDXL" in refused.stderr
