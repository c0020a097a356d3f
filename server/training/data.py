"""Procedural, captioned, seamlessly tileable textures: the built-in models' whole training set.

Every pattern is drawn on a torus (integer frequencies, wrapped distances), so each image tiles
without a seam. Images are rendered at twice the model's size and area-downsampled, which
anti-aliases edges. A sample is a (colour, pattern) combination: one named colour (the colour
and a lighter or darker shade of it) or a pair of named colours, plus a caption drawn from
several wordings. Some (colour, pattern) combinations are held out of training so the
benchmark can measure generalisation to combinations the models never saw.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from brushlink.server.engines.builtin.manifest import COLOUR_NAMES, COLOURS, SIZE

_PALETTE = np.array([COLOURS[c] for c in COLOUR_NAMES], dtype=np.uint8)

# pattern -> wordings used in captions (the first is the canonical one)
PATTERNS: dict[str, tuple[str, ...]] = {
    "checkerboard": ("checkerboard", "checker pattern", "checkered pattern"),
    "horizontal stripes": ("horizontal stripes", "horizontal lines", "striped horizontally"),
    "vertical stripes": ("vertical stripes", "vertical lines", "pinstripes"),
    "diagonal stripes": ("diagonal stripes", "diagonal lines", "slanted stripes"),
    "polka dots": ("polka dots", "dots", "spots"),
    "bricks": ("bricks", "brick wall", "brickwork"),
    "tiles": ("tiles", "square tiles", "tiled floor"),
    "hexagons": ("hexagons", "hexagonal tiles", "honeycomb"),
    "waves": ("waves", "wavy lines", "ripples"),
    "wood grain": ("wood grain", "wood", "wooden planks"),
    "marble": ("marble", "marble stone", "veined marble"),
    "clouds": ("clouds", "cloudy noise", "noise"),
    "gradient": ("gradient", "soft gradient", "smooth fade"),
}
PATTERN_NAMES = tuple(PATTERNS)

_TEMPLATES = (
    "{c} {p}",
    "a {c} {p} texture",
    "{c} {p} pattern",
    "seamless {c} {p}",
    "a tileable {p} in {c}",
    "{p}, {c}",
    "{c} {p} wallpaper",
    "a {p} pattern in {c}",
    "{c} {p} fabric",
    "a seamless texture of {c} {p}",
)


@dataclass(frozen=True)
class Sample:
    colours: tuple[str, ...]  # one name, or two for a pair
    pattern: str
    caption: str


# --------------------------------------------------------------------------- colour measurement


def _lab(rgb: np.ndarray) -> np.ndarray:
    flat = rgb.reshape(-1, 1, 3).astype(np.float32) / 255.0
    return cv2.cvtColor(flat, cv2.COLOR_RGB2LAB).reshape(-1, 3)


_PALETTE_LAB = _lab(_PALETTE)


def classify_pixels(rgb: np.ndarray) -> np.ndarray:
    """Index into COLOUR_NAMES of the nearest named colour (in Lab) for every pixel."""
    lab = _lab(rgb[..., :3])
    d = ((lab[:, None, :] - _PALETTE_LAB[None, :, :]) ** 2).sum(-1)
    return d.argmin(1)


def colour_shares(rgb: np.ndarray) -> dict[str, float]:
    """Share of pixels nearest to each named colour, largest first."""
    counts = np.bincount(classify_pixels(rgb), minlength=len(COLOUR_NAMES))
    shares = counts / counts.sum()
    order = np.argsort(-shares)
    return {COLOUR_NAMES[i]: float(shares[i]) for i in order if shares[i] > 0}


def dominant_colour(rgb: np.ndarray) -> str:
    return next(iter(colour_shares(rgb)))


def _shade(name: str, rng: random.Random) -> np.ndarray:
    """A lighter or darker version of a colour that still reads as the same named colour.

    The strongest contrast that keeps the name wins, so the pattern stays visible.
    """
    base = np.array(COLOURS[name], dtype=np.float32)
    strong = [base * 0.72, base + (255 - base) * 0.3]
    mild = [base * 0.85, base + (255 - base) * 0.15]
    rng.shuffle(strong)
    rng.shuffle(mild)
    index = COLOUR_NAMES.index(name)
    for shade in strong + mild:
        if classify_pixels(shade.astype(np.uint8)[None])[0] == index:
            return shade
    return base


def _jitter(rgb: np.ndarray, name: str, rng: random.Random) -> np.ndarray:
    """Vary a colour a little, never so far that it reads as another named colour."""
    index = COLOUR_NAMES.index(name)
    for _ in range(4):
        moved = np.clip(rgb + np.array([rng.uniform(-14, 14) for _ in range(3)]), 0, 255)
        if classify_pixels(moved.astype(np.uint8)[None])[0] == index:
            return moved
    return rgb


# --------------------------------------------------------------------------- patterns on a torus
# Each pattern maps (u, v) in [0, 1) x [0, 1) to a weight in [0, 1] for the second colour.


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    coords = (np.arange(n, dtype=np.float32) + 0.5) / n
    return np.meshgrid(coords, coords)  # u across, v down


def _smooth_noise(n: int, rng: np.random.Generator, max_freq: int, falloff: float) -> np.ndarray:
    """Periodic noise: a random sum of integer-frequency waves, normalised to [0, 1]."""
    u, v = _grid(n)
    out = np.zeros((n, n), dtype=np.float32)
    for fx in range(-max_freq, max_freq + 1):
        for fy in range(0, max_freq + 1):
            if fy == 0 and fx <= 0:
                continue
            amp = rng.normal() / (fx * fx + fy * fy) ** (falloff / 2)
            phase = rng.uniform(0, 2 * np.pi)
            out += amp * np.cos(2 * np.pi * (fx * u + fy * v) + phase)
    out -= out.min()
    return out / max(float(out.max()), 1e-6)


def _edge(x: np.ndarray, width: float) -> np.ndarray:
    return np.clip(0.5 + x / width, 0.0, 1.0)


def _checkerboard(n: int, r: np.random.Generator) -> np.ndarray:
    k = int(r.choice([2, 3, 4, 4]))  # pairs of squares across
    u, v = _grid(n)
    return ((np.floor(u * 2 * k) + np.floor(v * 2 * k)) % 2).astype(np.float32)


def _stripes(direction: str) -> Callable[[int, np.random.Generator], np.ndarray]:
    def draw(n: int, r: np.random.Generator) -> np.ndarray:
        k = int(r.integers(3, 7))
        u, v = _grid(n)
        t = {"h": v * k, "v": u * k, "d": (u + v * r.choice([-1, 1])) * k}[direction]
        duty = r.uniform(0.35, 0.6)
        return _edge(np.abs((t % 1.0) - 0.5) - (0.5 - duty / 2), 0.04).astype(np.float32)

    return draw


def _torus_dist(du: np.ndarray, dv: np.ndarray, stretch: float = 1.0) -> np.ndarray:
    du = np.abs(du) % 1.0
    dv = np.abs(dv) % 1.0
    return np.hypot(np.minimum(du, 1 - du), np.minimum(dv, 1 - dv) * stretch)


def _polka_dots(n: int, r: np.random.Generator) -> np.ndarray:
    k = int(r.integers(2, 5))
    u, v = _grid(n)
    cu, cv = (u * k) % 1.0 - 0.5, (v * k) % 1.0 - 0.5
    radius = r.uniform(0.2, 0.32)
    return _edge(radius - np.hypot(cu, cv), 0.06).astype(np.float32)


def _bricks(n: int, r: np.random.Generator) -> np.ndarray:
    rows = int(r.choice([4, 6, 8]))
    cols = rows // 2
    u, v = _grid(n)
    row = np.floor(v * rows)
    x = (u * cols + 0.5 * (row % 2)) % 1.0
    y = (v * rows) % 1.0
    mortar = 0.09
    gap = np.minimum(np.minimum(x, 1 - x) * rows / cols, np.minimum(y, 1 - y))
    return 1.0 - _edge(gap - mortar, 0.08).astype(np.float32)  # weight 1 = mortar


def _tiles(n: int, r: np.random.Generator) -> np.ndarray:
    k = int(r.choice([2, 3, 4]))
    u, v = _grid(n)
    x, y = (u * k) % 1.0, (v * k) % 1.0
    gap = np.minimum(np.minimum(x, 1 - x), np.minimum(y, 1 - y))
    return 1.0 - _edge(gap - r.uniform(0.05, 0.09), 0.05).astype(np.float32)


def _hexagons(n: int, r: np.random.Generator) -> np.ndarray:
    cols, rows = [(2, 2), (3, 4), (4, 4)][int(r.integers(0, 3))]  # even rows: periodic lattice
    # stretch v so the offset lattice is close to regular hexagons on the square tile
    stretch = 0.866 * rows / cols
    u, v = _grid(n)
    centres = [((i + 0.5 * (j % 2)) / cols, j / rows) for j in range(rows) for i in range(cols)]
    d = np.stack([_torus_dist(u - cu, v - cv, stretch) for cu, cv in centres])
    d.sort(axis=0)
    border = (d[1] - d[0]) * cols
    return 1.0 - _edge(border - 0.08, 0.08).astype(np.float32)


def _waves(n: int, r: np.random.Generator) -> np.ndarray:
    k = int(r.integers(3, 6))
    j = int(r.integers(1, 3))
    u, v = _grid(n)
    t = v * k + r.uniform(0.15, 0.3) * np.sin(2 * np.pi * j * u)
    return (0.5 + 0.5 * np.cos(2 * np.pi * t)).astype(np.float32) ** 1.5


def _wood_grain(n: int, r: np.random.Generator) -> np.ndarray:
    u, v = _grid(n)
    warp = _smooth_noise(n, r, 2, 1.5)
    k = int(r.integers(5, 9))
    t = v * k + 1.2 * warp + 0.15 * np.sin(2 * np.pi * u)
    rings = (t % 1.0) ** 3
    return np.clip(rings + 0.25 * _smooth_noise(n, r, 6, 0.8), 0, 1).astype(np.float32)


def _marble(n: int, r: np.random.Generator) -> np.ndarray:
    u, v = _grid(n)
    turb = _smooth_noise(n, r, 3, 1.8)
    t = u + v * r.choice([-1, 1]) + 1.5 * turb
    veins = np.abs(np.sin(np.pi * 2 * t))
    return ((1.0 - veins) ** 4).astype(np.float32)


def _clouds(n: int, r: np.random.Generator) -> np.ndarray:
    return _smooth_noise(n, r, 5, 1.6) ** 1.2


def _gradient(n: int, r: np.random.Generator) -> np.ndarray:
    u, v = _grid(n)
    t = {0: u, 1: v, 2: u + v}[int(r.integers(0, 3))]
    return (0.5 + 0.5 * np.cos(2 * np.pi * t)).astype(np.float32)


_DRAW: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "checkerboard": _checkerboard,
    "horizontal stripes": _stripes("h"),
    "vertical stripes": _stripes("v"),
    "diagonal stripes": _stripes("d"),
    "polka dots": _polka_dots,
    "bricks": _bricks,
    "tiles": _tiles,
    "hexagons": _hexagons,
    "waves": _waves,
    "wood grain": _wood_grain,
    "marble": _marble,
    "clouds": _clouds,
    "gradient": _gradient,
}


# --------------------------------------------------------------------------- rendering


def render(colours: tuple[str, ...], pattern: str, seed: int, size: int = SIZE) -> np.ndarray:
    """One seamless texture, size x size x 3 uint8."""
    py = random.Random(seed)
    rng = np.random.default_rng(seed)
    weight = _DRAW[pattern](size * 2, rng)
    # a random shift keeps the pattern's phase from being a give-away of the tile border
    weight = np.roll(
        weight, (int(rng.integers(0, size * 2)), int(rng.integers(0, size * 2))), (0, 1)
    )
    first = _jitter(np.array(COLOURS[colours[0]], dtype=np.float32), colours[0], py)
    if len(colours) == 1:
        second = _shade(colours[0], py)
    else:
        second = _jitter(np.array(COLOURS[colours[1]], dtype=np.float32), colours[1], py)
    image = first * (1 - weight[..., None]) + second * weight[..., None]
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def colour_phrase(colours: tuple[str, ...]) -> str:
    return colours[0] if len(colours) == 1 else f"{colours[0]} and {colours[1]}"


def caption(colours: tuple[str, ...], pattern: str, rng: random.Random | None = None) -> str:
    """A caption with random wording, or the canonical one when ``rng`` is None."""
    if rng is None:
        return f"{colour_phrase(colours)} {pattern}"
    template = rng.choice(_TEMPLATES)
    return template.format(c=colour_phrase(colours), p=rng.choice(PATTERNS[pattern]))


def held_out(seed: int = 0, per_pattern: int = 2) -> frozenset[tuple[str, str]]:
    """(colour, pattern) combinations kept out of training: each colour held out about twice."""
    rng = random.Random(seed)
    chosen: set[tuple[str, str]] = set()
    pool: list[str] = []
    for pattern in PATTERN_NAMES:
        picked: list[str] = []
        while len(picked) < per_pattern:
            if not pool:
                pool = list(COLOUR_NAMES)
                rng.shuffle(pool)
            colour = pool.pop()
            if colour not in picked:
                picked.append(colour)
        chosen.update((c, pattern) for c in picked)
    return frozenset(chosen)


def _is_held_out(colours: tuple[str, ...], pattern: str, hold: frozenset[tuple[str, str]]) -> bool:
    return any((c, pattern) in hold for c in colours)


def sample_specs(
    count: int, seed: int, *, train: bool = True, pair_share: float = 0.3
) -> list[Sample]:
    """Random samples outside the held-out set (train) or inside it (evaluation, single colours)."""
    rng = random.Random(seed)
    hold = held_out()
    out: list[Sample] = []
    while len(out) < count:
        pattern = rng.choice(PATTERN_NAMES)
        if train and rng.random() < pair_share:
            colours: tuple[str, ...] = tuple(rng.sample(COLOUR_NAMES, 2))
        else:
            colours = (rng.choice(COLOUR_NAMES),)
        if _is_held_out(colours, pattern, hold) == train:
            continue
        out.append(Sample(colours, pattern, caption(colours, pattern, rng)))
    return out


def make_dataset(count: int, seed: int, *, train: bool = True) -> tuple[np.ndarray, list[Sample]]:
    """``count`` images (N x SIZE x SIZE x 3 uint8) and their samples, all from ``seed``."""
    specs = sample_specs(count, seed, train=train)
    images = np.stack(
        [render(s.colours, s.pattern, seed * 1_000_003 + i) for i, s in enumerate(specs)]
    )
    return images, specs
