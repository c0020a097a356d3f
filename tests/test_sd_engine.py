"""The diffusers engine on tiny Stable Diffusion checkpoints: reproducible seeds, seamless tiles,
inpainting that leaves everything outside the feathered mask alone, style, previews, cancel,
and the out-of-memory retry."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from fixtures.engine_jobs import engine_job, untouched
from fixtures.tiny_sd import build_tiny_pipeline, save_single_file

from brushlink.plugin.errors import InvalidField, OutOfMemory, Unsupported
from brushlink.plugin.request import Request
from brushlink.server.engines.base import JobCancelled, JobContext
from brushlink.server.engines.diffusers.engine import DiffusersEngine
from brushlink.server.engines.diffusers.tiling import tiling

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> DiffusersEngine:
    root = tmp_path_factory.mktemp("models")
    save_single_file(build_tiny_pipeline(seed=1), root / "checkpoints" / "tiny.safetensors")
    save_single_file(
        build_tiny_pipeline(seed=2, inpaint_unet=True),
        root / "checkpoints" / "tiny-inpainting.safetensors",
    )
    return DiffusersEngine([root], device="cpu", preview_every=2)


class Events:
    def __init__(self, cancel_after: int | None = None) -> None:
        self.progress: list[tuple[int, int]] = []
        self.previews: list[tuple[tuple[int, ...], int]] = []
        self.cancel_after = cancel_after

    def ctx(self) -> JobContext:
        return JobContext(
            on_progress=lambda s, t: self.progress.append((s, t)),
            on_preview=lambda im, s, t: self.previews.append((im.shape, s)),
            is_cancelled=lambda: (
                self.cancel_after is not None and len(self.progress) >= self.cancel_after
            ),
        )


def run(
    engine: DiffusersEngine, spec: Request, seed: int = 11, events: Events | None = None, **images
):
    spec.model = spec.model or "tiny"
    job = engine_job(engine, spec, seed=seed, **images)
    return engine.run(job, (events or Events()).ctx())


def photo(width: int, height: int) -> np.ndarray:
    from skimage import data

    rgb = cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_AREA)
    return np.dstack([rgb, np.full((height, width), 255, np.uint8)])


def test_models_list_family_kinds_and_defaults(engine: DiffusersEngine) -> None:
    info = {m.name: m for m in engine.models()}
    assert info["tiny"].family == "sd1"
    assert info["tiny"].kinds == ["generate", "inpaint", "style"]
    assert info["tiny-inpainting"].kinds == ["inpaint"]
    assert info["tiny"].defaults["width"] == 64  # the UNet's sample size x the VAE's factor
    assert info["tiny"].size_bytes > 0


def test_same_seed_same_image_and_candidates_use_consecutive_seeds(engine: DiffusersEngine) -> None:
    spec = Request(prompt="a red cat", width=64, height=64, steps=3, candidates=2)
    first = run(engine, spec, seed=40)
    again = run(engine, spec, seed=40)
    assert [o.seed for o in first.images] == [40, 41]
    for a, b in zip(first.images, again.images, strict=True):
        assert np.array_equal(a.image, b.image)
    assert not np.array_equal(first.images[0].image, first.images[1].image)
    alone = run(engine, Request(prompt="a red cat", width=64, height=64, steps=3), seed=41)
    diff = np.abs(alone.images[0].image.astype(int) - first.images[1].image.astype(int))
    assert diff.max() <= 2  # candidate 2 is the seed-41 image (batching may round differently)


def test_sizes_that_are_not_multiples_of_8_come_back_at_the_asked_size(engine) -> None:
    out = run(engine, Request(prompt="x", width=60, height=44, steps=2)).images[0].image
    assert out.shape == (44, 60, 4)
    assert (out[..., 3] == 255).all()


def test_progress_every_step_and_previews_from_latents(engine: DiffusersEngine) -> None:
    events = Events()
    run(engine, Request(prompt="x", width=64, height=48, steps=6, scheduler="ddim"), events=events)
    assert events.progress == [(i, 6) for i in range(1, 7)]
    assert events.previews == [((6, 8, 4), 2), ((6, 8, 4), 4)]  # latent-sized, every 2nd step


def test_scheduler_choice_changes_the_sampler_and_is_restored(engine: DiffusersEngine) -> None:
    base = Request(prompt="x", width=64, height=64, steps=4)
    default = run(engine, base).images[0].image
    euler_a = run(engine, Request(**{**base.__dict__, "scheduler": "euler_a"})).images[0].image
    assert not np.array_equal(default, euler_a)
    assert np.array_equal(run(engine, base).images[0].image, default)
    with pytest.raises(InvalidField, match="Unknown scheduler"):
        run(engine, Request(prompt="x", scheduler="warp-drive"))


def test_tiling_makes_opposite_edges_continue_each_other(engine: DiffusersEngine) -> None:
    """With circular padding the model is equivariant to wrap-around shifts: rolling the starting
    noise by half the width gives the same picture rolled by half the width, so the left and
    right edges of the first picture are neighbours in the middle of the second."""
    ckpt = engine.folders.resolve("tiny")
    pipe = engine.store.get(ckpt, "txt2img")
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(5))

    def draw(latents: torch.Tensor, mode: str) -> np.ndarray:
        with tiling(pipe, mode):
            out = pipe("stone", latents=latents.clone(), height=64, width=64,
                       num_inference_steps=3, output_type="np")  # fmt: skip
        return out.images[0]

    plain = draw(noise, "x")
    shifted_x = draw(torch.roll(noise, 4, dims=3), "x")
    np.testing.assert_allclose(np.roll(plain, 32, axis=1), shifted_x, atol=2e-4)
    # x only: top and bottom do not wrap
    shifted_y = draw(torch.roll(noise, 4, dims=2), "x")
    assert np.abs(np.roll(plain, 32, axis=0) - shifted_y).max() > 0.01
    both = draw(noise, "xy")
    both_shifted = draw(torch.roll(noise, (4, 4), dims=(2, 3)), "xy")
    np.testing.assert_allclose(np.roll(both, (32, 32), axis=(0, 1)), both_shifted, atol=2e-4)
    # without tiling the same shift is not a wrap-around
    untiled = draw(noise, "none")
    assert (
        np.abs(np.roll(untiled, 32, axis=1) - draw(torch.roll(noise, 4, dims=3), "none")).max()
        > 0.01
    )


def test_tile_jobs_through_the_engine_and_padding_is_restored(engine: DiffusersEngine) -> None:
    base = Request(prompt="bricks", width=64, height=64, steps=2)
    plain = run(engine, base).images[0].image
    tiled = run(engine, Request(**{**base.__dict__, "tile": "xy"})).images[0].image
    assert not np.array_equal(plain, tiled)
    assert np.array_equal(run(engine, base).images[0].image, plain)


@pytest.mark.parametrize("model", ["tiny", "tiny-inpainting"])
def test_inpaint_leaves_pixels_outside_the_feathered_mask_unchanged(engine, model: str) -> None:
    image = photo(160, 120)
    mask = np.zeros((120, 160), np.uint8)
    cv2.circle(mask, (90, 60), 14, 255, -1)
    mask = cv2.GaussianBlur(mask, (9, 9), 3)  # a soft selection
    events = Events()
    result = run(engine, Request(kind="inpaint", model=model, prompt="a red flower", steps=3),
                 events=events, image=image, mask=mask)  # fmt: skip
    out = result.images[0].image
    assert out.shape == image.shape
    outside = untouched(mask)
    assert outside.sum() > 0.8 * outside.size
    assert np.array_equal(out[outside], image[outside])
    inside = mask == 255
    assert np.abs(out[inside].astype(int) - image[inside].astype(int)).mean() > 5
    # the crop ran at the model's native resolution (64 px -> 8x8 latents), not at crop size
    assert {shape for shape, _ in events.previews} == {(8, 8, 4)}
    assert result.metadata["outpaint"] is False


def test_outpaint_fills_an_enlarged_canvas(engine: DiffusersEngine) -> None:
    image = photo(96, 64)
    image[:, 72:, :] = 0  # the canvas grew by 24 transparent columns on the right
    mask = np.zeros((64, 96), np.uint8)
    mask[:, 72:] = 255
    result = run(engine, Request(kind="inpaint", prompt="sky", steps=3), image=image, mask=mask)
    out = result.images[0].image
    assert result.metadata["outpaint"] is True
    assert (out[:, 72:, 3] == 255).all()  # filled and opaque
    outside = untouched(mask)
    assert np.array_equal(out[outside], image[outside])


def test_style_keeps_size_and_transparency(engine: DiffusersEngine) -> None:
    image = photo(80, 56)
    image[:8, :8, 3] = 0
    out = run(engine, Request(kind="style", prompt="oil painting", strength=0.5, steps=4),
              image=image).images[0].image  # fmt: skip
    assert out.shape == image.shape
    assert np.array_equal(out[..., 3], image[..., 3])
    assert not np.array_equal(out[..., :3], image[..., :3])


def test_style_reference_without_ip_adapter_names_the_missing_weights(engine) -> None:
    image = photo(64, 64)
    with pytest.raises(Unsupported, match=r"ip-adapter_sd15\.safetensors"):
        run(engine, Request(kind="style", prompt="x"), image=image, reference=image)


def test_cancel_stops_within_one_step(engine: DiffusersEngine) -> None:
    events = Events(cancel_after=2)  # steps 1 and 2 report, then the flag is up
    with pytest.raises(JobCancelled):
        run(engine, Request(prompt="x", width=64, height=64, steps=20), events=events)
    assert events.progress[-1][0] == 2
    # the pipeline is fine for the next job
    assert run(engine, Request(prompt="x", width=64, height=64, steps=2)).images


@pytest.mark.parametrize(
    "error",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 4 GB"),
    ],
)
def test_out_of_memory_retries_once_with_lower_memory_settings(engine, monkeypatch, error) -> None:
    spec = Request(prompt="x", width=64, height=64, steps=2)
    expected = run(engine, spec).images[0].image
    pipe = engine.store.get(engine.folders.resolve("tiny"), "txt2img")
    real_forward = pipe.unet.forward
    calls: list[bool] = []

    def flaky(*args, **kwargs):
        calls.append(pipe.vae.use_tiling)
        if len(calls) == 1:
            raise error
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(pipe.unet, "forward", flaky)
    out = run(engine, spec).images[0].image
    assert calls[0] is False and calls[1] is True  # the retry ran with VAE tiling on
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 2  # same seed, same picture
    assert pipe.vae.use_tiling is False  # settings are back to normal for the next job


def test_out_of_memory_twice_fails_the_job_clearly(engine, monkeypatch) -> None:
    pipe = engine.store.get(engine.folders.resolve("tiny"), "txt2img")

    def always(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(pipe.unet, "forward", always)
    with pytest.raises(OutOfMemory, match="even after retrying"):
        run(engine, Request(prompt="x", width=64, height=64, steps=2))
    monkeypatch.undo()
    assert run(engine, Request(prompt="x", width=64, height=64, steps=2)).images


def test_requests_the_engine_refuses_before_queueing(engine: DiffusersEngine) -> None:
    with pytest.raises(InvalidField, match="keep"):
        run(engine, Request(prompt="x", candidates=2, keep=3))
    with pytest.raises(InvalidField, match="mask"):
        run(engine, Request(kind="inpaint", prompt="x"), image=photo(64, 64))
    with pytest.raises(InvalidField, match="tile"):
        run(engine, Request(prompt="x", tile="diagonal"))


def test_missing_model_file_is_unknown(engine: DiffusersEngine, tmp_path: Path) -> None:
    from brushlink.plugin.errors import UnknownModel

    with pytest.raises(UnknownModel):
        engine.folders.resolve("not-there")


def test_style_reference_steers_through_ip_adapter_when_installed(tmp_path: Path) -> None:
    from fixtures.tiny_sd import save_tiny_ip_adapter

    pipe = build_tiny_pipeline(seed=1)
    save_single_file(pipe, tmp_path / "checkpoints" / "tiny.safetensors")
    save_tiny_ip_adapter(pipe, tmp_path / "ipadapter", "ip-adapter_sd15.safetensors")
    engine = DiffusersEngine([tmp_path], device="cpu")
    image, reference = photo(64, 64), photo(64, 64)[::-1].copy()
    spec = Request(kind="style", prompt="oil painting", steps=3)
    plain = run(engine, spec, image=image).images[0].image
    steered = run(engine, spec, image=image, reference=reference).images[0].image
    assert np.abs(plain.astype(int) - steered.astype(int)).mean() > 1
    # the adapter is removed after the job: the shared UNet is back to plain
    assert np.array_equal(run(engine, spec, image=image).images[0].image, plain)


def test_sdxl_checkpoint_generates_inpaints_and_styles(tmp_path: Path) -> None:
    from fixtures.tiny_sd import build_tiny_sdxl_pipeline

    save_single_file(build_tiny_sdxl_pipeline(), tmp_path / "checkpoints" / "xl.safetensors")
    engine = DiffusersEngine([tmp_path], device="cpu")
    assert {m.name: m.family for m in engine.models()} == {"xl": "sdxl"}
    spec = Request(model="xl", prompt="moss", width=64, height=64, steps=2, tile="xy")
    assert run(engine, spec).images[0].image.shape == (64, 64, 4)
    image = photo(96, 80)
    mask = np.zeros((80, 96), np.uint8)
    mask[30:50, 40:60] = 255
    out = run(engine, Request(kind="inpaint", model="xl", prompt="moss", steps=2),
              image=image, mask=mask).images[0].image  # fmt: skip
    outside = untouched(mask)
    assert np.array_equal(out[outside], image[outside])
    styled = run(engine, Request(kind="style", model="xl", prompt="moss", steps=2), image=image)
    assert styled.images[0].image.shape == image.shape
    assert engine.store.loads == 1  # txt2img, inpaint and img2img share one loaded checkpoint
