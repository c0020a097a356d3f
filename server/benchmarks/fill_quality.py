"""Side by side: every weight-free fill in ``engines/fill/methods.py`` on real photos and
textures from scikit-image at about 1 megapixel, with object, square, edge-strip and scribble
holes, scored by the measures below and timed.

    python -m brushlink.server.benchmarks.fill_quality [--save DIR] [--methods a,b] [--cases x,y]

Regions (distances from ``cv2.distanceTransform``): *inner* is the hole more than 2 px from the
known pixels; *border* is the 2 px either side of the hole's edge; *ring* is the known pixels
2 to ``r`` px from the hole, ``r = clip(sqrt(hole area) / 4, 8, 40)``: the surroundings a
fill should look like.

(a) ``detail``: RMS of the Laplacian of the grey image (after a 1 px Gaussian, so the 2-6 px
    detail of an upscaled photo counts) in *inner* / the same in *ring*. 1.0 is ideal; near 0 is
    a blur or a flat patch; well above 1 is noise or harsh copied edges.
(b) ``frame``: mean gradient magnitude (Sobel of the Lab image after a 1.5 px Gaussian, so
    texture counts less than a colour step) in *border* / the same in *ring*. Near 1.0 or
    below: the edge of the hole is no busier than the surroundings; above about 1.3 a step or
    halo along the edge shows as a frame.
(c) ``dE``: CIE76 distance between the mean Lab colour of *inner* and of *ring*. 0 is ideal;
    a fill that continues its surroundings stays within a few units; a ring of mixed
    colours (folds, shadows) moves it to 5-9 for a good fill; a colour patch is over 10.
(d) ``block``: straight copied-patch seams. A seam is a row (column) of pixel differences
    stronger than the rows 2 px above and below it and running straight for a while: per
    pixel, ``max(0, A[y] - (A[y-2] + A[y+2]) / 2)`` with ``A = |g[y+1] - g[y]|``, averaged over
    9 px along the row. Its 98th percentile over the hole, divided by the mean of ``A`` there,
    is the hole's straight-line score; the same over the known pixels around the hole is the
    reference (natural straight edges such as mortar lines count in both). ``block`` is the
    hole's score / the reference, the largest over both directions and over the image at full,
    half and quarter size (seams of a fill made at a reduced size are soft). 1.0 is ideal;
    above about 1.5 a mosaic of patches shows.
(e) ``s``: wall seconds of the fill call (one process; the machine has 2 cores).

A fill fails a case when detail is outside [0.5, 2], frame > 1.3, dE > 10, block > 1.5 or it
takes more than 2 s; the summary gives the median of each score per method and the number of
cases failed. Thresholds come from the runs: PatchMatch on the textures, which looks right,
scores detail 0.76-0.88, frame 0.43-0.85, dE under 3, block about 1.0; the failures users
report score outside them: smooth fills detail 0.03-0.2 on texture, Telea's and FSR's streaks
and grids block 2-13, shift-map's mosaic at a hole's edge frame 1.2-3.9, the unfilled rows
shift-map and FSR leave along the image's bottom edge dE 20-120; a texture brightened by 25
grey levels inside the hole scores dE about 10 and frame 1.1-2.0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..engines.fill.methods import DEFAULT_METHOD, METHODS, hole_box

TARGET_PIXELS = 1_000_000
DETAIL_BAND = (0.5, 2.0)  # detail inside vs the ring: below is blur, above is noise
LIMITS = {"frame": 1.3, "dE": 10.0, "block": 1.5, "s": 2.0}


# --- scores ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Regions:
    inner: np.ndarray
    border: np.ndarray
    ring: np.ndarray
    around: np.ndarray  # known pixels up to 2 r from the hole: the reference for straight lines


def regions(hole: np.ndarray) -> Regions:
    h8 = hole.astype(np.uint8)
    d_in = cv2.distanceTransform(h8, cv2.DIST_L2, 3)
    d_out = cv2.distanceTransform(1 - h8, cv2.DIST_L2, 3)
    r = float(np.clip(np.sqrt(hole.sum()) / 4, 8, 40))
    known = ~hole
    return Regions(
        inner=hole & (d_in > 2),
        border=(hole & (d_in <= 2)) | (known & (d_out <= 2)),
        ring=known & (d_out > 2) & (d_out <= r),
        around=known & (d_out > 2) & (d_out <= 2 * r),
    )


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def _mean(values: np.ndarray, where: np.ndarray) -> float:
    return float(values[where].mean()) if where.any() else float("nan")


def detail_ratio(rgb: np.ndarray, hole: np.ndarray) -> float:
    """(a) RMS Laplacian inside the hole / in the ring around it."""
    reg = regions(hole)
    lap = cv2.Laplacian(cv2.GaussianBlur(_grey(rgb), (0, 0), 1.0), cv2.CV_32F) ** 2
    return float(np.sqrt(_mean(lap, reg.inner) / max(_mean(lap, reg.ring), 1e-9)))


def frame_ratio(rgb: np.ndarray, hole: np.ndarray) -> float:
    """(b) mean Lab gradient along the hole's edge / in the ring."""
    reg = regions(hole)
    lab = cv2.GaussianBlur(_lab(rgb), (0, 0), 1.5)
    gx, gy = cv2.Sobel(lab, cv2.CV_32F, 1, 0), cv2.Sobel(lab, cv2.CV_32F, 0, 1)
    mag = np.sqrt((gx * gx + gy * gy).sum(axis=2))
    return _mean(mag, reg.border) / max(_mean(mag, reg.ring), 1e-9)


def colour_delta(rgb: np.ndarray, hole: np.ndarray) -> float:
    """(c) CIE76 distance of the mean Lab colour inside the hole from the ring's."""
    reg = regions(hole)
    lab = _lab(rgb)
    return float(np.linalg.norm(lab[reg.inner].mean(axis=0) - lab[reg.ring].mean(axis=0)))


def _line_score(grey: np.ndarray, where: np.ndarray) -> float:
    """98th percentile of straight horizontal-seam strength over ``where`` / mean |dy| there."""
    a = np.abs(np.diff(grey, axis=0))
    pad = np.pad(a, ((2, 2), (0, 0)), mode="edge")
    contrast = np.maximum(0.0, a - 0.5 * (pad[:-4] + pad[4:]))
    run = cv2.blur(contrast, (9, 1))
    # every pixel the score at (y, x) looks at lies in ``where``
    ok = cv2.erode(where.astype(np.uint8), np.ones((7, 11), np.uint8))[:-1] > 0
    if ok.sum() < 50:
        return float("nan")
    return float(np.percentile(run[ok], 98) / max(a[ok].mean(), 1e-6))


def blockiness(rgb: np.ndarray, hole: np.ndarray) -> float:
    """(d) straight-seam score inside the hole / around it; max over directions and scales."""
    reg = regions(hole)
    grey, inner, around = _grey(rgb), reg.inner, reg.around
    best = float("nan")
    for level in range(3):
        for g, i, o in ((grey, inner, around), (grey.T, inner.T, around.T)):
            ratio = _line_score(g, i) / _line_score(g, o)
            if np.isfinite(ratio):
                best = ratio if not np.isfinite(best) else max(best, ratio)
        if level < 2:
            size = (grey.shape[1] // 2, grey.shape[0] // 2)
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
            inner = cv2.resize(inner.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
            around = cv2.resize(around.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    return best if np.isfinite(best) else 1.0


def scores(rgb: np.ndarray, hole: np.ndarray) -> dict[str, float]:
    return {
        "detail": detail_ratio(rgb, hole),
        "frame": frame_ratio(rgb, hole),
        "dE": colour_delta(rgb, hole),
        "block": blockiness(rgb, hole),
    }


def failures(row: dict[str, float]) -> list[str]:
    lo, hi = DETAIL_BAND
    bad = [] if lo <= row["detail"] <= hi else ["detail"]
    bad += [k for k in ("frame", "dE", "block", "s") if row[k] > LIMITS[k]]
    return bad


# --- cases ----------------------------------------------------------------------------------


def at_megapixel(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """The image scaled (cubic) to about 1 megapixel, grey ones as RGB; and the scale."""
    if rgb.ndim == 2:
        rgb = np.dstack([rgb] * 3)
    h, w = rgb.shape[:2]
    s = (TARGET_PIXELS / (h * w)) ** 0.5
    size = (round(w * s), round(h * s))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC), s


def _pts(points: Sequence[tuple[float, float]], s: float) -> np.ndarray:
    return np.array([[round(x * s), round(y * s)] for x, y in points], np.int32)


def scribble(shape: tuple[int, int], seed: int, width: int) -> np.ndarray:
    """A thin irregular stroke: a smoothed random walk across the middle of the image."""
    h, w = shape
    rng = np.random.default_rng(seed)
    walk = rng.normal(0, 1, (40, 2)).cumsum(axis=0).astype(np.float32)
    steps = np.asarray(cv2.GaussianBlur(walk, (1, 9), 3), np.float32).reshape(-1, 2)
    steps = (steps - steps.min(axis=0)) / np.maximum(np.ptp(steps, axis=0), 1e-6)
    pts = np.stack([w * (0.2 + 0.6 * steps[:, 0]), h * (0.2 + 0.6 * steps[:, 1])], axis=1)
    mask = np.zeros(shape, np.uint8)
    cv2.polylines(mask, [pts.astype(np.int32)], False, 1, width, cv2.LINE_8)
    return mask > 0


def make_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, image, hole) for every case, at about 1 megapixel."""
    from skimage import data

    def blank(image: np.ndarray) -> np.ndarray:
        return np.zeros(image.shape[:2], np.uint8)

    coffee, s = at_megapixel(data.coffee())
    spoon = blank(coffee)  # the spoon lying on the saucer, against the cup
    top, neck, bowl = _pts([(411, 70), (374, 242), (366, 284)], s)
    cv2.line(spoon, top, neck, 1, round(24 * s))
    cv2.ellipse(spoon, bowl, (round(46 * s), round(48 * s)), 0, 0, 360, 1, -1)
    coffee_edge = blank(coffee)
    coffee_edge[:, -110:] = 1  # the wooden table along the right edge
    astro, s = at_megapixel(data.astronaut())
    badge = blank(astro)  # the round mission badge on the orange suit
    cv2.ellipse(badge, _pts([(170, 385)], s)[0], (round(54 * s), round(51 * s)), 0, 0, 360, 1, -1)
    rocket, s = at_megapixel(data.rocket())
    tower = blank(rocket)  # the lattice tower right of the rocket, against the evening sky
    outline = [(435, 115), (456, 115), (458, 185), (466, 185), (490, 427), (428, 427)]
    cv2.fillPoly(tower, [_pts(outline, s)], 1)
    cat = at_megapixel(data.chelsea())[0]
    textures = {name: at_megapixel(getattr(data, name)())[0] for name in ("brick", "grass")}
    squares = {}
    for name, tex in textures.items():
        squares[name] = blank(tex)
        q = tex.shape[0] // 4
        squares[name][q * 3 // 2 : q * 5 // 2, q * 3 // 2 : q * 5 // 2] = 1
    gravel = at_megapixel(data.gravel())[0]
    gravel_edge = blank(gravel)
    gravel_edge[-130:, :] = 1
    cases = [
        ("coffee spoon", coffee, spoon),
        ("coffee edge strip", coffee, coffee_edge),
        ("astronaut badge", astro, badge),
        ("rocket tower", rocket, tower),
        ("chelsea scribble", cat, scribble(cat.shape[:2], 3, 12)),
        ("brick square", textures["brick"], squares["brick"]),
        ("grass square", textures["grass"], squares["grass"]),
        ("gravel edge strip", gravel, gravel_edge),
        ("grass scribble", textures["grass"], scribble(textures["grass"].shape[:2], 7, 10)),
    ]
    return [(name, image, mask > 0) for name, image, mask in cases]


# --- run ------------------------------------------------------------------------------------


def run_case(
    fill: Callable[..., np.ndarray], image: np.ndarray, hole: np.ndarray
) -> tuple[dict[str, float], np.ndarray]:
    start = time.perf_counter()
    out = fill(image, hole, seed=0)
    seconds = time.perf_counter() - start
    if not np.array_equal(out[~hole], image[~hole]):
        raise AssertionError("the fill changed pixels outside the hole")
    return {**scores(out, hole), "s": seconds}, out


def _row(name: str, row: dict[str, float], extra: str) -> str:
    return (
        f"  {name:24s} {row['detail']:7.2f} {row['frame']:7.2f} {row['dE']:7.2f} "
        f"{row['block']:7.2f} {row['s']:7.2f}  {extra}"
    )


HEADER = f"  {'method':24s} {'detail':>7s} {'frame':>7s} {'dE':>7s} {'block':>7s} {'s':>7s}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fill_quality", description=__doc__.splitlines()[0])
    parser.add_argument("--save", help="write each case's fills side by side as PNGs here")
    parser.add_argument("--methods", help="comma-separated subset of: " + ", ".join(METHODS))
    parser.add_argument("--cases", help="comma-separated substrings of case names")
    args = parser.parse_args(argv)
    try:
        cases = make_cases()
    except ImportError:
        print("This benchmark uses scikit-image's sample photos: pip install 'brushlink[dev]'.")
        return 2
    names = args.methods.split(",") if args.methods else list(METHODS)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        print(f"unknown or unavailable methods: {', '.join(unknown)}")
        return 2
    if args.cases:
        cases = [c for c in cases if any(k in c[0] for k in args.cases.split(","))]
    print(f"{len(names)} methods, {len(cases)} cases, default: {DEFAULT_METHOD}")
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    results: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for case, image, hole in cases:
        h, w = hole.shape
        print(f"\n{case}: {w}x{h}, hole {hole.sum()} px ({100 * hole.mean():.1f}%)")
        print(HEADER)
        tiles = [image]
        for name in names:
            row, out = run_case(METHODS[name], image, hole)
            results[name].append(row)
            tiles.append(out)
            print(_row(name, row, ",".join(failures(row))))
        if args.save:
            _save(args.save, case, image, hole, tiles, names)
    print("\nsummary: median over the cases; fails = cases outside the limits")
    print(HEADER + f" {'max s':>7s} {'fails':>6s}")
    for name in names:
        rows = results[name]
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        fails = sum(bool(failures(r)) for r in rows)
        print(_row(name, med, f"{max(r['s'] for r in rows):6.2f} {fails:6d}/{len(rows)}"))
    return 0


def _save(
    folder: str,
    case: str,
    image: np.ndarray,
    hole: np.ndarray,
    tiles: list[np.ndarray],
    names: list[str],
) -> None:
    """One PNG per case: the box around the hole at full size, input (hole greyed) then each
    fill, labelled."""
    os.makedirs(folder, exist_ok=True)
    y0, y1, x0, x1 = hole_box(hole)
    shown = image.copy()
    shown[hole] = shown[hole] // 3 + 160
    labelled = []
    for tile, label in zip([shown, *tiles[1:]], ["input", *names], strict=True):
        crop = np.ascontiguousarray(tile[y0:y1, x0:x1])
        f = min(1.0, 480 / max(crop.shape[:2]))
        crop = cv2.resize(crop, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        cv2.putText(crop, label, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 2)
        labelled.append(crop)
    cols = 4
    while len(labelled) % cols:
        labelled.append(np.zeros_like(labelled[0]))
    grid = np.vstack([np.hstack(labelled[i : i + cols]) for i in range(0, len(labelled), cols)])
    path = os.path.join(folder, case.replace(" ", "_") + ".png")
    cv2.imwrite(path, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    raise SystemExit(main())
