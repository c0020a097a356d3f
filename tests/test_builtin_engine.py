"""The builtin engine with the shipped weights: colours and patterns asked for, seamless tiles,
inpainting that leaves the rest alone, img2img strength, CLIP ranking, seeds, errors, cancel."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.engine_jobs import engine_job

from brushlink.plugin.errors import ImageMismatch, InvalidField, Unsupported
from brushlink.plugin.request import InpaintParams, Request
from brushlink.server.engines.base import EngineResult, JobCancelled, JobContext
from brushlink.server.engines.builtin.clip_model import CLIP_WEIGHTS, load_builtin_clip
from brushlink.server.engines.builtin.engine import BuiltinEngine, upscale, work_size
from brushlink.server.engines.builtin.sampling import colour_anchor
from brushlink.server.engines.builtin.unet import UNET_WEIGHTS
from brushlink.server.training import data

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def engine() -> BuiltinEngine:
    return BuiltinEngine("cpu")


def run(
    engine: BuiltinEngine, seed: int = 0, ctx: JobContext | None = None, **fields
) -> EngineResult:
    job = engine_job(engine, Request(model="builtin", **fields), seed=seed)
    return engine.run(job, ctx or JobContext())


def run_with(
    engine: BuiltinEngine, seed: int = 0, *, image=None, mask=None, **fields
) -> EngineResult:
    request = Request(model="builtin", **fields)
    return engine.run(engine_job(engine, request, seed=seed, image=image, mask=mask), JobContext())


def shares(image: np.ndarray) -> dict[str, float]:
    return data.colour_shares(image[..., :3])


def test_weights_ship_inside_the_package_small_and_as_safetensors(engine) -> None:
    assert CLIP_WEIGHTS.suffix == UNET_WEIGHTS.suffix == ".safetensors"
    assert CLIP_WEIGHTS.is_file() and UNET_WEIGHTS.is_file()
    assert CLIP_WEIGHTS.stat().st_size + UNET_WEIGHTS.stat().st_size <= 30 * 2**20
    [info] = engine.models()
    assert info.name == "builtin" and info.engine == "builtin"
    assert set(info.kinds) == {"generate", "inpaint", "style"}
    assert info.defaults["width"] == info.defaults["height"] == 512
    # the constants-only manifest names the schedulers sampling really has
    from brushlink.server.engines.builtin import manifest, sampling

    assert tuple(sampling.SCHEDULERS) == manifest.SCHEDULER_NAMES
    assert info.defaults["scheduler"] in manifest.SCHEDULER_NAMES
    assert info.defaults["pattern_guidance"] == manifest.DEFAULT_PATTERN_GUIDANCE > 0


@pytest.mark.parametrize("colour", ["red", "blue", "green", "yellow"])
def test_the_colour_asked_for_dominates_the_pixels(engine, colour: str) -> None:
    result = run(engine, seed=11, kind="generate", prompt=f"{colour} polka dots", candidates=2)
    assert len(result.images) == 2
    for out in result.images:
        assert out.image.shape == (512, 512, 4) and out.image.dtype == np.uint8
        assert data.dominant_colour(out.image[..., :3]) == colour, shares(out.image)


def test_a_colour_pair_shows_both_colours(engine) -> None:
    result = run(
        engine, seed=5, kind="generate", prompt="red and white checkerboard", keep=1, candidates=4
    )
    top = list(shares(result.images[0].image))[:3]
    assert "red" in top and "white" in top


def test_the_same_seed_gives_the_same_image_and_other_seeds_differ(engine) -> None:
    a = run(engine, seed=42, kind="generate", prompt="green waves", width=64, height=64)
    b = run(engine, seed=42, kind="generate", prompt="green waves", width=64, height=64)
    c = run(engine, seed=43, kind="generate", prompt="green waves", width=64, height=64)
    assert np.array_equal(a.images[0].image, b.images[0].image)
    assert a.images[0].seed == 42 and c.images[0].seed == 43
    assert np.abs(a.images[0].image.astype(int) - c.images[0].image).mean() > 2


def _seam_and_interior(image: np.ndarray, axis: int) -> tuple[float, float]:
    img = image[..., :3].astype(np.float32)
    if axis == 0:
        img = img.transpose(1, 0, 2)
    seam = float(np.abs(img[:, 0] - img[:, -1]).mean())
    # the largest step between two neighbouring columns inside the image
    interior = float(np.abs(np.diff(img, axis=1)).mean(axis=(0, 2)).max())
    return seam, interior


@pytest.mark.parametrize(
    "prompt", ["blue bricks", "black and white checkerboard", "brown wood grain"]
)
def test_tile_xy_gives_edges_that_continue_across_the_wrap(engine, prompt: str) -> None:
    for size in (32, 512):
        result = run(
            engine, seed=3, kind="generate", prompt=prompt, tile="xy", width=size, height=size
        )
        image = result.images[0].image
        for axis in (0, 1):
            seam, interior = _seam_and_interior(image, axis)
            # the last column continues into the first like any column into the next
            assert seam <= 1.25 * interior + 1.0, (size, axis, seam, interior)


def test_tile_x_wraps_only_across_x(engine) -> None:
    result = run(
        engine,
        seed=8,
        kind="generate",
        prompt="teal vertical stripes",
        tile="x",
        width=32,
        height=32,
    )
    seam, interior = _seam_and_interior(result.images[0].image, 1)
    assert seam <= 1.25 * interior + 1.0


def test_upscaling_a_seamless_tile_keeps_it_seamless_at_any_size() -> None:
    tile = data.render(("red", "white"), "checkerboard", 2)
    for width, height in ((512, 512), (300, 200)):
        big = upscale(tile, width, height, "xy")
        assert big.shape == (height, width, 3)
        for axis in (0, 1):
            seam, interior = _seam_and_interior(big, axis)
            assert seam <= 1.25 * interior + 1.0
    # control: random pixels wrap only when the upscale is told to wrap
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    seam, interior = _seam_and_interior(upscale(noise, 512, 512, "xy"), 1)
    assert seam <= 1.25 * interior + 1.0
    seam, interior = _seam_and_interior(upscale(noise, 512, 512, "none"), 1)
    assert seam > 1.25 * interior + 1.0
    assert np.array_equal(upscale(tile, 32, 32, "xy"), tile)  # identity at scale 1
    assert work_size(512, 512) == (32, 32) and work_size(1024, 512)[0] > work_size(1024, 512)[1]


def test_inpaint_leaves_every_pixel_outside_the_mask_unchanged(engine, astronaut) -> None:
    image = np.ascontiguousarray(astronaut[100:356, 100:356])
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[80:176, 60:200] = 255
    mask[76:80, 60:200] = 128  # a soft edge
    result = run_with(
        engine,
        seed=1,
        kind="inpaint",
        prompt="blue polka dots",
        candidates=2,
        image=image,
        mask=mask,
        inpaint=InpaintParams(grow=0, feather=0),  # exactly the mask, no wider
    )
    assert len(result.images) == 2
    for out in result.images:
        assert out.image.shape == image.shape
        assert np.array_equal(out.image[mask == 0], image[mask == 0])
        inside = out.image[mask == 255][:, :3]
        assert data.dominant_colour(inside[None]) == "blue"
        assert np.abs(inside.astype(int) - image[mask == 255][:, :3]).mean() > 10


def test_inpaint_with_an_empty_mask_returns_the_image(engine, coffee) -> None:
    mask = np.zeros(coffee.shape[:2], np.uint8)
    result = run_with(engine, kind="inpaint", prompt="red bricks", image=coffee, mask=mask)
    assert np.array_equal(result.images[0].image, coffee)


def test_style_strength_moves_the_image_toward_the_prompt(engine, chelsea) -> None:
    image = chelsea.copy()
    image[:20, :20, 3] = 0  # transparency is kept
    gentle = run_with(
        engine, seed=2, kind="style", prompt="purple marble", strength=0.3, image=image
    )
    strong = run_with(
        engine, seed=2, kind="style", prompt="purple marble", strength=0.9, image=image
    )
    for out in (gentle, strong):
        assert out.images[0].image.shape == image.shape
        assert np.array_equal(out.images[0].image[..., 3], image[..., 3])

    def distance(out: EngineResult) -> float:
        return float(np.abs(out.images[0].image[..., :3].astype(int) - image[..., :3]).mean())

    assert distance(gentle) < distance(strong)
    assert data.dominant_colour(strong.images[0].image[..., :3]) == "purple"


def test_candidates_are_ranked_by_the_clip_best_first(engine) -> None:
    result = run(engine, seed=9, kind="generate", prompt="orange hexagons", candidates=4, keep=3)
    assert len(result.images) == 3
    scores = [out.score for out in result.images]
    assert scores == sorted(scores, reverse=True)
    ranking = result.metadata["ranking"]
    assert [r["seed"] for r in ranking] == [out.seed for out in result.images]
    assert {out.seed for out in result.images} <= {9, 10, 11, 12}


def test_the_clip_puts_the_matching_texture_first() -> None:
    clip = load_builtin_clip("cpu")
    red = data.render(("red",), "polka dots", 1)
    blue = data.render(("blue",), "polka dots", 1)
    rgba = [np.dstack([im, np.full(im.shape[:2], 255, np.uint8)]) for im in (blue, red)]
    scores = clip.score("red polka dots", rgba)
    assert scores[1] > scores[0]
    # and the pattern, colour fixed: stripes beat dots for a stripes prompt, at any image size
    stripes = upscale(data.render(("green",), "horizontal stripes", 4), 300, 300)
    dots = upscale(data.render(("green",), "polka dots", 4), 300, 300)
    scores = clip.score("green horizontal stripes", [dots, stripes])
    assert scores[1] > scores[0]
    assert clip.score("anything", []) == []


def test_progress_every_step_and_previews(engine) -> None:
    steps: list[tuple[int, int]] = []
    previews: list[np.ndarray] = []
    ctx = JobContext(
        on_progress=lambda s, t: steps.append((s, t)),
        on_preview=lambda im, s, t: previews.append(im),
    )
    run(engine, ctx=ctx, kind="generate", prompt="pink clouds", steps=9)
    assert steps[0] == (0, 9) and steps[-1] == (9, 9)
    assert [s for s, _ in steps] == list(range(10))
    assert previews and previews[0].shape[2] == 4


def test_cancel_stops_the_job(engine) -> None:
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(JobCancelled):
        run(engine, ctx=JobContext(is_cancelled=cancelled), kind="generate", prompt="red tiles")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"kind": "generate", "candidates": 0}, InvalidField),
        ({"kind": "generate", "candidates": 2, "keep": 3}, InvalidField),
        ({"kind": "generate", "tile": "z"}, InvalidField),
        ({"kind": "generate", "strength": 0.0}, InvalidField),
        ({"kind": "generate", "scheduler": "nope"}, InvalidField),
        ({"kind": "generate", "width": 4}, InvalidField),
        ({"kind": "generate", "options": {"pattern_guidance": "lots"}}, InvalidField),
        ({"kind": "generate", "options": {"pattern_guidance": 31}}, InvalidField),
        ({"kind": "generate", "options": {"pattern_guidance": True}}, InvalidField),
        ({"kind": "inpaint"}, InvalidField),
        ({"kind": "style"}, InvalidField),
    ],
)
def test_bad_requests_fail_with_a_clear_error(engine, fields: dict, error: type) -> None:
    with pytest.raises(error) as info:
        engine_job(engine, Request(prompt="red", model="builtin", **fields))
    assert len(str(info.value)) > 10


def test_the_builtin_model_does_not_rank(engine, coffee) -> None:
    with pytest.raises(Unsupported, match="cannot do `rank`"):
        engine_job(engine, Request(kind="rank", prompt="red", model="builtin"), inputs=[coffee])


def test_a_mask_of_another_size_is_refused(engine, coffee) -> None:
    with pytest.raises(ImageMismatch):
        run_with(
            engine, kind="inpaint", prompt="red", image=coffee, mask=np.zeros((8, 8), np.uint8)
        )


@pytest.mark.parametrize("direction", ["vertical", "horizontal"])
def test_stripes_run_the_way_the_prompt_says(engine, direction: str) -> None:
    # measured on pixels, not by the CLIP: vertical stripes change across x, not down y
    result = run(
        engine,
        seed=5,
        kind="generate",
        prompt=f"black and white {direction} stripes",
        candidates=2,
        width=32,
        height=32,
    )
    for out in result.images:
        grey = out.image[..., :3].astype(np.float32).mean(axis=2)
        across_x = float(np.abs(np.diff(grey, axis=1)).mean())
        down_y = float(np.abs(np.diff(grey, axis=0)).mean())
        along, across = (down_y, across_x) if direction == "vertical" else (across_x, down_y)
        assert across > 2 * along, (direction, across_x, down_y)


@pytest.mark.parametrize("prompt", ["blue bricks", "green hexagons", "orange tiles"])
def test_pattern_guidance_strengthens_the_pattern_and_keeps_the_colour(engine, prompt) -> None:
    # measured on pixels: the colours-alone branch pictures the colour as a plain field, so
    # pushing away from it raises the contrast between the pattern's tones
    contrasts = []
    for push in (0.0, 1.0, 2.0):
        result = run(
            engine,
            seed=3,
            kind="generate",
            prompt=prompt,
            candidates=4,
            width=32,
            height=32,
            options={"pattern_guidance": push},
        )
        images = [out.image[..., :3] for out in result.images]
        assert [data.dominant_colour(im) for im in images] == [prompt.split()[0]] * 4
        contrasts.append(np.mean([im.astype(np.float32).mean(axis=2).std() for im in images]))
    assert contrasts[0] < contrasts[1] < contrasts[2], contrasts


def test_pattern_guidance_needs_a_colour_in_the_prompt(engine) -> None:
    assert colour_anchor("Blue and WHITE checkerboard, blue") == "a blue and white texture"
    assert colour_anchor("a brick wall") is None
    # with no colour named there is no pattern to separate: the option changes no pixel
    images = [
        run(
            engine,
            seed=2,
            kind="generate",
            prompt="a brick wall",
            width=32,
            height=32,
            options={"pattern_guidance": push},
        )
        .images[0]
        .image
        for push in (0.0, 3.0)
    ]
    assert np.array_equal(images[0], images[1])
