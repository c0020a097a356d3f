"""Weight-free content-aware fill candidates, each a plain function with one signature:

    fill(rgb: H x W x 3 uint8, hole: H x W bool, *, seed: int = 0) -> H x W x 3 uint8

Pixels outside ``hole`` come back exactly unchanged. Every method works on a box around the
hole (the hole plus context on each side) and shrinks that box when it is over the method's
pixel budget, fills it, scales the fill back up and pastes it into the hole only, so a
1-megapixel photo stays within about 2 s of one CPU core.

Candidates (``server/benchmarks/fill_quality.py`` measures them side by side):

- ``telea``, ``navier-stokes``: OpenCV's diffusion inpainting; smooth, no texture.
- ``biharmonic``: scikit-image's biharmonic inpainting; the smoothest baseline, no texture.
- ``shiftmap``, ``fsr-fast``, ``fsr-best``: OpenCV contrib xphoto (what the fill engine used).
- ``patchmatch``: PyPatchMatch (PatchMatch with EM voting, as in InvokeAI's infill).
- ``resynth``: GIMP's Resynthesizer (``heal selection``: texture synthesis from the context).
- ``patchmatch-blend``, ``resynth-blend``, ``shiftmap-blend``: the patch fill, then a
  gradient-domain correction: the low-frequency colour step along the hole's edge is measured
  and spread over the hole as a membrane (harmonic) correction, so the fill keeps its texture
  and meets the surroundings without a frame or a colour patch.
- ``patchmatch-lowres-blend``: ``patchmatch-blend`` at a quarter of its pixel budgets (about
  half the size): faster, larger structures per patch, less fine detail.

``METHODS`` holds those whose library loads here; ``DEFAULT_METHOD`` is the best one by the
benchmark: ``patchmatch-blend``. Over 9 cases at 1 megapixel (photos: object on a surface,
edge strip, badge, tower against the sky, scribble; textures: squares, edge strip, scribble)
its medians are detail 0.76, frame 0.74, dE 1.8, block 0.99, 0.72 s (max 1.5 s); it fails 2
of 9 cases (a smooth fabric fill, a tower over the night sky) against 4 for Resynthesizer, 5-6
for shift-map and 9 for Telea, Navier-Stokes, biharmonic and FSR. Shift-map and FSR also leave
the bottom rows of a hole on the image's lower edge unfilled at some sizes (blue or green
stripes); Resynthesizer breaks regular structure (brick mortar) into a tangle.

The libraries: PyPatchMatch's manylinux wheel ships ``libpatchmatch.so`` with OpenCV linked
in statically (no build step, no network, import 0.13 s, no warm-up on the first call);
resynthesizer's wheel ships a prebuilt ``libresynthesizer.so``. Neither needs a system package.
PyPatchMatch's seed is process-wide, so concurrent fills in threads are not reproducible.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

Fill = Callable[..., np.ndarray]
Core = Callable[[np.ndarray, np.ndarray, int], np.ndarray]

MIN_MARGIN = 24  # px of context around a small hole
BAND = 6  # px: width of the bands either side of the hole's edge the colour step is taken from


def check_inputs(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The hole as a bool array, or ValueError for a bad image, a mismatched or full mask."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 image, got {rgb.shape} {rgb.dtype}")
    hole = np.asarray(hole).astype(bool)
    if hole.shape != rgb.shape[:2]:
        raise ValueError(f"the hole is {hole.shape} but the image is {rgb.shape[:2]}")
    if hole.all():
        raise ValueError("the hole covers the whole image: there is nothing to fill from")
    return hole


def hole_box(hole: np.ndarray, min_margin: int = MIN_MARGIN) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the hole's bounding box plus context, half the hole's mean side."""
    ys, xs = np.nonzero(hole)
    h, w = hole.shape
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    pad = max(min_margin, int(0.5 * np.sqrt((y1 - y0) * (x1 - x0))))
    return max(0, y0 - pad), min(h, y1 + pad), max(0, x0 - pad), min(w, x1 + pad)


def scaled_fill(
    rgb: np.ndarray,
    hole: np.ndarray,
    core: Core,
    *,
    seed: int,
    max_pixels: float,
    max_hole: float,
    blend: bool = False,
) -> np.ndarray:
    """Crop the box around the hole, shrink it to the budgets, fill it with ``core``, scale the
    fill back up, optionally correct its colour step, and paste it into the hole only."""
    hole = check_inputs(rgb, hole)
    out = rgb.copy()
    if not hole.any():
        return out
    y0, y1, x0, x1 = hole_box(hole)
    crop, crop_hole = rgb[y0:y1, x0:x1], hole[y0:y1, x0:x1]
    h, w = crop_hole.shape
    scale = min(1.0, (max_pixels / (h * w)) ** 0.5, (max_hole / crop_hole.sum()) ** 0.5)
    if scale < 1.0:
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        # a small pixel any part of which is masked is masked: no object colour leaks in
        covered = cv2.resize(crop_hole.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        small_hole = covered > 0
        if small_hole.all():
            small_hole = covered > 0.5
    else:
        small, small_hole = np.ascontiguousarray(crop), crop_hole
    filled = core(small, small_hole, seed)
    filled[~small_hole] = small[~small_hole]
    if scale < 1.0:
        filled = cv2.resize(filled, (w, h), interpolation=cv2.INTER_CUBIC)
    if blend:
        filled = seam_correct(crop, filled, crop_hole)
    out[y0:y1, x0:x1][crop_hole] = filled[crop_hole]
    return out


def seam_correct(known: np.ndarray, filled: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Remove the low-frequency colour step between ``filled`` (inside ``hole``) and ``known``
    (outside) while keeping the fill's texture: a gradient-domain blend.

    The step is the difference of the Gaussian-weighted mean colours of a ``BAND``-wide band
    outside and inside the edge, taken at the pixels along the inside of the edge; a membrane
    (harmonic) interpolation spreads it over the hole, and it is added to the fill. This is
    the Poisson blend of the fill into its surroundings, with the high-frequency part of the
    boundary difference (the texture, which need not line up) left out.
    """
    known_f, fill_f = known.astype(np.float32), filled.astype(np.float32)
    hole_u8 = hole.astype(np.uint8)
    dist_in = cv2.distanceTransform(hole_u8, cv2.DIST_L2, 3)
    dist_out = cv2.distanceTransform(1 - hole_u8, cv2.DIST_L2, 3)
    band_in = ((dist_in > 0) & (dist_in <= BAND)).astype(np.float32)
    band_out = ((dist_out > 0) & (dist_out <= BAND)).astype(np.float32)
    step = local_mean(known_f, band_out, BAND / 2) - local_mean(fill_f, band_in, BAND / 2)
    correction = membrane(step, hole & (dist_in <= 1.5), hole)
    return np.clip(np.rint(fill_f + correction), 0, 255).astype(np.uint8)


def local_mean(img: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted mean of ``img`` over the pixels where ``weight`` is > 0."""
    num = cv2.GaussianBlur(img * weight[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(weight, (0, 0), sigma)[..., None]
    return num / np.maximum(den, 1e-6)


def membrane(values: np.ndarray, edge: np.ndarray, region: np.ndarray) -> np.ndarray:
    """A smooth (harmonic) H x W x C field over ``region`` that equals ``values`` on ``edge``:
    solved by Jacobi iterations on a grid of at most 96 px, started from a push-pull guess."""
    h, w = region.shape
    f = min(1.0, 96.0 / max(h, w))
    size = (max(4, round(w * f)), max(4, round(h * f)))
    wsum = cv2.resize(edge.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    vsum = cv2.resize(values * edge[..., None], size, interpolation=cv2.INTER_AREA)
    fixed = wsum > 0.05
    fixed_val = vsum / np.maximum(wsum, 1e-6)[..., None]
    inside = cv2.resize(region.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
    # first guess: a wide normalised blur of the edge values, then relax it to harmonic
    sigma = max(size) / 6.0
    num = cv2.GaussianBlur(fixed_val * fixed[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(fixed.astype(np.float32), (0, 0), sigma)[..., None]
    field = np.where(fixed[..., None], fixed_val, num / np.maximum(den, 1e-6))
    free = (inside & ~fixed)[..., None]
    for _ in range(150):  # Jacobi: each free cell becomes the mean of its four neighbours
        p = cv2.copyMakeBorder(field, 1, 1, 1, 1, cv2.BORDER_REPLICATE)
        avg = 0.25 * (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:])
        field = np.where(free, avg, field)
    return cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR) * region[..., None]


# --- the cores: fill ``hole`` of a (small) image, known pixels may come back changed --------


def _valid(hole: np.ndarray) -> np.ndarray:
    return np.where(hole, 0, 255).astype(np.uint8)


def _core_telea(rgb: np.ndarray, hole: np.ndarray, seed: int) -> np.ndarray:
    return cv2.inpaint(rgb, hole.astype(np.uint8), 5, cv2.INPAINT_TELEA)


def _core_ns(rgb: np.ndarray, hole: np.ndarray, seed: int) -> np.ndarray:
    return cv2.inpaint(rgb, hole.astype(np.uint8), 5, cv2.INPAINT_NS)


def _xphoto_core(kind: int, lab: bool) -> Core:
    def core(rgb: np.ndarray, hole: np.ndarray, seed: int) -> np.ndarray:
        src = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab) if lab else rgb
        dst = np.zeros_like(src)
        cv2.xphoto.inpaint(src, _valid(hole), dst, kind)
        return cv2.cvtColor(dst, cv2.COLOR_Lab2RGB) if lab else dst

    return core


def _core_biharmonic(rgb: np.ndarray, hole: np.ndarray, seed: int) -> np.ndarray:
    from skimage.restoration import inpaint_biharmonic

    out = inpaint_biharmonic(rgb.astype(np.float32) / 255.0, hole, channel_axis=-1)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def _core_patchmatch(rgb: np.ndarray, hole: np.ndarray, seed: int) -> np.ndarray:
    import patchmatch

    patchmatch.set_random_seed(seed)
    return patchmatch.inpaint(rgb, hole, patch_size=3)


def _core_resynth(rgb: np.ndarray, hole: np.ndarray, seed: int) -> np.ndarray:
    from PIL import Image
    from resynthesizer import getDefaultParams, resynthesize

    # GIMP's heal-selection settings, no tiling; the library takes no seed and is deterministic
    params = getDefaultParams()
    params.isMakeSeamlesslyTileableHorizontally = 0
    params.isMakeSeamlesslyTileableVertically = 0
    params.matchContextType = 2  # synthesise inward from the edge
    params.patchSize = 16
    params.maxProbeCount = 200
    mask = Image.fromarray(hole.astype(np.uint8) * 255)
    return np.asarray(resynthesize(Image.fromarray(rgb), mask, params)).copy()


# --- the methods ---------------------------------------------------------------------------

# method -> (core, box pixels, hole pixels, blend): the box is shrunk to fit both budgets,
# chosen so one 1-megapixel image stays near or under 2 s on one core of a 2-core machine
_XPHOTO = getattr(cv2, "xphoto", None)
_SHIFTMAP = _xphoto_core(getattr(_XPHOTO, "INPAINT_SHIFTMAP", 0), True)
_FSR_FAST = _xphoto_core(getattr(_XPHOTO, "INPAINT_FSR_FAST", 1), False)
_FSR_BEST = _xphoto_core(getattr(_XPHOTO, "INPAINT_FSR_BEST", 2), False)
_SPECS: dict[str, tuple[Core, float, float, bool]] = {
    "telea": (_core_telea, 1.1e6, 2.5e5, False),
    "navier-stokes": (_core_ns, 1.1e6, 2.5e5, False),
    "biharmonic": (_core_biharmonic, 1.2e5, 1.5e4, False),
    "shiftmap": (_SHIFTMAP, 6.5e4, 5e3, False),
    "fsr-fast": (_FSR_FAST, 6.5e4, 1.2e4, False),
    "fsr-best": (_FSR_BEST, 1e4, 4e2, False),
    "patchmatch": (_core_patchmatch, 6e5, 4e4, False),
    "resynth": (_core_resynth, 2e5, 2.5e4, False),
    "patchmatch-blend": (_core_patchmatch, 6e5, 4e4, True),
    "patchmatch-lowres-blend": (_core_patchmatch, 1.5e5, 1.5e4, True),
    "resynth-blend": (_core_resynth, 2e5, 2.5e4, True),
    "shiftmap-blend": (_SHIFTMAP, 6.5e4, 5e3, True),
}


def _make(name: str) -> Fill:
    core, max_pixels, max_hole, blend = _SPECS[name]

    def fill(rgb: np.ndarray, hole: np.ndarray, *, seed: int = 0) -> np.ndarray:
        return scaled_fill(
            rgb, hole, core, seed=seed, max_pixels=max_pixels, max_hole=max_hole, blend=blend
        )

    fill.__name__ = fill.__qualname__ = "fill_" + name.replace("-", "_")
    fill.__doc__ = f"Fill ``hole`` with the {name} method (see the module docstring)."
    return fill


def _available() -> set[str]:
    names = {"telea", "navier-stokes"}
    if hasattr(cv2, "xphoto") and hasattr(cv2.xphoto, "inpaint"):
        names |= {"shiftmap", "fsr-fast", "fsr-best", "shiftmap-blend"}
    try:
        import skimage.restoration  # noqa: F401

        names.add("biharmonic")
    except ImportError:
        pass
    try:
        import patchmatch

        if patchmatch.patchmatch_available:
            names |= {"patchmatch", "patchmatch-blend", "patchmatch-lowres-blend"}
    except ImportError:
        pass
    try:  # loads the native library at import; a missing or broken one raises OSError
        import resynthesizer  # noqa: F401

        names |= {"resynth", "resynth-blend"}
    except (ImportError, OSError):
        pass
    return names


_HERE = _available()
METHODS: dict[str, Fill] = {name: _make(name) for name in _SPECS if name in _HERE}

# best first, by the benchmark; the first that loads here is the default
_PREFERENCE = ("patchmatch-blend", "patchmatch", "resynth-blend", "shiftmap-blend", "telea")
DEFAULT_METHOD: str = next(name for name in _PREFERENCE if name in METHODS)


def fill(rgb: np.ndarray, hole: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Fill ``hole`` with the default method."""
    return METHODS[DEFAULT_METHOD](rgb, hole, seed=seed)
