"""Training examples for inpainting: a random mask, and something else around it.

The generator learns inpainting the way Stable Diffusion's inpainting models do. It sees an
image whose masked part is the captioned texture and whose surroundings are anything: the
same texture (so it learns to continue one), another texture, or a smooth colour field that
stands in for a photo. It also reads those surroundings and the mask (``unet.condition``).
The caption describes only the masked part, so the prompt, not the picture around the mask,
decides the fill.
"""

from __future__ import annotations

import random

import cv2
import numpy as np
import torch

SHARE = 0.3  # of the training images; the rest are plain generation (an all-ones mask)


def make(
    pixels: torch.Tensor, images: np.ndarray, rng: random.Random, share: float = SHARE
) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite images (N x 3 x H x W in [-1, 1]) and their masks (N x 1 x H x W, 1 = drawn).

    About ``share`` of ``pixels`` become inpainting examples, with surroundings from
    ``images`` (the data set, N x H x W x 3 uint8) or a colour field; the rest are unchanged.
    """
    n, _, h, w = pixels.shape
    # built in numpy: a few small array writes per image instead of many small torch calls
    out = pixels.numpy().copy()
    masks = np.ones((n, 1, h, w), np.float32)
    for i in range(n):
        if rng.random() >= share:
            continue
        mask = masks[i]
        mask[:] = 0.0
        for _ in range(rng.choice((1, 1, 2))):  # rectangles, as an artist selects
            mh, mw = rng.randint(h // 4, h * 7 // 8), rng.randint(w // 4, w * 7 // 8)
            y, x = rng.randint(0, h - mh), rng.randint(0, w - mw)
            mask[:, y : y + mh, x : x + mw] = 1.0
        kind = rng.randrange(3)
        if kind == 0:
            continue  # the texture itself around the mask: continue it
        context = _other_texture(images, rng) if kind == 1 else _colour_field(h, w, rng)
        out[i] = mask * out[i] + (1.0 - mask) * context
    return torch.from_numpy(out), torch.from_numpy(masks)


def _other_texture(images: np.ndarray, rng: random.Random) -> np.ndarray:
    image = images[rng.randrange(len(images))]
    image = np.roll(image, (rng.randrange(image.shape[0]), rng.randrange(image.shape[1])), (0, 1))
    return image.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0


def _colour_field(h: int, w: int, rng: random.Random) -> np.ndarray:
    """A few random colours blended smoothly across the image: shading, sky, a blurred photo."""
    g = rng.randint(2, 4)
    corners = np.array([rng.uniform(-1.0, 1.0) for _ in range(3 * g * g)], np.float32)
    field = cv2.resize(corners.reshape(3, g, g).transpose(1, 2, 0), (w, h))  # bilinear
    return field.transpose(2, 0, 1)
