"""Cheap previews: latents -> RGB by one linear map, no VAE decode.

The factors are least-squares fits of RGB on the 4 latent channels of each VAE family (the
same approximation ComfyUI and others use); good enough to see composition and colour while
sampling, at 1/8 of the output size, for the cost of a matrix product.
"""

from __future__ import annotations

import numpy as np
import torch

_SD_FACTORS = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)
_SDXL_FACTORS = (
    (0.3651, 0.4232, 0.4341),
    (-0.2533, -0.0042, 0.1068),
    (0.1076, 0.1111, -0.0362),
    (-0.3165, -0.2492, -0.1188),
)
_SDXL_BIAS = (0.1084, -0.0175, -0.0011)


def latents_to_rgba(latents: torch.Tensor, family: str = "sd1") -> np.ndarray:
    """First latent of a batch (B x 4 x h x w) -> h x w x 4 uint8 RGBA."""
    lat = latents[0].detach().float().cpu()
    if family == "sdxl":
        factors, bias = torch.tensor(_SDXL_FACTORS), torch.tensor(_SDXL_BIAS)
    else:
        factors, bias = torch.tensor(_SD_FACTORS), torch.zeros(3)
    mixed = torch.einsum("chw,cr->hwr", lat[:4], factors) + bias
    rgb = ((mixed + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    alpha = np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)
    return np.concatenate([rgb, alpha], axis=2)
