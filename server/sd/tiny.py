"""Small Stable Diffusion 1.x, 2.x and SDXL pipelines built in code, for tests and the CPU benchmark.

The weights are random, but the architecture is the real one (UNet2DConditionModel, AutoencoderKL
with an 8x latent, CLIPTextModel) and the tokenizer is the real CLIP vocabulary, so everything the
server does with a downloaded checkpoint — loading from a diffusers folder or from a single
original-layout ``.safetensors`` file, txt2img, img2img, inpainting, tiling — runs unchanged.

``save_single_file`` writes the original (LDM / CompVis) key layout that checkpoints from the web
use, by inverting diffusers' own single-file conversion; its config files go into a
``<name>.config/`` folder next to the file because a tiny UNet is not shaped like SD 1.5.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

CONFIGS = Path(__file__).parent / "configs"

TINY_UNET = {
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
    "cross_attention_dim": 32,
    "attention_head_dim": 8,
    "norm_num_groups": 16,
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
}
TINY_VAE = {
    "block_out_channels": [16, 16, 32, 32],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "latent_channels": 4,
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "sample_size": 64,
}
TINY_TEXT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
    "projection_dim": 32,
    "hidden_act": "quick_gelu",
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}


def clip_tokenizer(pad_token: str = "<|endoftext|>") -> CLIPTokenizer:
    """The real CLIP tokenizer from the vocabulary the project ships (no download)."""
    return CLIPTokenizer.from_pretrained(
        str(CONFIGS / "clip-tokenizer"), local_files_only=True, pad_token=pad_token
    )


def build_tiny_pipeline(
    seed: int = 0, *, inpaint_unet: bool = False, family: str = "sd1"
) -> StableDiffusionPipeline:
    """A random-weight SD 1.x (or 2.x) pipeline that runs a 64x64 image in a fraction of a second.

    ``inpaint_unet`` gives the UNet 9 input channels (latents + mask + masked-image latents), the
    layout of dedicated inpainting checkpoints. ``family="sd2"`` uses SD 2.x's choices: a GELU
    text encoder (stored in OpenCLIP layout by ``save_single_file``), ``!`` padding and the
    v-prediction DDIM scheduler.
    """
    torch.manual_seed(seed)
    unet_cfg = dict(TINY_UNET, in_channels=9 if inpaint_unet else 4)
    unet = UNet2DConditionModel(**unet_cfg)
    vae = AutoencoderKL(**TINY_VAE)
    sd2 = family == "sd2"
    text_encoder = CLIPTextModel(
        CLIPTextConfig(**dict(TINY_TEXT, hidden_act="gelu" if sd2 else "quick_gelu"))
    )
    if sd2:
        scheduler = DDIMScheduler.from_config(DDIMScheduler.load_config(CONFIGS / "sd2/scheduler"))
    else:
        scheduler = PNDMScheduler.from_config(PNDMScheduler.load_config(CONFIGS / "sd1/scheduler"))
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer("!" if sd2 else "<|endoftext|>"),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_tiny_sdxl_pipeline(seed: int = 0) -> StableDiffusionXLPipeline:
    """A random-weight SDXL pipeline: two text encoders (CLIP-L style and an OpenCLIP-style
    encoder with projection), a ``text_time`` UNet, the shipped Euler scheduler."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=[32, 64],
        layers_per_block=1,
        down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
        up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"],
        attention_head_dim=[2, 4],
        transformer_layers_per_block=[1, 2],
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 32,  # 6 size/crop numbers + pooled text
        cross_attention_dim=32 + 48,  # both encoders' hidden states side by side
        norm_num_groups=16,
        sample_size=8,
    )
    vae = AutoencoderKL(**TINY_VAE)
    text_encoder = CLIPTextModel(CLIPTextConfig(**TINY_TEXT))
    # a different width from the first encoder, as in SDXL: diffusers' loader tells the two
    # encoders apart by it
    text_encoder_2 = CLIPTextModelWithProjection(
        CLIPTextConfig(**dict(TINY_TEXT, hidden_size=48, hidden_act="gelu"))
    )
    scheduler = EulerDiscreteScheduler.from_config(
        EulerDiscreteScheduler.load_config(CONFIGS / "sdxl/scheduler")
    )
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer("!"),
        unet=unet,
        scheduler=scheduler,
    )


def build_sd15_sized_pipeline(seed: int = 0) -> StableDiffusionPipeline:
    """Random weights in SD 1.5's exact shapes (from the shipped configs), for GPU timing."""
    torch.manual_seed(seed)
    root = CONFIGS / "sd1"
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(root / "unet"))
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(root / "vae"))
    text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(root / "text_encoder"))
    scheduler = PNDMScheduler.from_config(PNDMScheduler.load_config(root / "scheduler"))
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


# --------------------------------------------------------------------------- original layout

_RESNET = [
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
]
_UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
}


def _resnet_key(rest: str) -> str:
    head, _, tail = rest.partition(".")
    for new, old in _RESNET:
        if head == new:
            return f"{old}.{tail}"
    return rest


def unet_to_ldm(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """Diffusers UNet keys -> ``model.diffusion_model.*`` keys (the inverse of diffusers' loader)."""
    per = config["layers_per_block"] + 1
    up_has_attn = ["CrossAttn" in t for t in config["up_block_types"]]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        new: str | None = None
        for prefix, old in _UNET_FIXED.items():
            if key.startswith(prefix + "."):
                new = old + key[len(prefix) :]
        if new is None and parts[0] == "down_blocks":
            b, sub, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
            if sub == "resnets":
                new = f"input_blocks.{per * b + j + 1}.0.{_resnet_key(rest)}"
            elif sub == "attentions":
                new = f"input_blocks.{per * b + j + 1}.1.{rest}"
            elif sub == "downsamplers":
                new = f"input_blocks.{per * (b + 1)}.0.op.{rest.removeprefix('conv.')}"
        elif new is None and parts[0] == "up_blocks":
            b, sub, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
            if sub == "resnets":
                new = f"output_blocks.{per * b + j}.0.{_resnet_key(rest)}"
            elif sub == "attentions":
                new = f"output_blocks.{per * b + j}.1.{rest}"
            elif sub == "upsamplers":
                slot = 2 if up_has_attn[b] else 1
                new = f"output_blocks.{per * b + per - 1}.{slot}.{rest}"
        elif new is None and parts[0] == "mid_block":
            sub, j, rest = parts[1], int(parts[2]), ".".join(parts[3:])
            if sub == "resnets":
                new = f"middle_block.{2 * j}.{_resnet_key(rest)}"
            else:
                new = f"middle_block.1.{rest}"
        if new is None:
            raise ValueError(f"no original-layout name for UNet key {key}")
        out["model.diffusion_model." + new] = value
    return out


_VAE_ATTN = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def vae_to_ldm(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """Diffusers VAE keys -> ``first_stage_model.*`` keys."""
    n_up = len(config["up_block_types"])
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        parts = new.split(".")
        if parts[1] == "down_blocks":
            if parts[3] == "resnets":
                new = f"{parts[0]}.down.{parts[2]}.block.{'.'.join(parts[4:])}"
            else:  # downsamplers.0.conv.*
                new = f"{parts[0]}.down.{parts[2]}.downsample.{'.'.join(parts[5:])}"
        elif parts[1] == "up_blocks":
            b = n_up - 1 - int(parts[2])
            if parts[3] == "resnets":
                new = f"{parts[0]}.up.{b}.block.{'.'.join(parts[4:])}"
            else:
                new = f"{parts[0]}.up.{b}.upsample.{'.'.join(parts[5:])}"
        elif parts[1] == "mid_block" and parts[2] == "resnets":
            new = f"{parts[0]}.mid.block_{int(parts[3]) + 1}.{'.'.join(parts[4:])}"
        elif parts[1] == "mid_block" and parts[2] == "attentions":
            rest = ".".join(parts[4:])
            for diff, old in _VAE_ATTN.items():
                if rest.startswith(diff + "."):
                    rest = old + rest[len(diff) :]
            new = f"{parts[0]}.mid.attn_1.{rest}"
            if value.ndim == 2:  # the original stores these as 1x1 convolutions
                value = value[:, :, None, None]
        out["first_stage_model." + new] = value
    return out


def text_encoder_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CLIPTextModel keys -> ``cond_stage_model.transformer.text_model.*`` keys (SD 1.x)."""
    prefix = "cond_stage_model.transformer."
    return {
        prefix + (k if k.startswith("text_model.") else "text_model." + k): v
        for k, v in state.items()
    }


def open_clip_text_to_ldm(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """CLIP text-model keys -> OpenCLIP layout (fused q/k/v, ``resblocks``), under ``prefix``."""
    out: dict[str, torch.Tensor] = {}
    fused: dict[str, dict[str, torch.Tensor]] = {}
    renames = [
        ("self_attn.out_proj.", "attn.out_proj."),
        ("layer_norm1.", "ln_1."),
        ("layer_norm2.", "ln_2."),
        ("mlp.fc1.", "mlp.c_fc."),
        ("mlp.fc2.", "mlp.c_proj."),
    ]
    for key, value in state.items():
        key = key.removeprefix("text_model.")
        if key == "embeddings.token_embedding.weight":
            out[prefix + "token_embedding.weight"] = value
        elif key == "embeddings.position_embedding.weight":
            out[prefix + "positional_embedding"] = value
        elif key.startswith("final_layer_norm."):
            out[prefix + "ln_final." + key.split(".", 1)[1]] = value
        elif key == "text_projection.weight":
            out[prefix + "text_projection"] = value.T  # OpenCLIP multiplies x @ projection
        elif key.startswith("encoder.layers."):
            layer, rest = key.removeprefix("encoder.layers.").split(".", 1)
            block = f"{prefix}transformer.resblocks.{layer}."
            if rest.startswith("self_attn.") and rest.split(".")[1] in (
                "q_proj",
                "k_proj",
                "v_proj",
            ):
                which, kind = rest.split(".")[1][0], rest.rsplit(".", 1)[1]
                fused.setdefault(f"{block}attn.in_proj_{kind}", {})[which] = value
                continue
            for new, old in renames:
                rest = rest.replace(new, old)
            out[block + rest] = value
    for key, parts in fused.items():
        out[key] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def save_single_file(pipe: Any, path: Path, family: str | None = None) -> Path:
    """Save ``pipe`` (SD 1.x, SD 2.x or SDXL) as one original-layout ``.safetensors`` file plus
    ``<stem>.config/``. The family is SDXL when there is a second text encoder; SD 2.x must be
    named (its text encoder goes in OpenCLIP layout).

    The config folder holds only the UNet, VAE and text-encoder configs (the shapes that differ
    from the family's reference model); scheduler and tokenizer come from the shipped configs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    xl = getattr(pipe, "text_encoder_2", None) is not None
    state: dict[str, torch.Tensor] = {}
    state.update(unet_to_ldm(pipe.unet.state_dict(), dict(pipe.unet.config)))
    state.update(vae_to_ldm(pipe.vae.state_dict(), dict(pipe.vae.config)))
    if family == "sd2":
        text = open_clip_text_to_ldm(pipe.text_encoder.state_dict(), "cond_stage_model.model.")
    else:
        text = text_encoder_to_ldm(pipe.text_encoder.state_dict())
    if xl:
        text = {
            k.replace("cond_stage_model.", "conditioner.embedders.0.", 1): v
            for k, v in text.items()
        }
        state.update(
            open_clip_text_to_ldm(
                pipe.text_encoder_2.state_dict(), "conditioner.embedders.1.model."
            )
        )
    state.update(text)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    side = path.with_name(path.stem + ".config")
    pipe.unet.save_config(side / "unet")
    pipe.vae.save_config(side / "vae")
    pipe.text_encoder.config.save_pretrained(side / "text_encoder")
    if xl:
        pipe.text_encoder_2.config.save_pretrained(side / "text_encoder_2")
    return path


# --------------------------------------------------------------------------- CLIP

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def save_tiny_clip(folder: Path, name: str, seed: int = 0) -> Path:
    """A random-weight open_clip model as ``<name>.safetensors`` + ``<name>.json`` (its config),
    the layout ``models/clip/`` expects."""
    import open_clip

    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_CLIP)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    (folder / f"{name}.json").write_text(json.dumps(TINY_CLIP))
    return weights


# --------------------------------------------------------------------------- IP-Adapter


def save_tiny_ip_adapter(pipe: StableDiffusionPipeline, folder: Path, weight_name: str) -> Path:
    """Random IP-Adapter weights shaped for ``pipe``'s UNet, in the layout diffusers'
    ``load_ip_adapter`` reads (``image_proj.*`` + ``ip_adapter.<n>.to_k_ip/to_v_ip``), plus a
    small CLIP vision encoder in ``folder/image_encoder``."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    embed = 32
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4,
                         num_hidden_layers=2, image_size=32, patch_size=8, projection_dim=embed)
    )  # fmt: skip
    encoder.save_pretrained(folder / "image_encoder", safe_serialization=True)
    cross = pipe.unet.config.cross_attention_dim
    state = {
        "image_proj.proj.weight": torch.randn(4 * cross, embed) * 0.05,
        "image_proj.proj.bias": torch.zeros(4 * cross),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    key_id = 1  # diffusers numbers the cross-attention layers 1, 3, 5, ...
    for name in pipe.unet.attn_processors:
        if not name.endswith("attn2.processor"):
            continue
        attention = pipe.unet.get_submodule(name.removesuffix(".processor"))
        hidden = attention.to_k.weight.shape[0]
        state[f"ip_adapter.{key_id}.to_k_ip.weight"] = torch.randn(hidden, cross) * 0.2
        state[f"ip_adapter.{key_id}.to_v_ip.weight"] = torch.randn(hidden, cross) * 0.2
        key_id += 2
    path = folder / weight_name
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path
