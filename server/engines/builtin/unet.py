"""The built-in generator: a small diffusers UNet2DConditionModel in a space-to-depth pixel space.

A 32 x 32 RGB image is folded 2 x 2 into a 16 x 16 x 12 tensor (``fold``), which cuts the
convolution cost four times on a CPU; the UNet denoises that tensor. It is conditioned on the
built-in CLIP's text tower: cross-attention over the per-token features and the pooled text
embedding added to the timestep embedding (``class_embed_type="projection"``).

Inpainting is learned, as in Stable Diffusion's inpainting models: besides the noisy tensor
the UNet reads the image with the region to redraw blanked out and the mask itself
(``condition``). Plain generation and img2img pass an all-ones mask, so one set of weights
serves every kind of job, and the prompt, not the surrounding picture, decides what fills a
mask. Like Stable Diffusion's, the inpainting model starts as a plain text-to-image one:
training step 3 builds it without those inputs and step 4 adds them, zeroed (``load_unet``).
Step 4 may also deepen it (``grow``); the depth is written into the weights file's metadata,
so ``load_unet`` builds whatever depth was saved.

Seamless tiling pads every convolution circularly on the axes asked for (``set_tiling``), the
same trick artists' Stable Diffusion tools use; training mixes circular and zero padding so
both modes are in distribution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .clip_model import CLIP_CONFIG
from .manifest import UNET_WEIGHTS

FOLD = 2  # space-to-depth factor
CHANNELS = 3 * FOLD * FOLD  # the folded image the UNet denoises
CONDITION_CHANNELS = 3 * FOLD * FOLD + FOLD * FOLD  # folded masked image + folded mask
TEXT_WIDTH = CLIP_CONFIG["text_cfg"]["width"]

UNET_CONFIG: dict[str, Any] = {
    "sample_size": 16,
    "in_channels": CHANNELS + CONDITION_CHANNELS,
    "out_channels": CHANNELS,
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

_PLAIN_CONFIG = {**UNET_CONFIG, "in_channels": CHANNELS}

SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "v_prediction",
    "clip_sample": False,
}


def build_unet(
    inpainting: bool = True, layers: int = 1, transformer_layers: int = 1
) -> UNet2DConditionModel:
    """The generator; ``inpainting=False`` builds it without the condition inputs (step 3).

    ``layers`` (per block) and ``transformer_layers`` (per attention) give its depth: step 3
    trains depth 1, and a sitting of step 4 may deepen it (``grow``).
    """
    config = UNET_CONFIG if inpainting else _PLAIN_CONFIG
    depth = {"layers_per_block": layers, "transformer_layers_per_block": transformer_layers}
    return UNet2DConditionModel(**(config | depth))


def train_scheduler() -> DDPMScheduler:
    return DDPMScheduler(**SCHEDULER_CONFIG)


def save_unet(model: UNet2DConditionModel, path: Path = UNET_WEIGHTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()
    }
    layers, transformer_layers = depth(model)
    # the depth travels with the weights, so loading needs no other record
    metadata = {
        "layers_per_block": str(layers),
        "transformer_layers_per_block": str(transformer_layers),
    }
    save_file(tensors, str(path), metadata=metadata)


def load_unet(device: str = "cpu", path: Path = UNET_WEIGHTS) -> UNet2DConditionModel:
    """The generator in ``path``; one saved without the inpainting inputs gains them, zeroed.

    Zero weights for the new input channels make the widened model compute exactly what it
    did before (Stable Diffusion's inpainting models start the same way), so training can
    continue from it.
    """
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    with safe_open(str(path), "pt") as saved:
        metadata = saved.metadata() or {}  # files saved before deepening was possible: depth 1
    weight = state["conv_in.weight"]
    if weight.shape[1] == CHANNELS:
        extra = weight.new_zeros(weight.shape[0], CONDITION_CHANNELS, *weight.shape[2:])
        state["conv_in.weight"] = torch.cat([weight, extra], dim=1)
    model = build_unet(
        layers=int(metadata.get("layers_per_block", 1)),
        transformer_layers=int(metadata.get("transformer_layers_per_block", 1)),
    )
    model.load_state_dict(state)
    return model.eval().to(device)


def depth(model: UNet2DConditionModel) -> tuple[int, int]:
    """(layers per block, transformer layers per attention) of ``model``."""
    transformer = model.config.transformer_layers_per_block
    if not isinstance(transformer, int):
        transformer = transformer[0]
    return int(model.config.layers_per_block), int(transformer)


def fold(images: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W -> N x 12 x H/2 x W/2 (space-to-depth)."""
    return F.pixel_unshuffle(images, FOLD)


def unfold(latents: torch.Tensor) -> torch.Tensor:
    return F.pixel_shuffle(latents, FOLD)


def condition(
    images: torch.Tensor | None, masks: torch.Tensor | None, shape: tuple[int, ...]
) -> torch.Tensor:
    """The UNet's extra input: N x 16 x h x w, the folded masked image and the folded mask.

    ``images`` are N x 3 x H x W in [-1, 1] and ``masks`` N x 1 x H x W, 1 where the model
    draws; with no mask (generate, img2img) the mask is all ones and the image all blank.
    ``shape`` is the pixel batch shape (N, 3, H, W) and gives the size when both are None.
    """
    n, _, h, w = shape
    if masks is None:
        masks = torch.ones(n, 1, h, w)
    if images is None:
        images = torch.zeros(n, 3, h, w, device=masks.device)
    masks = masks.to(images.device, images.dtype)
    return torch.cat([fold(images * (1 - masks)), fold(masks)], dim=1)


def _padded_conv_forward(conv: torch.nn.Conv2d, tile: str):
    """A Conv2d forward that pads x and y separately: circular on tiled axes, zeros elsewhere."""
    pad_y, pad_x = cast(tuple[int, int], conv.padding)  # int padding is normalised to a pair

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
