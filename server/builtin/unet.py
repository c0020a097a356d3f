"""The built-in generator: a small diffusers UNet2DConditionModel in a space-to-depth pixel space.

A 32 x 32 RGB image is folded 2 x 2 into a 16 x 16 x 12 tensor (``fold``), which cuts the
convolution cost four times on a CPU; the UNet denoises that tensor. It is conditioned on the
built-in CLIP's text tower: cross-attention over the per-token features and the pooled text
embedding added to the timestep embedding (``class_embed_type="projection"``).

Seamless tiling pads every convolution circularly on the axes asked for (``set_tiling``), the
same trick artists' Stable Diffusion tools use; training mixes circular and zero padding so
both modes are in distribution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel
from safetensors.torch import load_file, save_file

from .clip_model import CLIP_CONFIG
from .manifest import UNET_WEIGHTS

FOLD = 2  # space-to-depth factor
TEXT_WIDTH = CLIP_CONFIG["text_cfg"]["width"]

UNET_CONFIG: dict[str, Any] = {
    "sample_size": 16,
    "in_channels": 3 * FOLD * FOLD,
    "out_channels": 3 * FOLD * FOLD,
    # plain convolutions at full resolution, attention only where the grid is small
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "block_out_channels": (32, 64, 64),
    "layers_per_block": 1,
    "norm_num_groups": 16,
    "cross_attention_dim": TEXT_WIDTH,
    "attention_head_dim": 2,  # diffusers' legacy name: the number of heads
    "class_embed_type": "projection",
    "projection_class_embeddings_input_dim": CLIP_CONFIG["embed_dim"],
}

SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "v_prediction",
    "clip_sample": False,
}


def build_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(**UNET_CONFIG)


def train_scheduler() -> DDPMScheduler:
    return DDPMScheduler(**SCHEDULER_CONFIG)


def save_unet(model: UNet2DConditionModel, path: Path = UNET_WEIGHTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path))


def load_unet(device: str = "cpu", path: Path = UNET_WEIGHTS) -> UNet2DConditionModel:
    model = build_unet()
    model.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
    return model.eval().to(device)


def fold(images: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W -> N x 12 x H/2 x W/2 (space-to-depth)."""
    return F.pixel_unshuffle(images, FOLD)


def unfold(latents: torch.Tensor) -> torch.Tensor:
    return F.pixel_shuffle(latents, FOLD)


def _padded_conv_forward(conv: torch.nn.Conv2d, tile: str):
    """A Conv2d forward that pads x and y separately: circular on tiled axes, zeros elsewhere."""
    pad_y, pad_x = conv.padding  # type: ignore[misc]

    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x = F.pad(x, (pad_x, pad_x, 0, 0), mode="circular" if "x" in tile else "constant")
        x = F.pad(x, (0, 0, pad_y, pad_y), mode="circular" if "y" in tile else "constant")
        return F.conv2d(x, weight, bias, conv.stride, 0, conv.dilation, conv.groups)

    return forward


def set_tiling(model: torch.nn.Module, tile: str) -> None:
    """Make every padded convolution wrap around on the axes in ``tile`` ("none", "x", "y", "xy")."""
    for module in model.modules():
        if not isinstance(module, torch.nn.Conv2d) or module.padding == (0, 0):
            continue
        if tile in ("x", "y", "xy"):
            module._conv_forward = _padded_conv_forward(module, tile)  # type: ignore[method-assign]
        elif "_conv_forward" in module.__dict__:
            del module._conv_forward  # back to the class's zero padding
