"""The built-in model's procedural data: seamless, the colours its captions name, held-out
combinations kept out of training, reproducible from a seed."""

from __future__ import annotations

import numpy as np
import pytest

from brushlink.server.training import data


def _column_steps(image: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean colour difference across the wrap-around seam, and between interior neighbours."""
    img = image.astype(np.float32)
    seam = float(np.abs(img[:, 0] - img[:, -1]).mean())
    interior = np.abs(np.diff(img, axis=1)).mean(axis=(0, 2))
    return seam, interior


@pytest.mark.parametrize("pattern", data.PATTERN_NAMES)
def test_every_pattern_tiles_without_a_seam(pattern: str) -> None:
    for seed in range(3):
        image = data.render(("red", "white"), pattern, seed)
        for view in (image, image.transpose(1, 0, 2)):  # left/right, then top/bottom
            seam, interior = _column_steps(view)
            # the seam is just another pair of neighbours: no jump beyond what the interior has
            assert seam <= 1.25 * interior.max() + 2.0
    # a texture that does not wrap (a ramp) fails the same check
    ramp = np.repeat(np.linspace(0, 255, 32, dtype=np.float32)[None, :, None], 32, 0)
    seam, interior = _column_steps(np.repeat(ramp, 3, 2))
    assert seam > 1.25 * interior.max() + 2.0


@pytest.mark.parametrize("pattern", data.PATTERN_NAMES)
def test_single_colour_textures_are_dominated_by_their_colour(pattern: str) -> None:
    for k, colour in enumerate(data.COLOUR_NAMES):
        image = data.render((colour,), pattern, 50 + k)
        assert data.dominant_colour(image) == colour
        assert data.colour_shares(image)[colour] > 0.95


def test_pair_textures_show_both_colours() -> None:
    image = data.render(("blue", "yellow"), "checkerboard", 3)
    shares = data.colour_shares(image)
    assert shares.get("blue", 0) > 0.2 and shares.get("yellow", 0) > 0.2
    assert set(list(shares)[:3]) >= {"blue", "yellow"}


def test_patterns_differ_from_each_other() -> None:
    renders = {
        p: data.render(("black", "white"), p, 7).astype(np.float32) for p in data.PATTERN_NAMES
    }
    for a in data.PATTERN_NAMES:
        for b in data.PATTERN_NAMES:
            if a < b:
                assert np.abs(renders[a] - renders[b]).mean() > 10, (a, b)


def test_stripes_run_in_their_direction() -> None:
    horizontal = data.render(("black", "white"), "horizontal stripes", 1).astype(np.float32)
    vertical = data.render(("black", "white"), "vertical stripes", 1).astype(np.float32)
    # horizontal stripes: rows are flat, columns change; vertical the other way round
    assert (
        np.abs(np.diff(horizontal, axis=1)).mean() < np.abs(np.diff(horizontal, axis=0)).mean() / 4
    )
    assert np.abs(np.diff(vertical, axis=0)).mean() < np.abs(np.diff(vertical, axis=1)).mean() / 4


def test_held_out_combinations_never_reach_training() -> None:
    hold = data.held_out()
    assert len(hold) == 2 * len(data.PATTERN_NAMES)
    assert {c for c, _ in hold} == set(data.COLOUR_NAMES)  # every colour is tested somewhere
    for sample in data.sample_specs(3000, seed=5):
        assert not any((c, sample.pattern) in hold for c in sample.colours)
    for sample in data.sample_specs(200, seed=5, train=False):
        assert (sample.colours[0], sample.pattern) in hold


def test_captions_name_the_colour_and_a_wording_of_the_pattern() -> None:
    for sample in data.sample_specs(300, seed=9):
        assert all(c in sample.caption for c in sample.colours)
        assert any(w in sample.caption for w in data.PATTERNS[sample.pattern])
    wordings = {s.caption.replace(s.colours[0], "C") for s in data.sample_specs(300, seed=9)}
    assert len(wordings) > 50


def test_the_dataset_is_reproducible_from_its_seed() -> None:
    a_images, a_specs = data.make_dataset(40, seed=3)
    b_images, b_specs = data.make_dataset(40, seed=3)
    c_images, _ = data.make_dataset(40, seed=4)
    assert a_specs == b_specs
    assert np.array_equal(a_images, b_images)
    assert not np.array_equal(a_images, c_images)
    assert a_images.shape == (40, data.SIZE, data.SIZE, 3) and a_images.dtype == np.uint8
