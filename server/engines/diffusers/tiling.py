"""Seamless textures: circular padding in every convolution of the UNet and the VAE, per axis.

A convolution with padding p normally sees zeros beyond the border. With circular padding along
x it sees the opposite edge instead, so the model paints an image whose left and right edges
continue each other (and likewise for y). Padding is switched per job and restored afterwards,
because the pipelines are shared between jobs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

AXES = {"none": (False, False), "x": (True, False), "y": (False, True), "xy": (True, True)}


def _padded_forward(conv: nn.Conv2d, wrap_x: bool, wrap_y: bool):
    pad_y, pad_x = cast(tuple[int, int], conv.padding)  # int padding is normalised to a pair
    x_mode = "circular" if wrap_x else "constant"
    y_mode = "circular" if wrap_y else "constant"

    def forward(input: torch.Tensor) -> torch.Tensor:
        # F.pad takes (left, right, top, bottom); pad each axis with its own mode.
        x = F.pad(input, (pad_x, pad_x, 0, 0), mode=x_mode)
        x = F.pad(x, (0, 0, pad_y, pad_y), mode=y_mode)
        return F.conv2d(x, conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)

    return forward


def _convs(modules: list[Any]) -> Iterator[nn.Conv2d]:
    for module in modules:
        if module is None:
            continue
        for layer in module.modules():
            padding = getattr(layer, "padding", None)
            if isinstance(layer, nn.Conv2d) and isinstance(padding, tuple) and any(padding):
                yield layer


@contextmanager
def tiling(pipe: Any, mode: str) -> Iterator[None]:
    """Within the block, the pipeline's UNet and VAE wrap around along the axes of ``mode``."""
    wrap_x, wrap_y = AXES[mode]
    if not (wrap_x or wrap_y):
        yield
        return
    patched = []
    for conv in _convs([getattr(pipe, "unet", None), getattr(pipe, "vae", None)]):
        conv.forward = _padded_forward(conv, wrap_x, wrap_y)  # type: ignore[method-assign]
        patched.append(conv)
    try:
        yield
    finally:
        for conv in patched:
            del conv.forward  # back to the class's forward
