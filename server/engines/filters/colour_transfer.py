"""Colour transfer from a reference picture (Reinhard et al. 2001): match the mean and standard
deviation of each Lab channel, so the result takes the reference's palette and keeps its own
shapes and shading."""

from __future__ import annotations

import cv2
import numpy as np

MIN_L_GAIN = 0.5
MIN_AB_GAIN = 0.25
MAX_GAIN = 4.0
STATS_SAMPLE = 250_000


def lab_stats(lab: np.ndarray, alpha: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of L, a, b over the visible pixels of a Lab image."""
    pixels = lab.reshape(-1, 3)
    if alpha is not None and (alpha > 0).any():
        pixels = pixels[alpha.reshape(-1) > 0]  # fully transparent pixels carry no colour
    if len(pixels) > STATS_SAMPLE:  # a regular subsample gives the same statistics, faster
        pixels = pixels[:: len(pixels) // STATS_SAMPLE]
    return pixels.mean(axis=0), pixels.std(axis=0)


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """float32 Lab (L 0..100, a and b about -128..127) of an RGB uint8 image."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def transfer_colours(
    rgb: np.ndarray,
    reference: np.ndarray,
    alpha: np.ndarray | None = None,
    reference_alpha: np.ndarray | None = None,
) -> np.ndarray:
    """``rgb`` (H x W x 3 uint8) recoloured with the Lab statistics of ``reference``."""
    lab = to_lab(rgb)
    src_mean, src_std = lab_stats(lab, alpha)
    ref_mean, ref_std = lab_stats(to_lab(reference), reference_alpha)
    # a flat channel (a grey picture's a and b) has no spread to scale: only shift it. The gain
    # is bounded so a flat reference tints the picture instead of erasing it: lightness keeps at
    # least half its contrast, colour at least a quarter.
    gain = np.where(src_std > 1e-3, ref_std / np.maximum(src_std, 1e-3), 1.0)
    gain = np.clip(gain, [MIN_L_GAIN, MIN_AB_GAIN, MIN_AB_GAIN], [MAX_GAIN] * 3)
    lab = (lab - src_mean) * gain + ref_mean
    lab[..., 0] = np.clip(lab[..., 0], 0.0, 100.0)
    out = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
