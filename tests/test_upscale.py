"""The upscale engine: the weight-free default, tiny ESRGANs loaded through spandrel from
ComfyUI and A1111 folders, tiles that meet without seams, refusals before queueing, the refine
pass with a tiny Stable Diffusion checkpoint, a real server and the command line."""

from __future__ import annotations

import asyncio
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from fixtures.engine_jobs import engine_job
from fixtures.tiny_esrgan import build_tiny_esrgan, save_esrgan
from safetensors.torch import save_file
from skimage.metrics import peak_signal_noise_ratio as psnr

from brushlink.plugin.errors import InvalidField, UnknownModel, Unsupported
from brushlink.plugin.request import Request, UpscaleParams
from brushlink.server.benchmarks.upscale_quality import sharpness, shrink
from brushlink.server.config import load_config
from brushlink.server.engines.base import JobCancelled, JobContext
from brushlink.server.engines.catalog import build_registry
from brushlink.server.engines.diffusers.loading import read_header
from brushlink.server.engines.upscale.engine import UpscaleEngine
from brushlink.server.engines.upscale.esrgan import detect
from brushlink.server.engines.upscale.resample import bicubic
from brushlink.server.engines.upscale.tiles import positions, run_tiled

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Touch:
    """Unpickling this creates ``marker``: proof that nothing unpickles an upscaler."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    save_esrgan(build_tiny_esrgan(4), root / "upscale_models" / "tiny-x4.safetensors")
    save_esrgan(build_tiny_esrgan(2), root / "ESRGAN" / "tiny-x2.safetensors")  # A1111's folder
    unshuffle = build_tiny_esrgan(2, unshuffle=True)
    save_esrgan(unshuffle, root / "RealESRGAN" / "tiny-x2plus.safetensors")
    (root / "upscale_models" / "old-x4.pth").write_bytes(pickle.dumps(_Touch(root / "pwned")))
    save_file({"weight": torch.zeros(4)}, str(root / "upscale_models" / "not-esrgan.safetensors"))
    return root


@pytest.fixture(scope="module")
def engine(models: Path) -> UpscaleEngine:
    return UpscaleEngine([models], "cpu")


@pytest.fixture(scope="module")
def photo(chelsea) -> np.ndarray:
    return np.ascontiguousarray(chelsea[60:220, 100:300])  # 200 x 160: the cat's face


def _run(engine, request: Request, image: np.ndarray, events: list | None = None, **ctx):
    job = engine_job(engine, request, image=image, seed=request.seed or 0)  # as the server does
    on_progress = (lambda s, t: events.append((s, t))) if events is not None else None
    return engine.run(job, JobContext(on_progress=on_progress, **ctx))


def _up(model: str, scale: int, **options) -> Request:
    return Request(kind="upscale", model=model, upscale=UpscaleParams(scale), options=options)


# --------------------------------------------------------------------------- models


def test_the_tiny_esrgan_has_real_esrgans_layout_and_spandrel_reads_its_factor(models) -> None:
    import spandrel

    path = models / "upscale_models" / "tiny-x4.safetensors"
    header = read_header(path)
    for key in ("conv_first", "body.0.rdb1.conv1", "conv_body", "conv_up1", "conv_up2", "conv_hr",
                "conv_last"):  # fmt: skip
        assert f"{key}.weight" in header
    for name, scale in (("upscale_models/tiny-x4", 4), ("ESRGAN/tiny-x2", 2),
                        ("RealESRGAN/tiny-x2plus", 2)):  # fmt: skip
        file = models / f"{name}.safetensors"
        model = spandrel.ModelLoader().load_from_file(file)
        assert model.architecture.id == "ESRGAN" and model.scale == scale
        assert detect(read_header(file)) == (scale, "Real-ESRGAN")


def test_every_esrgan_layout_spandrel_reads_is_detected_from_names_and_shapes() -> None:
    from spandrel.architectures.ESRGAN import ESRGAN, ESRGANArch

    def header(state: dict) -> dict:
        return {k: {"dtype": "F32", "shape": list(v.shape)} for k, v in state.items()}

    for scale in (1, 2, 4, 8):  # the original layout (model.N...), and ESRGAN+
        for plus in (False, True):
            state = ESRGAN(num_filters=8, num_blocks=1, scale=scale, plus=plus).state_dict()
            assert ESRGANArch().load(state).scale == scale
            if scale == 1:  # a restoration model: not an upscaler
                with pytest.raises(ValueError, match="restoration"):
                    detect(header(state))
            else:
                assert detect(header(state)) == (scale, "ESRGAN+" if plus else "ESRGAN")
    renames = (("conv_body", "trunk_conv"), ("body.", "RRDB_trunk."), (".rdb", ".RDB"),
               ("conv_up", "upconv"), ("conv_hr", "HRconv"))  # fmt: skip
    state = {}
    for key, value in build_tiny_esrgan(4).state_dict().items():
        for old, new in renames:
            key = key.replace(old, new)
        state[key] = value
    assert ESRGANArch().load(state).scale == 4
    assert detect(header(state)) == (4, "BSRGAN/RealSR")
    grey = ESRGAN(in_nc=1, out_nc=1, num_filters=8, num_blocks=1).state_dict()
    with pytest.raises(ValueError, match="RGB"):
        detect(header(grey))


def test_models_are_listed_from_headers_weight_free_first(engine, models, monkeypatch) -> None:
    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "load_file", lambda *a, **k: pytest.fail("loaded"))
    cards = engine.models()
    assert [c.name for c in cards] == ["lanczos-sharp", "tiny-x4", "tiny-x2", "tiny-x2plus"]
    x4 = cards[1]
    assert x4.kinds == ["upscale"] and x4.family == "upscaler" and x4.engine == "upscale"
    assert x4.accepts.scales == [2, 4] and x4.accepts.slots == ["image"]
    assert x4.description.startswith("x4 Real-ESRGAN upscaler")
    assert "box-filters down by 2" in x4.description  # what x2 does with it
    assert "x4 runs it 2 times" in cards[2].description
    assert not engine.loaded._models  # nothing loaded
    assert not (models / "pwned").exists()


def test_the_default_upscale_model_is_the_weight_free_one(models, tmp_path) -> None:
    registry = build_registry(load_config(tmp_path, models_dirs=(models,)), "cpu")
    engine, card = registry.resolve(Request(kind="upscale"))
    assert (engine.name, card.name) == ("upscale", "lanczos-sharp")


def test_pickled_and_foreign_files_are_refused_by_name(models, tmp_path) -> None:
    registry = build_registry(load_config(tmp_path, models_dirs=(models,)), "cpu")
    with pytest.raises(Unsupported, match=r"`old-x4\.pth` is a pickled file"):
        registry.resolve(_up("old-x4", 2))
    with pytest.raises(Unsupported, match=r"`not-esrgan\.safetensors` .* not an ESRGAN"):
        registry.resolve(_up("not-esrgan", 2))
    with pytest.raises(UnknownModel):
        registry.resolve(_up("nothing-of-that-name", 2))
    assert not (models / "pwned").exists()  # the pickle never ran


# --------------------------------------------------------------------------- upscaling


@pytest.mark.parametrize("model", ["lanczos-sharp", "tiny-x4", "tiny-x2"])
@pytest.mark.parametrize("scale", [2, 4])
def test_exact_size_and_the_original_comes_back_when_shrunk(engine, photo, model, scale) -> None:
    photo = photo.copy()
    photo[:40, :40, 3] = 0  # a transparent corner
    result = _run(engine, _up(model, scale), photo)
    out = result.images[0].image
    assert out.shape == (160 * scale, 200 * scale, 4)
    back = cv2.resize(out, (200, 160), interpolation=cv2.INTER_AREA)
    assert psnr(photo[..., :3], back[..., :3]) > ROUND_TRIP_DB[model]
    edge, reach = 40 * scale, 4 * scale  # Lanczos-4 reaches 4 input px
    assert (out[: edge - reach, : edge - reach, 3] == 0).all()  # alpha upscaled on its own
    assert (out[edge + reach :, edge + reach :, 3] == 255).all()
    assert result.metadata["upscale"]["passes"] == (2 if (model, scale) == ("tiny-x2", 4) else 1)


# measured on this crop (x2 / x4): lanczos-sharp 77.3 / 77.4 dB (back-projection makes its
# INTER_AREA downsize the input), tiny-x4 40.5 / 40.6, tiny-x2 47.5 / 44.1
ROUND_TRIP_DB = {"lanczos-sharp": 60.0, "tiny-x4": 38.0, "tiny-x2": 41.0}


def test_real_esrgans_x2_layout_runs_at_the_exact_size(engine, photo) -> None:
    out = _run(engine, _up("tiny-x2plus", 2), photo).images[0].image  # random weights
    assert out.shape == (320, 400, 4)


@pytest.mark.parametrize("scale", [2, 4])
def test_the_weight_free_default_is_sharper_than_bicubic_and_closer(engine, chelsea, coffee,
                                                                    scale) -> None:  # fmt: skip
    for picture in (chelsea, coffee):
        original, small = shrink(picture[..., :3], scale, "area")
        alpha = np.full(small.shape[:2], 255, np.uint8)
        ours = _run(engine, _up("lanczos-sharp", scale), np.dstack([small, alpha]))
        ours = ours.images[0].image[..., :3]
        theirs = bicubic(small, scale)
        # measured: +0.22 to +0.45 dB, 1.12 to 1.24 times the gradient
        assert psnr(original, ours) > psnr(original, theirs) + 0.1
        assert sharpness(ours) > 1.08 * sharpness(theirs)


def test_tiles_meet_without_seams(engine, photo) -> None:
    whole = _run(engine, _up("tiny-x4", 2, tile=512), photo).images[0].image[..., :3]
    tiled = _run(engine, _up("tiny-x4", 2, tile=64, overlap=16), photo).images[0].image[..., :3]
    # measured 82 dB, at most 1 grey level apart; 64 px tiles pasted side by side without
    # overlap measure 39 dB, 49 levels apart, a visible grid
    assert psnr(whole, tiled) > 60
    # no step where tiles meet: the column-to-column change there is the untiled one's
    steps = [
        np.abs(np.diff(a.astype(np.float32), axis=1)).mean(axis=(0, 2)) for a in (whole, tiled)
    ]
    for x in positions(200, 64, 16)[1:]:
        for edge in (2 * x, 2 * (x + 64)):  # a tile's first and last column, in output px
            if edge < len(steps[0]):
                assert abs(steps[1][edge - 1] - steps[0][edge - 1]) < 0.05


def test_run_tiled_is_a_partition_of_unity_in_bounded_rows() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 417, 3), dtype=np.uint8)
    for tile, overlap in ((64, 8), (100, 50), (512, 32)):
        same = run_tiled(image, lambda t: t, scale=1, tile=tile, overlap=overlap)
        assert np.array_equal(same, image)
        up = run_tiled(image, lambda t: np.kron(t, np.ones((2, 2, 1))), scale=2, tile=tile,
                       overlap=overlap)  # fmt: skip
        assert np.array_equal(up, np.kron(image, np.ones((2, 2, 1), np.uint8)))


def test_progress_per_tile_and_cancel(engine, photo) -> None:
    events: list = []
    _run(engine, _up("tiny-x4", 4, tile=64, overlap=16), photo, events)
    total = len(positions(200, 64, 16)) * len(positions(160, 64, 16))
    assert events == [(i, total) for i in range(total + 1)]
    seen: list = []
    with pytest.raises(JobCancelled):
        _run(engine, _up("tiny-x4", 4, tile=64, overlap=16), photo, seen,
             is_cancelled=lambda: len(seen) >= 3)  # fmt: skip
    assert len(seen) == 3  # stopped when the third tile reported


def test_requests_refused_before_queueing(models, photo) -> None:
    small = UpscaleEngine([models], "cpu", max_pixels=300_000)
    _run(small, _up("lanczos-sharp", 2), photo)  # 400 x 320 = 128,000 px: fine
    with pytest.raises(InvalidField, match="800x640, more than the 300,000 pixels") as info:
        engine_job(small, _up("tiny-x4", 4), image=photo)
    assert info.value.field == "upscale.scale"
    with pytest.raises(InvalidField, match="upscales by 2, 4, not 3") as info:
        engine_job(small, _up("tiny-x4", 3), image=photo)
    with pytest.raises(InvalidField) as info:
        engine_job(small, _up("tiny-x4", 2, tile=64, overlap=40), image=photo)
    assert info.value.field == "options.overlap"
    with pytest.raises(InvalidField) as info:
        engine_job(small, _up("lanczos-sharp", 2, tile=64), image=photo)  # not its option
    with pytest.raises(Unsupported, match="no Stable Diffusion engine") as info:
        engine_job(small, Request(kind="upscale", upscale=UpscaleParams(refine="x")), image=photo)
    assert info.value.field == "upscale.refine"


# --------------------------------------------------------------------------- refine


@pytest.fixture(scope="module")
def refiner(models: Path, tmp_path_factory: pytest.TempPathFactory) -> UpscaleEngine:
    from fixtures.tiny_sd import build_tiny_pipeline, save_single_file

    from brushlink.server.engines.diffusers.engine import DiffusersEngine

    root = tmp_path_factory.mktemp("sd")
    save_single_file(build_tiny_pipeline(seed=1), root / "checkpoints" / "tiny.safetensors")
    inpainting = build_tiny_pipeline(seed=2, inpaint_unet=True)
    save_single_file(inpainting, root / "checkpoints" / "tiny-inpainting.safetensors")
    return UpscaleEngine([models], "cpu", diffusers=DiffusersEngine([root], "cpu"))


def _refine(strength: float, model: str = "lanczos-sharp", **fields) -> Request:
    upscale = UpscaleParams(4, refine="tiny", strength=strength)
    return Request(kind="upscale", model=model, prompt="a cat", steps=4, upscale=upscale, **fields)


def test_refine_redraws_every_tile_and_keeps_size_and_alpha(refiner, photo) -> None:
    small = cv2.resize(photo, (40, 32), interpolation=cv2.INTER_AREA)
    small[:8, :8, 3] = 0
    plain = _run(refiner, _up("lanczos-sharp", 4), small).images[0].image
    events: list = []
    result = _run(refiner, _refine(0.5), small, events)
    out = result.images[0].image
    assert out.shape == plain.shape == (128, 160, 4)
    assert np.array_equal(out[..., 3], plain[..., 3])
    assert np.abs(out[..., :3].astype(int) - plain[..., :3]).mean() > 5  # redrawn
    # 160 x 128 in 64 px tiles (the checkpoint's size) overlapping by 8: 3 x 3, 2 steps each
    assert result.metadata["upscale"]["refine_tiles"] == 9
    total = 1 + 9 * 2
    assert events[0] == (0, total) and events[-1] == (total, total)
    assert [s for s, _ in events] == sorted(s for s, _ in events)


def test_refine_strength_at_its_edges(refiner, photo, monkeypatch) -> None:
    small = cv2.resize(photo, (16, 16), interpolation=cv2.INTER_AREA)
    plain = _run(refiner, _up("lanczos-sharp", 4), small).images[0].image
    diffusers = refiner.diffusers
    monkeypatch.setattr(diffusers, "redraw", lambda *a: pytest.fail("strength 0 redraws"))
    assert np.array_equal(_run(refiner, _refine(0.0), small).images[0].image, plain)
    monkeypatch.undo()
    calls = []
    redraw = diffusers.redraw

    def spy(image, checkpoint, request, seed, ctx):
        calls.append((request.strength, request.steps, seed))
        return redraw(image, checkpoint, request, seed, ctx)

    monkeypatch.setattr(diffusers, "redraw", spy)
    faint = _run(refiner, _refine(0.01, seed=7), small).images[0].image
    # the strength is the img2img strength; 4 steps at 0.01 would run none: 100 run one
    assert calls == [(0.01, 100, 7)]
    assert not np.array_equal(faint, plain)


def test_refine_tiles_are_blended_without_steps(refiner) -> None:
    from brushlink.server.engines.upscale.refine import RefinePlan

    class Offsets:  # a redraw that brightens each tile more than the last: steps if pasted
        folders, models = refiner.diffusers.folders, refiner.diffusers.models
        redraw = staticmethod(lambda tile, ckpt, request, seed, ctx: tile + 30 * seed)

    grey = np.full((100, 180, 4), 40, np.uint8)
    plan = RefinePlan(Offsets(), "tiny", _refine(0.5), 180, 100)
    out = plan.run(grey, 0, JobContext(), lambda units: None).astype(int)
    assert plan.tiles == 4 * 2 and out[..., :3].max() == 40 + 30 * 7
    # pasted, neighbours in a row would step by 30 and rows (4 tiles) by 120; blended over the
    # 8 px overlap (or more) no step is a third of that (measured 4 and 13)
    for axis, jump in ((1, 30), (0, 120)):
        assert np.abs(np.diff(out[..., :3], axis=axis)).max() <= jump / 3


def test_refine_checkpoints_are_checked_before_queueing(refiner, photo) -> None:
    with pytest.raises(UnknownModel, match="no checkpoint called `nope`") as info:
        engine_job(refiner, Request(kind="upscale", upscale=UpscaleParams(refine="nope")),
                   image=photo)  # fmt: skip
    assert info.value.field == "upscale.refine"
    with pytest.raises(Unsupported, match="inpainting checkpoint") as info:
        request = Request(kind="upscale", upscale=UpscaleParams(refine="tiny-inpainting"))
        engine_job(refiner, request, image=photo)
    assert info.value.field == "upscale.refine"


# --------------------------------------------------------------------------- server, command line


def test_upscale_over_a_real_server(tmp_path, models, server_factory, photo) -> None:
    from brushlink.plugin.client import Client
    from brushlink.plugin.errors import InvalidField as Refused
    from brushlink.plugin.protocol import Accepted, Progress
    from brushlink.plugin.request import Job
    from brushlink.server.images import decode_rgba, encode_rgba

    (tmp_path / "config.toml").write_text("[limits]\nmax_pixels = 300000\n")
    server = server_factory("--models", str(models), "--device", "cpu", home=tmp_path)
    events: list = []

    async def main():
        async with Client(server.url, server.token) as client:
            cards = {m.name: m for m in client.welcome.models}
            job = Job(_up("tiny-x4", 2), image=encode_rgba(photo[:48, :64]))
            result = await client.run(job, on_event=events.append)
            with pytest.raises(Refused) as info:
                await client.run(Job(_up("tiny-x4", 4), image=encode_rgba(photo)), events.append)
            return cards, result, info.value

    cards, result, refused = asyncio.run(asyncio.wait_for(main(), timeout=300))
    assert cards["tiny-x4"].kinds == ["upscale"] and "lanczos-sharp" in cards
    assert "upscale" in cards["tiny-x4"].kinds and "old-x4" not in cards
    assert decode_rgba(result.images[0].data, "result").shape == (96, 128, 4)
    assert any(isinstance(e, Progress) for e in events)
    assert sum(isinstance(e, Accepted) for e in events) == 1  # the refused job never was
    assert refused.field == "upscale.scale" and "300,000 pixels" in refused.message


def test_upscale_command_line(tmp_path, models, photo) -> None:
    home = tmp_path / "home"
    shutil.copytree(models / "upscale_models", home / "models" / "upscale_models")
    (home / "config.toml").write_text("[server]\nport = 1\n")  # no server here: in-process
    cv2.imwrite(str(tmp_path / "cat.png"), cv2.cvtColor(photo, cv2.COLOR_RGBA2BGRA))
    env = {**os.environ, "BRUSHLINK_HOME": str(home)}

    def brushlink(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "brushlink.server.cli.main", "upscale", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)

    done = brushlink(str(tmp_path / "cat.png"), "--scale", "4", "--model", "tiny-x4", "-o",
                     str(tmp_path / "big.png"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "in-process" in done.stderr
    assert cv2.imread(str(tmp_path / "big.png")).shape == (640, 800, 3)
    done = brushlink(str(tmp_path / "cat.png"), "--strength", "0.5", "-o", str(tmp_path / "x.png"))
    assert done.returncode == 2 and "go with --refine" in done.stderr
