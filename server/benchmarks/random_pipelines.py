"""Stable Diffusion pipelines with random weights, for timing: the time a step takes depends on
the shapes, not on the weights, so a benchmark needs no download.

``sd15(full=True)`` has SD 1.5's exact shapes (from the configs the project ships), for a GPU;
``full=False`` keeps its architecture with narrow layers, so a CPU runs it in a fraction of a
second per step.
"""

from __future__ import annotations

from typing import Any

from brushlink.server.engines.diffusers.loading import CONFIGS, clip_tokenizer

NARROW_UNET = {"block_out_channels": [32, 64, 64, 64], "cross_attention_dim": 64}
NARROW_VAE = {"block_out_channels": [32, 32, 64, 64]}
NARROW_TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
               "num_attention_heads": 4, "projection_dim": 64}  # fmt: skip


def sd15(full: bool = True, seed: int = 0) -> Any:
    import torch
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    root = CONFIGS / "sd1"
    unet_cfg = dict(
        UNet2DConditionModel.load_config(root / "unet"), **({} if full else NARROW_UNET)
    )
    vae_cfg = dict(AutoencoderKL.load_config(root / "vae"), **({} if full else NARROW_VAE))
    text_cfg = CLIPTextConfig.from_pretrained(
        root / "text_encoder", **({} if full else NARROW_TEXT)
    )
    return StableDiffusionPipeline(
        vae=AutoencoderKL.from_config(vae_cfg),
        text_encoder=CLIPTextModel(text_cfg),
        tokenizer=clip_tokenizer("<|endoftext|>"),
        unet=UNet2DConditionModel.from_config(unet_cfg),
        scheduler=PNDMScheduler.from_config(PNDMScheduler.load_config(root / "scheduler")),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
